"""Reward claims: a one-time claim code derived from the receipt, and the claim key slot.

The code needs nothing new kept by the reporter: it is an HMAC of the reward id under the
receipt's lookup secret. The server stores only SHA-256 of the code, registered when the
reporter claims. The claim itself (payout method, identity) is a sealed item of kind "claim"
under a fresh claim key, slotted to the finance officers and the recovery key only.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from . import _hpke
from ._encoding import B32_ALPHABET, Rng, b32_encode, random_bytes, require_bytes
from ._errors import OpenError
from ._slots import SLOT_SIZE

CLAIM_CODE_LABEL = b"chuishao/v1/claim\x00"
CLAIM_KEY_LABEL = b"chuishao/v1/claim-key\x00"
CLAIM_CODE_CHARS = 16  # base32 of 10 bytes: 80 bits
_DROP_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Pd"})
_DROP_CHARS = frozenset("\t\n\v\f\r")
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def derive_claim_code(lookup_secret: bytes, reward_id: bytes) -> str:
    """base32(HMAC-SHA256(lookup_secret, "chuishao/v1/claim" 0x00 reward_id)[0:10]), 16 chars."""
    mac = hmac.new(require_bytes(lookup_secret, 32, "lookup_secret"),
                   CLAIM_CODE_LABEL + require_bytes(reward_id, 16, "reward_id"),
                   hashlib.sha256).digest()
    return b32_encode(mac[:10])


def normalize_claim_code(text: str) -> str:
    """NFKC, drop whitespace and dashes, upper-case; 16 base32 characters (else ValueError)."""
    if not isinstance(text, str):
        raise TypeError("claim code must be str")
    folded = unicodedata.normalize("NFKC", text)
    kept = "".join(c for c in folded
                   if c not in _DROP_CHARS and unicodedata.category(c) not in _DROP_CATEGORIES)
    kept = kept.upper()
    if len(kept) != CLAIM_CODE_CHARS or not all(c in B32_ALPHABET for c in kept):
        raise ValueError("a claim code is 16 letters and digits")
    return kept


def format_claim_code(code: str) -> str:
    """Four groups of four separated by '-': ABCD-EFGH-JKLM-NPQR."""
    norm = normalize_claim_code(code)
    return "-".join(norm[i:i + 4] for i in range(0, CLAIM_CODE_CHARS, 4))


def claim_code_hash(code: str) -> bytes:
    """SHA-256 of the normalized code's ASCII: all the server keeps."""
    return hashlib.sha256(normalize_claim_code(code).encode("ascii")).digest()


def claim_key_info(reward_id: bytes) -> bytes:
    return CLAIM_KEY_LABEL + require_bytes(reward_id, 16, "reward_id")


def seal_claim_key(key: bytes, public: bytes, reward_id: bytes, *,
                   ephemeral: bytes | None = None, rng: Rng | None = None) -> bytes:
    """The 32-byte claim key sealed to one finance officer (or the recovery key): 80 bytes."""
    key = require_bytes(key, 32, "key")
    public = require_bytes(public, 32, "public key")
    info = claim_key_info(reward_id)
    if ephemeral is None and rng is not None:
        ephemeral = random_bytes(32, rng)
    if ephemeral is not None:
        slot = _hpke.X25519_SHA256_AES256GCM.seal(public, info, b"", key,
                                                   require_bytes(ephemeral, 32, "ephemeral key"))
    else:
        slot = _SUITE.encrypt(key, x25519.X25519PublicKey.from_public_bytes(public), info)
    assert len(slot) == SLOT_SIZE
    return slot


def open_claim_key(slot: bytes, private: bytes, reward_id: bytes) -> bytes:
    try:
        info = claim_key_info(reward_id)
        raw = require_bytes(slot, SLOT_SIZE, "slot")
        priv = x25519.X25519PrivateKey.from_private_bytes(require_bytes(private, 32, "private"))
        key = _SUITE.decrypt(raw, priv, info)
    except Exception:
        raise OpenError() from None
    if len(key) != 32:
        raise OpenError()
    return key
