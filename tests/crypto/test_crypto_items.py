"""PADMÉ and sealed items."""

from __future__ import annotations

import math

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

import crypto
from crypto import OpenError, _items


def padme_reference(n: int) -> int:
    """The formula as written in the protocol, with floats kept out via exact log2."""
    if n < 2:
        return n
    e = math.floor(math.log2(n))
    s = math.floor(math.log2(e)) + 1
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 3),
        (9, 10),
        (255, 256),
        (256, 256),
        (257, 272),
        (272, 272),
        (273, 288),
        (1000, 1024),
        (65536, 65536),
        (65537, 67584),
        (1_000_000, 1_015_808),
    ],
)
def test_padme_known_values(n: int, expected: int) -> None:
    assert crypto.padme(n) == expected


@given(st.integers(min_value=0, max_value=2**40))
def test_padme_properties(n: int) -> None:
    p = crypto.padme(n)
    assert p == padme_reference(n)
    assert n <= p <= n + n // 8 + 1
    assert crypto.padme(p) == p


def test_padme_rejects_negative() -> None:
    with pytest.raises(ValueError):
        crypto.padme(-1)


KEY = bytes(range(32))
CASE = bytes(16)
ITEM = b"\x01" * 16


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"text": "车间 3 号线 有 隐患"},
        {"n": 1, "list": [True, None, "x" * 5000]},
        {"nested": {"a": {"b": []}}, "emoji": "⚠️🔥"},
    ],
)
def test_item_round_trip(obj: dict) -> None:
    blob = crypto.seal_item(KEY, CASE, ITEM, "report", obj)
    assert blob[0] == 1
    padded_len = len(blob) - 1 - 12 - 16
    assert padded_len == crypto.padme(max(len(_items.encode_json(obj)) + 1, 256))
    assert crypto.open_item(KEY, CASE, ITEM, "report", blob) == obj


def test_item_json_is_compact_and_keeps_unicode() -> None:
    assert _items.encode_json({"a": "隐患", "b": [1, 2]}) == '{"a":"隐患","b":[1,2]}'.encode()
    with pytest.raises(ValueError):
        crypto.seal_item(KEY, CASE, ITEM, "report", {"x": float("nan")})
    with pytest.raises(ValueError):
        crypto.seal_item(KEY, CASE, ITEM, "report", {"x": "\ud800"})


@pytest.mark.parametrize("kind", ["", "Report", "report ", "a" * 33, "rép", "report\n"])
def test_invalid_kind(kind: str) -> None:
    with pytest.raises(ValueError):
        crypto.seal_item(KEY, CASE, ITEM, kind, {})
    with pytest.raises(OpenError):
        crypto.open_item(KEY, CASE, ITEM, kind, b"\x01" + bytes(300))


def test_item_wrong_context_fails() -> None:
    blob = crypto.seal_item(KEY, CASE, ITEM, "message", {"t": "hi"})
    for key, case, item, kind in [
        (bytes(32), CASE, ITEM, "message"),
        (KEY, b"\x02" * 16, ITEM, "message"),
        (KEY, CASE, b"\x02" * 16, "message"),
        (KEY, CASE, ITEM, "reply"),
    ]:
        with pytest.raises(OpenError):
            crypto.open_item(key, case, item, kind, blob)


def _raw_item(plaintext: bytes, kind: str = "report") -> bytes:
    """Encrypt an arbitrary (possibly badly padded) plaintext the way seal_item would."""
    nonce = b"\x00" * 12
    aad = _items.item_aad(CASE, ITEM, kind)
    return b"\x01" + nonce + AESGCM(_items.item_subkey(KEY, kind)).encrypt(nonce, plaintext, aad)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"{}" + bytes(254),  # no 0x80 marker
        b"{}\x80" + bytes(254),  # 257 bytes: not a PADMÉ length
        b"{}\x80" + bytes(260),  # longer than padme(max(3, 256))
        b"{}\x80\x01" + bytes(252),  # non-zero byte after the marker
        b"[1]\x80" + bytes(252),  # JSON but not an object
        b'{"a":\xff}\x80' + bytes(248),  # invalid UTF-8
        b'{"a":NaN}\x80' + bytes(246),  # not JSON
        b"\x80" + bytes(255),  # empty body
        bytes(256),
        _items.pad(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 256),  # too deep
    ],
)
def test_item_bad_plaintext_fails(plaintext: bytes) -> None:
    with pytest.raises(OpenError):
        crypto.open_item(KEY, CASE, ITEM, "report", _raw_item(plaintext))


def test_item_correct_raw_padding_opens() -> None:
    assert crypto.open_item(KEY, CASE, ITEM, "report", _raw_item(b"{}\x80" + bytes(253))) == {}


def test_item_version_and_length() -> None:
    blob = crypto.seal_item(KEY, CASE, ITEM, "report", {})
    for bad in [b"\x02" + blob[1:], b"\x00" + blob[1:], blob[:284], b"", blob[:1]]:
        with pytest.raises(OpenError):
            crypto.open_item(KEY, CASE, ITEM, "report", bad)
