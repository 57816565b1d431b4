"""Key slots: a 32-byte symmetric key sealed to one recipient with HPKE.

Suite v1 seals to an X25519 key (80-byte slot); suite v2 to an X-Wing (MLKEM768-X25519)
key (1168-byte slot), with the same `info`. The suite string stored with each slot picks
the opener, so v1 slots stay readable next to v2 ones.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from . import _hpke, _xwing
from ._encoding import Rng, random_bytes, require_bytes
from ._errors import OpenError

SUITE = "x25519-hkdf-sha256-aes256gcm"
SLOT_SIZE = 80  # enc(32) || AES-256-GCM(key32) (48)
SUITE_V2 = "mlkem768x25519-hkdf-sha256-aes256gcm"
SLOT_SIZE_V2 = 1168  # enc(1120) || AES-256-GCM(key32) (48)
SUITES = (SUITE, SUITE_V2)

_PURPOSE_LABELS = {
    "case": b"chuishao/v1/case-key",
    "internal": b"chuishao/v1/internal-key",
}
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_SUITE_V2 = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


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
    return seal_v1(key, public, slot_info(case_id, purpose), ephemeral=ephemeral, rng=rng)


def open_key(slot: bytes, private: bytes, case_id: bytes, purpose: str = "case") -> bytes:
    """Open an 80-byte slot with the recipient's raw private key; returns the 32-byte key."""
    try:
        info = slot_info(case_id, purpose)
    except Exception:
        raise OpenError() from None
    return open_v1(slot, private, info)


def seal_key_v2(
    key: bytes,
    public: bytes,
    case_id: bytes,
    purpose: str = "case",
    *,
    eseed: bytes | None = None,
    mlkem_encaps: _xwing.MlkemEncaps | None = None,
) -> bytes:
    """Seal a 32-byte key to a 1216-byte X-Wing public key; returns the 1168-byte slot.

    Reproducible output (vectors only) needs both the 64-byte `eseed` and ML-KEM's
    derandomized encapsulation `mlkem_encaps`, which cryptography does not expose; then the
    written-out HPKE in _hpke runs. Otherwise cryptography's HPKE draws the randomness.
    """
    return seal_v2(key, public, slot_info(case_id, purpose), eseed=eseed,
                   mlkem_encaps=mlkem_encaps)


def open_key_v2(slot: bytes, seed: bytes, case_id: bytes, purpose: str = "case") -> bytes:
    """Open a 1168-byte v2 slot with the recipient's 32-byte X-Wing seed."""
    try:
        info = slot_info(case_id, purpose)
    except Exception:
        raise OpenError() from None
    return open_v2(slot, seed, info)


# The four seal/open steps under any `info`: case and internal keys here, claim keys in
# _claim (PROTOCOL 15).


def seal_v1(key: bytes, public: bytes, info: bytes, *, ephemeral: bytes | None = None,
            rng: Rng | None = None) -> bytes:
    key = require_bytes(key, 32, "key")
    public = require_bytes(public, 32, "public key")
    if ephemeral is None and rng is not None:
        ephemeral = random_bytes(32, rng)
    if ephemeral is not None:
        sk_e = require_bytes(ephemeral, 32, "ephemeral key")
        slot = _hpke.X25519_SHA256_AES256GCM.seal(public, info, b"", key, sk_e)
    else:
        slot = _SUITE.encrypt(key, x25519.X25519PublicKey.from_public_bytes(public), info)
    assert len(slot) == SLOT_SIZE
    return slot


def open_v1(slot: bytes, private: bytes, info: bytes) -> bytes:
    try:
        slot = require_bytes(slot, SLOT_SIZE, "slot")
        priv = x25519.X25519PrivateKey.from_private_bytes(require_bytes(private, 32, "private"))
        key = _SUITE.decrypt(slot, priv, info)
    except Exception:
        raise OpenError() from None
    if len(key) != 32:
        raise OpenError()
    return key


def seal_v2(key: bytes, public: bytes, info: bytes, *, eseed: bytes | None = None,
            mlkem_encaps: _xwing.MlkemEncaps | None = None) -> bytes:
    key = require_bytes(key, 32, "key")
    public = require_bytes(public, _xwing.PUBLIC_SIZE, "X-Wing public key")
    if (eseed is None) != (mlkem_encaps is None):
        raise ValueError("eseed and mlkem_encaps go together")
    if eseed is not None and mlkem_encaps is not None:
        suite = _hpke.Suite(
            _hpke.KEM_MLKEM768_X25519,
            _hpke.KDF_HKDF_SHA256,
            _hpke.AEAD_AES_256_GCM,
            mlkem_encaps,
        )
        slot = suite.seal(public, info, b"", key, require_bytes(eseed, 64, "eseed"))
    else:
        slot = _SUITE_V2.encrypt(key, _xwing.load_public(public), info)
    assert len(slot) == SLOT_SIZE_V2
    return slot


def open_v2(slot: bytes, seed: bytes, info: bytes) -> bytes:
    try:
        slot = require_bytes(slot, SLOT_SIZE_V2, "slot")
        priv = _xwing.private_key(require_bytes(seed, _xwing.SEED_SIZE, "seed"))
        key = _SUITE_V2.decrypt(slot, priv, info)
    except Exception:
        raise OpenError() from None
    if len(key) != 32:
        raise OpenError()
    return key


def open_slot(
    suite: str, slot: bytes, private: bytes, case_id: bytes, purpose: str = "case"
) -> bytes:
    """Open a slot of either suite with the matching private key (X25519 raw / X-Wing seed).

    An unknown suite string is an OpenError, like any other slot that cannot be opened.
    """
    if suite == SUITE:
        return open_key(slot, private, case_id, purpose)
    if suite == SUITE_V2:
        return open_key_v2(slot, private, case_id, purpose)
    raise OpenError()


def seal_slot(
    suite: str, key: bytes, public: bytes, case_id: bytes, purpose: str = "case"
) -> bytes:
    """Seal a slot of the given suite with fresh randomness."""
    if suite == SUITE:
        return seal_key(key, public, case_id, purpose)
    if suite == SUITE_V2:
        return seal_key_v2(key, public, case_id, purpose)
    raise ValueError("unknown suite")
