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
    assert r == "0993" * 5 + crypto.damm_check_digit("0993" * 5)
    fresh = crypto.new_receipt()
    assert len(fresh) == 21 and fresh.isdigit() and crypto.damm_check_digit(fresh) == "0"


def test_new_receipt_digits_are_roughly_uniform() -> None:
    # The 20 random digits (the check digit is a function of them).
    counts = collections.Counter("".join(crypto.new_receipt()[:20] for _ in range(2000)))
    assert set(counts) == set("0123456789")
    assert all(3400 < c < 4600 for c in counts.values())


def test_check_digit_catches_every_single_error_and_neighbour_swap() -> None:
    assert crypto.damm_check_digit("572") == "4"  # Damm's own worked example
    for _ in range(50):
        receipt = crypto.new_receipt()
        digits = receipt[:20]
        assert crypto.normalize_receipt(receipt) == digits
        for i in range(21):
            for d in "0123456789":
                if d != receipt[i]:
                    with pytest.raises(crypto.ReceiptMistyped):
                        crypto.normalize_receipt(receipt[:i] + d + receipt[i + 1 :])
        for i in range(20):
            if receipt[i] != receipt[i + 1]:
                swapped = receipt[:i] + receipt[i + 1] + receipt[i] + receipt[i + 2 :]
                with pytest.raises(crypto.ReceiptMistyped):
                    crypto.normalize_receipt(swapped)


def test_checked_and_older_receipts() -> None:
    receipt = "12345678901234567890" + crypto.damm_check_digit("12345678901234567890")
    assert receipt == "123456789012345678907"
    assert crypto.format_receipt(receipt) == "123 456 789 012 345 678 907"
    for text in ["123 456 789 012 345 678 907", "123-456-789-012-345-678-907",
                 "１２３　４５６－７８９ 012 345\t678 907\n"]:
        assert crypto.normalize_receipt(text) == receipt[:20]
        assert crypto.format_receipt(text) == "123 456 789 012 345 678 907"
    # 20 digits: a receipt given before the check digit, taken as it is.
    assert crypto.normalize_receipt(receipt[:20]) == receipt[:20]
    assert crypto.format_receipt(receipt[:20]) == "1234 5678 9012 3456 7890"
    # A mistyped digit is told apart from a text that is no receipt at all.
    with pytest.raises(crypto.ReceiptMistyped):
        crypto.normalize_receipt("123 456 789 012 345 678 908")
    for bad in [receipt + "0", receipt[:19], receipt[:20] + "a", "12345678901234567890" * 2]:
        with pytest.raises(ValueError) as refused:
            crypto.normalize_receipt(bad)
        assert not isinstance(refused.value, crypto.ReceiptMistyped)


def test_with_and_without_check_digit_derive_the_same_keys() -> None:
    receipt = crypto.new_receipt()
    keys = crypto.derive_receipt(receipt, SALT, iterations=1000)
    assert crypto.derive_receipt(receipt[:20], SALT, iterations=1000) == keys
    assert crypto.derive_receipt(crypto.format_receipt(receipt), SALT, iterations=1000) == keys
    seed = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=64, salt=b"chuishao/v1/receipt\x00" + SALT,
        iterations=1000,
    ).derive(receipt[:20].encode())
    assert keys.private + keys.lookup_secret == seed
    with pytest.raises(crypto.ReceiptMistyped):
        crypto.derive_receipt(receipt[:20] + str((int(receipt[20]) + 1) % 10), SALT, 1000)


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
