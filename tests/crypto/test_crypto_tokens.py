"""Server tokens (docs/PROTOCOL.md §18): versioned, bound to purpose and context, one error."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import crypto

SECRET = b"s" * 32


def _fixed(n: int) -> bytes:
    return bytes(range(n))


def test_round_trip_and_the_version_byte() -> None:
    key = crypto.token_key(SECRET, "no-js-followup-capability")
    token = crypto.seal_token(key, b"case-1", b"body")
    raw = crypto.b64u_decode(token)
    assert raw[0] == 1 and len(raw) == 1 + 12 + len(b"body") + 16
    assert crypto.open_token(key, b"case-1", token) == b"body"


def test_a_vector_pins_the_format() -> None:
    key = crypto.token_key(SECRET, "no-js-receipt-page")
    token = crypto.seal_token(key, b"ctx", b"hello", rng=_fixed)
    nonce = bytes(range(12))
    expected = b"\x01" + nonce + AESGCM(key).encrypt(nonce, b"hello", b"\x01ctx")
    assert crypto.b64u_decode(token) == expected


@pytest.mark.parametrize("change", ["context", "purpose", "secret", "bit", "version", "cut"])
def test_every_failure_is_one_open_error(change: str) -> None:
    key = crypto.token_key(SECRET, "no-js-followup-capability")
    token = crypto.seal_token(key, b"case-1", b"body")
    raw = bytearray(crypto.b64u_decode(token))
    context = b"case-1"
    if change == "context":
        context = b"case-2"
    elif change == "purpose":
        key = crypto.token_key(SECRET, "no-js-receipt-page")
    elif change == "secret":
        key = crypto.token_key(b"t" * 32, "no-js-followup-capability")
    elif change == "bit":
        raw[-1] ^= 1
    elif change == "version":
        raw[0] = 2
    elif change == "cut":
        raw = raw[:20]
    with pytest.raises(crypto.OpenError):
        crypto.open_token(key, context, crypto.b64u_encode(bytes(raw)))


@pytest.mark.parametrize("junk", ["", "!!", "a", "=" * 8, "A" * 10_000])
def test_junk_is_the_same_error(junk: str) -> None:
    with pytest.raises(crypto.OpenError):
        crypto.open_token(crypto.token_key(SECRET, "x"), b"", junk)


def test_a_token_from_before_the_version_byte_still_opens() -> None:
    # What the first version issued: nonce || AES-GCM(body, aad = context).
    key = crypto.token_key(SECRET, "no-js-followup-capability")
    nonce = os.urandom(12)
    old = crypto.b64u_encode(nonce + AESGCM(key).encrypt(nonce, b"body", b"case-1"))
    assert crypto.open_token(key, b"case-1", old) == b"body"
    with pytest.raises(crypto.OpenError):
        crypto.open_token(key, b"case-2", old)
