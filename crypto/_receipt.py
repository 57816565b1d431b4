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

RECEIPT_DIGITS = 20  # the random digits every key is derived from
RECEIPT_LENGTH = 21  # what a receipt given today has: those 20 digits and a Damm check digit
ITERATIONS = 600_000
_SALT_LABEL = b"chuishao/v1/receipt\x00"
_XWING_INFO = b"chuishao/v2/receipt-xwing"
# Characters dropped while normalizing: whitespace and dash punctuation (after NFKC).
_DROP_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Pd"})
_DROP_CHARS = frozenset("\t\n\v\f\r")
# Damm's quasigroup of order 10 (weakly totally anti-symmetric, zero diagonal): a check digit
# over it catches every single-digit error and every swap of two neighbouring digits.
DAMM_TABLE = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class ReceiptMistyped(ValueError):
    """21 digits whose check digit does not match: a digit was mistyped or two were swapped."""


@dataclass(frozen=True)
class ReceiptKeys:
    private: bytes  # X25519 raw private key (seed[0:32])
    public: bytes  # its raw public key; the reporter's slot is sealed to it
    lookup_secret: bytes  # seed[32:64]; the browser presents it to find the case
    lookup_hash: bytes  # SHA-256(lookup_secret); all the server stores
    xwing_seed: bytes  # HKDF(seed, "chuishao/v2/receipt-xwing", 32): the v2 private key
    xwing_public: bytes  # its 1216-byte X-Wing public key; the reporter's v2 slot


def damm_check_digit(digits: str) -> str:
    """The Damm check digit of a string of ASCII digits."""
    interim = 0
    for c in digits:
        interim = DAMM_TABLE[interim][ord(c) - 48]
    return str(interim)


def new_receipt(*, rng: Rng | None = None) -> str:
    """20 uniform decimal digits by rejection sampling (byte b < 250 gives digit b % 10),
    then their Damm check digit: 21 digits."""
    digits: list[str] = []
    while len(digits) < RECEIPT_DIGITS:
        for b in random_bytes(32, rng):
            if b < 250:
                digits.append(str(b % 10))
                if len(digits) == RECEIPT_DIGITS:
                    break
    random_digits = "".join(digits)
    return random_digits + damm_check_digit(random_digits)


def _receipt_text(text: str) -> str:
    """NFKC, drop whitespace and dashes; must leave 21 (checked) or 20 (older) ASCII digits."""
    if not isinstance(text, str):
        raise TypeError("receipt must be str")
    folded = unicodedata.normalize("NFKC", text)
    kept = "".join(
        c
        for c in folded
        if c not in _DROP_CHARS and unicodedata.category(c) not in _DROP_CATEGORIES
    )
    if len(kept) not in (RECEIPT_DIGITS, RECEIPT_LENGTH) or not all("0" <= c <= "9" for c in kept):
        raise ValueError("a receipt is 21 digits (20 if given before the check digit)")
    if len(kept) == RECEIPT_LENGTH and damm_check_digit(kept) != "0":
        raise ReceiptMistyped("a digit of the receipt is mistyped")
    return kept


def normalize_receipt(text: str) -> str:
    """The 20 digits the keys derive from: a 21-digit receipt's check digit is verified and
    dropped; 20 digits (a receipt given before the check digit) are taken as they are.
    ReceiptMistyped if the check fails, ValueError for anything else that is not a receipt."""
    return _receipt_text(text)[:RECEIPT_DIGITS]


def format_receipt(receipt: str) -> str:
    """As shown to the reporter: 21 digits in seven groups of three, an older 20-digit
    receipt in its five groups of four."""
    kept = _receipt_text(receipt)
    size = 3 if len(kept) == RECEIPT_LENGTH else 4
    return " ".join(kept[i : i + size] for i in range(0, len(kept), size))


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
