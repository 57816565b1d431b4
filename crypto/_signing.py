"""Ed25519 signatures for exports and manifests."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ._encoding import Rng, random_bytes, require_bytes


def generate_signing_key(*, rng: Rng | None = None) -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private_raw32, public_raw32)."""
    private = random_bytes(32, rng)
    key = ed25519.Ed25519PrivateKey.from_private_bytes(private)
    return private, key.public_key().public_bytes_raw()


def signing_public_key(private: bytes) -> bytes:
    """The raw 32-byte public key of a raw 32-byte Ed25519 private key."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(require_bytes(private, 32, "private"))
    return key.public_key().public_bytes_raw()


def signing_fingerprint(public: bytes) -> str:
    """SHA-256(raw public key)[0:16] in hex, groups of 4: what people compare by eye.

    The same 16 bytes are the manifests' ``installation_key_id``.
    """
    text = hashlib.sha256(require_bytes(public, 32, "public")).digest()[:16].hex()
    return " ".join(text[i : i + 4] for i in range(0, 32, 4))


def sign(private: bytes, data: bytes) -> bytes:
    """Ed25519 signature (64 bytes) over exactly `data`."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(require_bytes(private, 32, "private"))
    return key.sign(bytes(data))


def verify_signature(public: bytes, data: bytes, signature: bytes) -> bool:
    """True iff signature is a valid Ed25519 signature of data; False for malformed input."""
    try:
        key = ed25519.Ed25519PublicKey.from_public_bytes(require_bytes(public, 32, "public"))
        key.verify(require_bytes(signature, 64, "signature"), bytes(data))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
