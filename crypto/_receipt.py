"""Receipts: the reporter's only secret, and the keys derived from it."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from . import _xwing
from ._encoding import Rng, random_bytes, require_bytes
from ._keys import public_key

RECEIPT_DIGITS = 20
ITERATIONS = 600_000
_SALT_LABEL = b"chuishao/v1/receipt\x00"
_XWING_INFO = b"chuishao/v2/receipt-xwing"
# Characters dropped while normalizing: whitespace and dash punctuation (after NFKC).
_DROP_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Pd"})
_DROP_CHARS = frozenset("\t\n\v\f\r")


@dataclass(frozen=True)
class ReceiptKeys:
    private: bytes  # X25519 raw private key (seed[0:32])
    public: bytes  # its raw public key; the reporter's slot is sealed to it
    lookup_secret: bytes  # seed[32:64]; the browser presents it to find the case
    lookup_hash: bytes  # SHA-256(lookup_secret); all the server stores
    xwing_seed: bytes  # HKDF(seed, "chuishao/v2/receipt-xwing", 32): the v2 private key
    xwing_public: bytes  # its 1216-byte X-Wing public key; the reporter's v2 slot


def new_receipt(*, rng: Rng | None = None) -> str:
    """20 uniform decimal digits by rejection sampling: byte b < 250 gives digit b % 10."""
    digits: list[str] = []
    while len(digits) < RECEIPT_DIGITS:
        for b in random_bytes(32, rng):
            if b < 250:
                digits.append(str(b % 10))
                if len(digits) == RECEIPT_DIGITS:
                    break
    return "".join(digits)


def normalize_receipt(text: str) -> str:
    """NFKC, drop whitespace and dashes; must leave exactly 20 ASCII digits (else ValueError)."""
    if not isinstance(text, str):
        raise TypeError("receipt must be str")
    folded = unicodedata.normalize("NFKC", text)
    kept = "".join(
        c
        for c in folded
        if c not in _DROP_CHARS and unicodedata.category(c) not in _DROP_CATEGORIES
    )
    if len(kept) != RECEIPT_DIGITS or not all("0" <= c <= "9" for c in kept):
        raise ValueError("a receipt is 20 digits")
    return kept


def format_receipt(digits: str) -> str:
    """Five groups of four digits separated by single spaces."""
    norm = normalize_receipt(digits)
    return " ".join(norm[i : i + 4] for i in range(0, RECEIPT_DIGITS, 4))


def derive_receipt(
    receipt: str, installation_salt: bytes, iterations: int = ITERATIONS
) -> ReceiptKeys:
    """seed = PBKDF2-HMAC-SHA256(digits, "chuishao/v1/receipt" 0x00 salt, iterations, 64)."""
    digits = normalize_receipt(receipt)
    salt = _SALT_LABEL + require_bytes(installation_salt, 32, "installation_salt")
    seed = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=64, salt=salt, iterations=iterations
    ).derive(digits.encode("ascii"))
    private = seed[:32]
    lookup_secret = seed[32:]
    xwing_seed = receipt_xwing_seed(seed)
    return ReceiptKeys(
        private=private,
        public=public_key(private),
        lookup_secret=lookup_secret,
        lookup_hash=hashlib.sha256(lookup_secret).digest(),
        xwing_seed=xwing_seed,
        xwing_public=_xwing.public_key(xwing_seed),
    )


def receipt_xwing_seed(seed: bytes) -> bytes:
    """HKDF-SHA256(ikm = the whole 64-byte seed, salt empty, info label, L = 32).

    The whole seed, not seed[0:32]: a quantum adversary who sees the receipt's X25519 public
    key can find seed[0:32]; the lookup secret half is never stored (only its hash).
    """
    ikm = require_bytes(seed, 64, "receipt seed")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_XWING_INFO).derive(ikm)
