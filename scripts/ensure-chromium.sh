#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests.
# Prints "ok" or "missing". In CI a missing browser is an error, not a skip.
set -u
if [ -x /usr/bin/chromium ]; then echo ok; exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing chromium from Debian packages ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 || true
fi
if [ -x /usr/bin/chromium ]; then echo ok; exit 0; fi
if [ -n "${CI:-}" ]; then
  echo "ERROR: /usr/bin/chromium is missing and could not be installed; CI needs the browser tests." >&2
  exit 1
fi
cat >&2 <<'MSG'

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  Chromium is not installed (apt-get install chromium): BROWSER TESTS ARE     !!
!!  SKIPPED. The cryptography is NOT proven in a browser on this machine.       !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

MSG
echo missing
