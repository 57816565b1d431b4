#!/usr/bin/env bash
# Installs the checkers the browser suite uses, from the npm registry, into .venv/node:
# axe-core (injected into pages by the accessibility tests only, never served by the
# application) and the W3C HTML checker vnu-jar (run with Java 17).
# Prints "ok" or "missing"; in CI a missing tool is an error, not a skip.
set -u
cd "$(dirname "$0")/.."
prefix=.venv/node
want_axe=4.14.1
want_vnu=26.9.27
have() { [ -f "$prefix/node_modules/axe-core/axe.min.js" ] && [ -f "$prefix/node_modules/vnu-jar/build/dist/vnu.jar" ]; }
if ! have; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing axe-core $want_axe and vnu-jar $want_vnu from npm into $prefix ..." >&2
    mkdir -p "$prefix"
    npm install --silent --no-audit --no-fund --prefix "$prefix" \
      "axe-core@$want_axe" "vnu-jar@$want_vnu" >&2 || true
  fi
fi
if ! command -v java >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) >&2 || true
fi
if have && command -v java >/dev/null 2>&1; then echo ok; exit 0; fi
if [ -n "${CI:-}" ]; then
  echo "ERROR: axe-core, vnu-jar or java is missing and could not be installed." >&2
  exit 1
fi
echo "WARNING: accessibility and HTML checks are SKIPPED (no axe-core/vnu-jar/java)." >&2
echo missing
