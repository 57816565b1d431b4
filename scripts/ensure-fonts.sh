#!/usr/bin/env bash
# Makes sure the Debian fonts the posters embed are installed (service/domain/poster.py):
# fonts-noto-cjk (Chinese text) and fonts-dejavu-core (addresses, fingerprints).
# Prints "ok" or "missing"; exits 1 when they are missing and could not be installed.
set -u
FILES=(/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
       /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc
       /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf)
present() { for f in "${FILES[@]}"; do [ -f "$f" ] || return 1; done; }
if present; then echo ok; exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing fonts-noto-cjk and fonts-dejavu-core from Debian packages ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
     apt-get install -y -qq fonts-noto-cjk fonts-dejavu-core) >&2 || true
fi
if present; then echo ok; exit 0; fi
echo "ERROR: posters need the Debian packages fonts-noto-cjk and fonts-dejavu-core" \
     "(apt-get install fonts-noto-cjk fonts-dejavu-core)." >&2
echo missing
exit 1
