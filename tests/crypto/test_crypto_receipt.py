"""Receipts: generation, display, normalization and derivation."""

from __future__ import annotations

import collections
import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

import crypto

SALT = bytes(range(32))


def test_new_receipt_shape_and_rejection_sampling() -> None:
    stream = iter(itertools.cycle([250, 255, 0, 9, 249, 123]))
    r = crypto.new_receipt(rng=lambda n: bytes(next(stream) for _ in range(n)))
    # 250 and 255 are rejected; 0 -> 0, 9 -> 9, 249 -> 9, 123 -> 3
    assert r == "0993" * 5
    assert len(crypto.new_receipt()) == 20 and crypto.new_receipt().isdigit()


def test_new_receipt_digits_are_roughly_uniform() -> None:
    counts = collections.Counter("".join(crypto.new_receipt() for _ in range(2000)))
    assert set(counts) == set("0123456789")
    assert all(3400 < c < 4600 for c in counts.values())


def test_format_and_normalize() -> None:
    digits = "12345678901234567890"
    assert crypto.format_receipt(digits) == "1234 5678 9012 3456 7890"
    for text in [
        "1234 5678 9012 3456 7890",
        "1234-5678-9012-3456-7890",
        " １２３４　５６７８－９０１２ 3456\t7890\n",  # full-width digits, ideographic space
        "1234\u20135678\u20149012 3456 7890",  # en and em dashes
        "1234\u00a05678 9012 3456 7890",
    ]:
        assert crypto.normalize_receipt(text) == digits
    for bad in [
        "",
        "1234",
        digits + "1",
        digits[:-1] + "a",
        "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠",
        digits[:-1] + ".",
    ]:
        with pytest.raises(ValueError):
            crypto.normalize_receipt(bad)
    with pytest.raises(ValueError):
        crypto.format_receipt("123")


def test_derive_receipt_matches_definition() -> None:
    receipt = "0000 1111 2222 3333 4444"
    keys = crypto.derive_receipt(receipt, SALT, iterations=1000)
    seed = PBKDF2HMAC(
        algorithm=hashes.SHA256(),
        length=64,
        salt=b"chuishao/v1/receipt\x00" + SALT,
        iterations=1000,
    ).derive(b"00001111222233334444")
    assert keys.private == seed[:32]
    assert keys.public == crypto.public_key(seed[:32])
    assert keys.lookup_secret == seed[32:]
    assert keys.lookup_hash == hashlib.sha256(seed[32:]).digest()
    assert crypto.derive_receipt("00001111222233334444", SALT, iterations=1000) == keys
    assert crypto.derive_receipt(receipt, bytes(32), iterations=1000) != keys
    with pytest.raises(ValueError):
        crypto.derive_receipt(receipt, bytes(16), iterations=1000)
    with pytest.raises(ValueError):
        crypto.derive_receipt("123", SALT, iterations=1000)


def test_receipt_key_opens_its_slot() -> None:
    keys = crypto.derive_receipt(crypto.new_receipt(), SALT, iterations=1000)
    case_key, case_id = crypto.new_key(), crypto.new_id()
    slot = crypto.seal_key(case_key, keys.public, case_id)
    assert crypto.open_key(slot, keys.private, case_id) == case_key
