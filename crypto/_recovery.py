"""Text form of the installation recovery private key, for paper backup."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ._encoding import require_bytes

_GROUP = 5
_TEXT_LEN = 55  # base32 of 34 bytes without padding
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def encode_recovery_secret(raw32: bytes) -> str:
    """base32(raw32 || SHA-256(raw32)[0:2]) without padding, in dash-separated groups of 5."""
    raw = require_bytes(raw32, 32, "recovery key")
    text = base64.b32encode(raw + hashlib.sha256(raw).digest()[:2]).decode("ascii").rstrip("=")
    return "-".join(text[i : i + _GROUP] for i in range(0, len(text), _GROUP))


def decode_recovery_secret(text: str) -> bytes:
    """Parse the text form (any case, spaces and dashes ignored); ValueError if invalid."""
    if not isinstance(text, str):
        raise TypeError("recovery secret must be str")
    compact = "".join(c for c in text if c not in " -\t\r\n")
    # ASCII first: str.upper() maps e.g. "ß" to "SS", which would give a second spelling.
    if not compact.isascii():
        raise ValueError("not a recovery secret")
    compact = compact.upper()
    if len(compact) != _TEXT_LEN or not set(compact) <= _ALPHABET:
        raise ValueError("not a recovery secret")
    data = base64.b32decode(compact + "=")
    # Non-zero trailing bits would give a second spelling of the same key.
    if base64.b32encode(data).decode("ascii").rstrip("=") != compact:
        raise ValueError("not a recovery secret")
    raw, check = data[:32], data[32:]
    if not hmac.compare_digest(hashlib.sha256(raw).digest()[:2], check):
        raise ValueError("recovery secret checksum mismatch")
    return raw
