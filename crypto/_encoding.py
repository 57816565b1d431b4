"""Strict byte/text encodings and small shared helpers."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

Rng = Callable[[int], bytes]


def random_bytes(n: int, rng: Rng | None) -> bytes:
    """n bytes from rng (injected for test vectors) or from the OS."""
    out = (rng or os.urandom)(n)
    if not isinstance(out, bytes) or len(out) != n:
        raise ValueError("random source returned the wrong number of bytes")
    return out


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Decode unpadded base64url; reject padding, other alphabets and non-canonical input."""
    if not isinstance(text, str) or len(text) % 4 == 1:
        raise ValueError("invalid base64url")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("invalid base64url") from exc
    # Re-encoding catches non-zero trailing bits, so every value has exactly one text form.
    if b64u_encode(raw) != text:
        raise ValueError("invalid base64url")
    return raw


# RFC 4648 base32: what authenticator apps, paper recovery keys and claim codes are typed in.
B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def b32_encode(data: bytes) -> str:
    """Upper-case base32 without padding."""
    return base64.b32encode(data).decode("ascii").rstrip("=")


def b32_decode(text: str) -> bytes:
    """Decode unpadded upper-case base32; reject padding, other characters and non-canonical
    input (non-zero trailing bits would give a second spelling of the same bytes)."""
    if (not isinstance(text, str) or len(text) % 8 in (1, 3, 6)
            or not set(text) <= set(B32_ALPHABET)):
        raise ValueError("invalid base32")
    raw = base64.b32decode(text + "=" * (-len(text) % 8))
    if b32_encode(raw) != text:
        raise ValueError("invalid base32")
    return raw


def require_bytes(value: object, length: int, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes")
    raw = bytes(value)
    if len(raw) != length:
        raise ValueError(f"{name} must be {length} bytes")
    return raw
