"""Ed25519 signatures for exports and manifests."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ._encoding import Rng, random_bytes, require_bytes


def generate_signing_key(*, rng: Rng | None = None) -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private_raw32, public_raw32)."""
    private = random_bytes(32, rng)
    key = ed25519.Ed25519PrivateKey.from_private_bytes(private)
    return private, key.public_key().public_bytes_raw()


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
