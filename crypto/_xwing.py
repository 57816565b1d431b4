"""X-Wing (MLKEM768-X25519, HPKE KEM 0x647A), written out for vectors and checks.

Production sealing and opening use cryptography's hpke.Suite; this module gives the seed
expansion, the public key and the combiner step by step so that every intermediate value can
be published and checked. Neither cryptography nor WebCrypto exposes ML-KEM's derandomized
encapsulation, so a deterministic encapsulation takes it as a function (`MlkemEncaps`), which
only test vector code supplies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from ._encoding import Rng, random_bytes, require_bytes

SEED_SIZE = 32
PUBLIC_SIZE = 1216  # ML-KEM-768 encapsulation key (1184) || X25519 public key (32)
ENC_SIZE = 1120  # ML-KEM-768 ciphertext (1088) || X25519 ephemeral public key (32)
ESEED_SIZE = 64  # m (32) for ML-KEM || ephemeral X25519 private key (32)
_MLKEM_PUBLIC = 1184
_MLKEM_CT = 1088
_LABEL = b"\\.//^\\"  # X-Wing combiner label: the 6 ASCII bytes \.//^\

# (encapsulation key 1184, m 32) -> (shared secret 32, ciphertext 1088): FIPS 203
# ML-KEM.Encaps_internal.
MlkemEncaps = Callable[[bytes, bytes], tuple[bytes, bytes]]


@dataclass(frozen=True)
class Expanded:
    mlkem_seed: bytes  # d || z (64), FIPS 203 ML-KEM.KeyGen_internal
    x25519_private: bytes  # 32
    mlkem_public: bytes  # 1184
    x25519_public: bytes  # 32

    @property
    def public(self) -> bytes:
        return self.mlkem_public + self.x25519_public


def expand(seed: bytes) -> Expanded:
    """SHAKE256(seed, 96) = d || z || sk_X; the public key is pk_M || pk_X."""
    raw = hashlib.shake_256(require_bytes(seed, SEED_SIZE, "X-Wing seed")).digest(96)
    mk = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64])
    xk = x25519.X25519PrivateKey.from_private_bytes(raw[64:])
    return Expanded(
        mlkem_seed=raw[:64],
        x25519_private=raw[64:],
        mlkem_public=mk.public_key().public_bytes_raw(),
        x25519_public=xk.public_key().public_bytes_raw(),
    )


def private_key(seed: bytes) -> hpke.MLKEM768X25519PrivateKey:
    """cryptography's hybrid private key for a 32-byte X-Wing seed (no public key computed)."""
    raw = hashlib.shake_256(require_bytes(seed, SEED_SIZE, "X-Wing seed")).digest(96)
    return hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64]),
        x25519.X25519PrivateKey.from_private_bytes(raw[64:]),
    )


def load_public(public: bytes) -> hpke.MLKEM768X25519PublicKey:
    pk = require_bytes(public, PUBLIC_SIZE, "X-Wing public key")
    return hpke.MLKEM768X25519PublicKey(
        mlkem.MLKEM768PublicKey.from_public_bytes(pk[:_MLKEM_PUBLIC]),
        x25519.X25519PublicKey.from_public_bytes(pk[_MLKEM_PUBLIC:]),
    )


def public_key(seed: bytes) -> bytes:
    """The 1216-byte X-Wing public key of a 32-byte seed."""
    return expand(seed).public


def generate_keypair(*, rng: Rng | None = None) -> tuple[bytes, bytes]:
    """A fresh X-Wing key pair as (seed32, public1216)."""
    seed = random_bytes(SEED_SIZE, rng)
    return seed, public_key(seed)


def combine(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    """SHA3-256(ss_M || ss_X || ct_X || pk_X || label)."""
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + _LABEL).digest()


def decap(enc: bytes, seed: bytes) -> bytes:
    """X-Wing Decapsulate: returns the 32-byte shared secret."""
    enc = require_bytes(enc, ENC_SIZE, "enc")
    e = expand(seed)
    mk = mlkem.MLKEM768PrivateKey.from_seed_bytes(e.mlkem_seed)
    ss_m = mk.decapsulate(enc[:_MLKEM_CT])
    ct_x = enc[_MLKEM_CT:]
    xk = x25519.X25519PrivateKey.from_private_bytes(e.x25519_private)
    # cryptography rejects an all-zero X25519 output.
    ss_x = xk.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    return combine(ss_m, ss_x, ct_x, e.x25519_public)


def encap_derand(public: bytes, eseed: bytes, mlkem_encaps: MlkemEncaps) -> tuple[bytes, bytes]:
    """X-Wing EncapsulateDerand with eseed = m || sk_E: returns (shared_secret, enc)."""
    pk = require_bytes(public, PUBLIC_SIZE, "X-Wing public key")
    eseed = require_bytes(eseed, ESEED_SIZE, "eseed")
    pk_m, pk_x = pk[:_MLKEM_PUBLIC], pk[_MLKEM_PUBLIC:]
    ss_m, ct_m = mlkem_encaps(pk_m, eseed[:32])
    ss_m = require_bytes(ss_m, 32, "ML-KEM shared secret")
    ct_m = require_bytes(ct_m, _MLKEM_CT, "ML-KEM ciphertext")
    ek = x25519.X25519PrivateKey.from_private_bytes(eseed[32:])
    ct_x = ek.public_key().public_bytes_raw()
    ss_x = ek.exchange(x25519.X25519PublicKey.from_public_bytes(pk_x))
    return combine(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x
