"""Bearer tokens at rest: only their SHA-256 is stored, so a database reader cannot use one.

Tokens are long random strings (``secrets.token_urlsafe``), so a plain hash suffices; no salt
or slow hash is needed, and the digest doubles as the lookup key.
"""

from __future__ import annotations

import hashlib


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
