"""Any change to stored ciphertext or to its context must raise OpenError, nothing else."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crypto
from crypto import CHUNK_SIZE, OpenError

PRIVATE, PUBLIC = crypto.generate_keypair()
KEY = crypto.new_key()
CASE = crypto.new_id()
ITEM = crypto.new_id()
FILE = crypto.new_id()
PREFIX = os.urandom(7)
SLOT = crypto.seal_key(KEY, PUBLIC, CASE)
BLOB = crypto.seal_item(KEY, CASE, ITEM, "report", {"text": "配电箱 门 未 关"})
SMALL = os.urandom(1000)
SMALL_STORED = list(crypto.seal_file(KEY, PREFIX, CASE, FILE, [SMALL], len(SMALL)))
BIG = os.urandom(2 * CHUNK_SIZE + 1000)
BIG_STORED = list(crypto.seal_file(KEY, PREFIX, CASE, FILE, [BIG], len(BIG)))
KID = crypto.key_id(PUBLIC)
WRAPPED = crypto.wrap_private_key(KEY, PRIVATE, KID)


def flip(data: bytes, pos: int, mask: int = 1) -> bytes:
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


def open_file(stored: list[bytes], size: int, *, case: bytes = CASE, file: bytes = FILE) -> bytes:
    return b"".join(crypto.open_file(KEY, PREFIX, case, file, stored, size))


def test_fixtures_open() -> None:
    assert crypto.open_key(SLOT, PRIVATE, CASE) == KEY
    assert crypto.open_item(KEY, CASE, ITEM, "report", BLOB)["text"] == "配电箱 门 未 关"
    assert open_file(SMALL_STORED, len(SMALL)) == SMALL
    assert open_file(BIG_STORED, len(BIG)) == BIG
    assert len(BIG_STORED) == 3 and len(SMALL_STORED) == 1


def test_every_slot_byte() -> None:
    for pos in range(len(SLOT)):
        with pytest.raises(OpenError):
            crypto.open_key(flip(SLOT, pos), PRIVATE, CASE)


def test_every_item_byte() -> None:
    for pos in range(len(BLOB)):
        with pytest.raises(OpenError):
            crypto.open_item(KEY, CASE, ITEM, "report", flip(BLOB, pos))


def test_every_wrapped_key_byte() -> None:
    for pos in range(len(WRAPPED)):
        with pytest.raises(OpenError):
            crypto.unwrap_private_key(KEY, flip(WRAPPED, pos), KID)


def test_every_small_file_byte() -> None:
    (chunk,) = SMALL_STORED
    for pos in range(len(chunk)):
        with pytest.raises(OpenError):
            open_file([flip(chunk, pos)], len(SMALL))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_big_file_byte(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(BIG_STORED) - 1))
    pos = data.draw(st.integers(0, len(BIG_STORED[index]) - 1))
    mask = data.draw(st.integers(1, 255))
    stored = list(BIG_STORED)
    stored[index] = flip(stored[index], pos, mask)
    with pytest.raises(OpenError):
        open_file(stored, len(BIG))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 79), st.integers(1, 255))
def test_any_slot_byte_any_mask(pos: int, mask: int) -> None:
    with pytest.raises(OpenError):
        crypto.open_key(flip(SLOT, pos, mask), PRIVATE, CASE)


@pytest.mark.parametrize(
    "order",
    [
        [0, 1],  # truncated: final chunk missing
        [0],
        [],
        [1, 0, 2],  # reordered
        [0, 2, 1],
        [0, 2],  # middle dropped
        [1, 2],
        [0, 0, 1, 2],  # duplicated
        [0, 1, 1, 2],
        [0, 1, 2, 2],
        [0, 1, 2, 0],  # extra chunk after the last
    ],
)
def test_chunk_sequence_changes(order: list[int]) -> None:
    with pytest.raises(OpenError):
        open_file([BIG_STORED[i] for i in order], len(BIG))


def test_stream_extensions_and_truncations() -> None:
    joined = b"".join(BIG_STORED)
    for stored in [joined[:-1], joined + b"\x00", joined[:-17], joined[: 2 * (CHUNK_SIZE + 16)]]:
        with pytest.raises(OpenError):
            open_file([stored], len(BIG))


def test_chunk_from_another_file_or_position() -> None:
    other = list(crypto.seal_file(KEY, PREFIX, CASE, crypto.new_id(), [BIG], len(BIG)))
    with pytest.raises(OpenError):
        open_file([BIG_STORED[0], other[1], BIG_STORED[2]], len(BIG))


def test_last_flag_is_checked() -> None:
    """A stream cut right after a full chunk can't pass: that chunk lacks the last flag."""
    data = os.urandom(3 * CHUNK_SIZE)
    stored = list(crypto.seal_file(KEY, PREFIX, CASE, FILE, [data], len(data)))
    for size in (CHUNK_SIZE - 1, 2 * CHUNK_SIZE - 1):
        with pytest.raises(OpenError):
            open_file(stored[: size // CHUNK_SIZE + 1], size)


@pytest.mark.parametrize("delta", [-1000, -1, 1, 1000, CHUNK_SIZE])
def test_wrong_size(delta: int) -> None:
    with pytest.raises(OpenError):
        open_file(BIG_STORED, len(BIG) + delta)
    with pytest.raises(OpenError):
        open_file(SMALL_STORED, max(0, len(SMALL) + delta))


def test_wrong_ids_and_kind_and_purpose() -> None:
    other = crypto.new_id()
    with pytest.raises(OpenError):
        crypto.open_key(SLOT, PRIVATE, other)
    with pytest.raises(OpenError):
        crypto.open_key(SLOT, PRIVATE, CASE, "internal")
    internal = crypto.seal_key(KEY, PUBLIC, CASE, "internal")
    with pytest.raises(OpenError):
        crypto.open_key(internal, PRIVATE, CASE, "case")
    for case, item, kind in [
        (other, ITEM, "report"),
        (CASE, other, "report"),
        (CASE, ITEM, "note"),
    ]:
        with pytest.raises(OpenError):
            crypto.open_item(KEY, case, item, kind, BLOB)
    with pytest.raises(OpenError):
        open_file(BIG_STORED, len(BIG), case=other)
    with pytest.raises(OpenError):
        open_file(BIG_STORED, len(BIG), file=other)
    with pytest.raises(OpenError):
        b"".join(crypto.open_file(KEY, os.urandom(7), CASE, FILE, BIG_STORED, len(BIG)))
    with pytest.raises(OpenError):
        b"".join(crypto.open_file(crypto.new_key(), PREFIX, CASE, FILE, BIG_STORED, len(BIG)))
