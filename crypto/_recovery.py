"""Text form of the installation recovery private keys, for paper backup.

Two parts: the X25519 private key (v1) and the X-Wing seed (v2). Both are 32 bytes and print
the same way; the checksum of the X-Wing part is domain-separated, so one part typed where
the other belongs fails its checksum instead of opening nothing.
"""

from __future__ import annotations

import hashlib
import hmac

from ._encoding import b32_decode, b32_encode, require_bytes

_GROUP = 5
_TEXT_LEN = 55  # base32 of 34 bytes without padding
_KINDS = {"x25519": b"", "xwing": b"chuishao/v2/recovery-xwing\x00"}


def _checksum(raw: bytes, kind: str) -> bytes:
    prefix = _KINDS.get(kind)
    if prefix is None:
        raise ValueError("unknown recovery key kind")
    return hashlib.sha256(prefix + raw).digest()[:2]


def encode_recovery_secret(raw32: bytes, kind: str = "x25519") -> str:
    """base32(raw32 || checksum) without padding, in dash-separated groups of 5.

    checksum = SHA-256(raw32)[0:2] for the X25519 part, and
    SHA-256("chuishao/v2/recovery-xwing" 0x00 || raw32)[0:2] for the X-Wing seed.
    """
    raw = require_bytes(raw32, 32, "recovery key")
    text = b32_encode(raw + _checksum(raw, kind))
    return "-".join(text[i : i + _GROUP] for i in range(0, len(text), _GROUP))


def decode_recovery_secret(text: str, kind: str = "x25519") -> bytes:
    """Parse the text form (any case, spaces and dashes ignored); ValueError if invalid."""
    if not isinstance(text, str):
        raise TypeError("recovery secret must be str")
    compact = "".join(c for c in text if c not in " -\t\r\n")
    # ASCII first: str.upper() maps e.g. "ß" to "SS", which would give a second spelling.
    if not compact.isascii():
        raise ValueError("not a recovery secret")
    compact = compact.upper()
    if len(compact) != _TEXT_LEN:
        raise ValueError("not a recovery secret")
    try:
        data = b32_decode(compact)
    except ValueError:
        raise ValueError("not a recovery secret") from None
    raw, check = data[:32], data[32:]
    if not hmac.compare_digest(_checksum(raw, kind), check):
        raise ValueError("recovery secret checksum mismatch")
    return raw
