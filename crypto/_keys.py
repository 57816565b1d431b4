"""X25519 key pairs, key ids, key-set fingerprints and fresh random values.

Key ids and the fingerprint cover both key kinds: an X25519 public key (32 bytes, v1) and an
X-Wing public key (1216 bytes, v2). The lengths differ, so an id names its kind unambiguously.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import x25519

from ._encoding import Rng, random_bytes, require_bytes

_KEYSET_LABEL = b"chuishao/v1/keyset\x00"


def generate_keypair(*, rng: Rng | None = None) -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (private_raw32, public_raw32)."""
    private = random_bytes(32, rng)
    return private, public_key(private)


def public_key(private: bytes) -> bytes:
    """The raw 32-byte X25519 public key of a raw 32-byte private key."""
    raw = require_bytes(private, 32, "private key")
    return x25519.X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()


_PUBLIC_SIZES = (32, 1216)


def key_id(public: bytes) -> bytes:
    """SHA-256(raw public key)[0:16]: X25519 (32 bytes) or X-Wing (1216 bytes)."""
    if not isinstance(public, bytes | bytearray | memoryview):
        raise TypeError("public key must be bytes")
    raw = bytes(public)
    if len(raw) not in _PUBLIC_SIZES:
        raise ValueError("public key must be 32 (X25519) or 1216 (X-Wing) bytes")
    return hashlib.sha256(raw).digest()[:16]


def keyset_fingerprint(key_ids: Iterable[bytes]) -> bytes:
    """SHA-256("chuishao/v1/keyset" 0x00 || sorted key ids); order-independent by design."""
    ids = [require_bytes(k, 16, "key id") for k in key_ids]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate key id")
    return hashlib.sha256(_KEYSET_LABEL + b"".join(sorted(ids))).digest()


def format_fingerprint(fingerprint: bytes) -> str:
    """Human form: the first 16 hex chars in groups of 4, e.g. "1a2b 3c4d 5e6f 7a8b"."""
    text = require_bytes(fingerprint, 32, "fingerprint").hex()[:16]
    return " ".join(text[i : i + 4] for i in range(0, 16, 4))


def new_key(*, rng: Rng | None = None) -> bytes:
    """32 random bytes: a case key, internal key or file key."""
    return random_bytes(32, rng)


def new_id(*, rng: Rng | None = None) -> bytes:
    """16 random bytes: a case, item or file id."""
    return random_bytes(16, rng)
