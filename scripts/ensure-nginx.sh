#!/usr/bin/env bash
# Makes sure Debian's nginx is installed for tests/deploy (nginx in front of several instances).
# Prints "ok" or "missing". In CI a missing nginx is an error, not a skip.
# Only the program is needed: the tests run it with their own configuration, prefix and ports,
# and do not start Debian's service.
set -u
if [ -x /usr/sbin/nginx ]; then echo ok; exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing nginx from Debian packages ..." >&2
  # policy-rc.d 101: the package's post-install must not start a system nginx on port 80
  # (left alone if the machine already has one).
  made=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made=1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >&2 || true
  if [ -n "$made" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
if [ -x /usr/sbin/nginx ]; then echo ok; exit 0; fi
if [ -n "${CI:-}" ]; then
  echo "ERROR: /usr/sbin/nginx is missing and could not be installed; CI needs the deployment tests." >&2
  exit 1
fi
echo "nginx is not installed (apt-get install nginx): the deployment tests are SKIPPED." >&2
echo missing
