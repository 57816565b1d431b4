"""Reward claims: a one-time claim code derived from the receipt, and the claim key slot.

The code needs nothing new kept by the reporter: it is an HMAC of the reward id under the
receipt's lookup secret. The server stores only SHA-256 of the code, registered when the
reporter claims. The claim itself (payout method, identity) is a sealed item of kind "claim"
under a fresh claim key, slotted to the finance officers and the recovery key only: suite v2
(X-Wing) to those with an X-Wing key, v1 to the rest, exactly as case-key slots.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from . import _slots, _xwing
from ._encoding import B32_ALPHABET, Rng, b32_encode, require_bytes
from ._errors import OpenError
from ._slots import SUITE, SUITE_V2

CLAIM_CODE_LABEL = b"chuishao/v1/claim\x00"
CLAIM_KEY_LABEL = b"chuishao/v1/claim-key\x00"
CLAIM_CODE_CHARS = 16  # base32 of 10 bytes: 80 bits
_DROP_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Pd"})
_DROP_CHARS = frozenset("\t\n\v\f\r")


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
    """The same for both suites (as for case slots): HPKE's suite_id separates them."""
    return CLAIM_KEY_LABEL + require_bytes(reward_id, 16, "reward_id")


def seal_claim_key(key: bytes, public: bytes, reward_id: bytes, *,
                   ephemeral: bytes | None = None, rng: Rng | None = None) -> bytes:
    """The 32-byte claim key sealed to one finance officer (or the recovery key): 80 bytes."""
    return _slots.seal_v1(key, public, claim_key_info(reward_id), ephemeral=ephemeral, rng=rng)


def open_claim_key(slot: bytes, private: bytes, reward_id: bytes) -> bytes:
    try:
        info = claim_key_info(reward_id)
    except Exception:
        raise OpenError() from None
    return _slots.open_v1(slot, private, info)


def seal_claim_key_v2(key: bytes, public: bytes, reward_id: bytes, *,
                      eseed: bytes | None = None,
                      mlkem_encaps: _xwing.MlkemEncaps | None = None) -> bytes:
    """The claim key sealed to a 1216-byte X-Wing public key (suite v2): 1168 bytes.
    ``eseed`` with ``mlkem_encaps`` is deterministic, for vectors only (as seal_key_v2)."""
    return _slots.seal_v2(key, public, claim_key_info(reward_id), eseed=eseed,
                          mlkem_encaps=mlkem_encaps)


def open_claim_key_v2(slot: bytes, seed: bytes, reward_id: bytes) -> bytes:
    try:
        info = claim_key_info(reward_id)
    except Exception:
        raise OpenError() from None
    return _slots.open_v2(slot, seed, info)


def seal_claim_slot(suite: str, key: bytes, public: bytes, reward_id: bytes) -> bytes:
    """A claim-key slot of the given suite with fresh randomness."""
    if suite == SUITE:
        return seal_claim_key(key, public, reward_id)
    if suite == SUITE_V2:
        return seal_claim_key_v2(key, public, reward_id)
    raise ValueError("unknown suite")


def open_claim_slot(suite: str, slot: bytes, private: bytes, reward_id: bytes) -> bytes:
    """Open a claim-key slot of either suite (X25519 raw key / X-Wing seed); an unknown
    suite string is an OpenError."""
    if suite == SUITE:
        return open_claim_key(slot, private, reward_id)
    if suite == SUITE_V2:
        return open_claim_key_v2(slot, private, reward_id)
    raise OpenError()
