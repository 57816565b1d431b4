"""Key slots: a 32-byte symmetric key sealed to one recipient with HPKE."""

from __future__ import annotations

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from . import _hpke
from ._encoding import Rng, random_bytes, require_bytes
from ._errors import OpenError

SUITE = "x25519-hkdf-sha256-aes256gcm"
SLOT_SIZE = 80  # enc(32) || AES-256-GCM(key32) (48)

_PURPOSE_LABELS = {
    "case": b"chuishao/v1/case-key",
    "internal": b"chuishao/v1/internal-key",
}
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def slot_info(case_id: bytes, purpose: str) -> bytes:
    """HPKE info binding a slot to its case and purpose."""
    label = _PURPOSE_LABELS.get(purpose)
    if label is None:
        raise ValueError("unknown slot purpose")
    return label + b"\x00" + require_bytes(case_id, 16, "case_id")


def seal_key(
    key: bytes,
    public: bytes,
    case_id: bytes,
    purpose: str = "case",
    *,
    ephemeral: bytes | None = None,
    rng: Rng | None = None,
) -> bytes:
    """Seal a 32-byte key to an X25519 public key; returns the 80-byte slot.

    With `ephemeral` (or `rng`, which then supplies it) the private RFC 9180 code runs so
    the output is reproducible; otherwise cryptography's HPKE draws the ephemeral key.
    """
    key = require_bytes(key, 32, "key")
    public = require_bytes(public, 32, "public key")
    info = slot_info(case_id, purpose)
    if ephemeral is None and rng is not None:
        ephemeral = random_bytes(32, rng)
    if ephemeral is not None:
        sk_e = require_bytes(ephemeral, 32, "ephemeral key")
        slot = _hpke.X25519_SHA256_AES256GCM.seal(public, info, b"", key, sk_e)
    else:
        slot = _SUITE.encrypt(key, x25519.X25519PublicKey.from_public_bytes(public), info)
    assert len(slot) == SLOT_SIZE
    return slot


def open_key(slot: bytes, private: bytes, case_id: bytes, purpose: str = "case") -> bytes:
    """Open an 80-byte slot with the recipient's raw private key; returns the 32-byte key."""
    try:
        info = slot_info(case_id, purpose)
        slot = require_bytes(slot, SLOT_SIZE, "slot")
        priv = x25519.X25519PrivateKey.from_private_bytes(require_bytes(private, 32, "private"))
        key = _SUITE.decrypt(slot, priv, info)
    except Exception:
        raise OpenError() from None
    if len(key) != 32:
        raise OpenError()
    return key
