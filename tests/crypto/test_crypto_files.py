"""Streamed files (STREAM over AES-256-GCM)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import crypto
from crypto import CHUNK_SIZE, OpenError, _files

FK = bytes(range(32))
PREFIX = b"\x11" * 7
CASE = b"\x22" * 16
FILE = b"\x33" * 16
TAGGED = CHUNK_SIZE + 16


def pieces(data: bytes, width: int) -> list[bytes]:
    return [data[i : i + width] for i in range(0, len(data), width)]


def seal(data: bytes, width: int = 10_000) -> list[bytes]:
    return list(crypto.seal_file(FK, PREFIX, CASE, FILE, pieces(data, width), len(data)))


def open_all(stored: list[bytes], size: int, **overrides: bytes) -> bytes:
    args = {"file_key": FK, "nonce_prefix": PREFIX, "case_id": CASE, "file_id": FILE}
    args.update(overrides)
    return b"".join(crypto.open_file(chunks=stored, size=size, **args))


@pytest.mark.parametrize(
    "size", [0, 1, 255, 4096, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7]
)
def test_round_trip_and_layout(size: int) -> None:
    data = os.urandom(size)
    stored = seal(data)
    padded = crypto.padme(size + 1)
    count = -(-padded // CHUNK_SIZE)
    assert len(stored) == count
    assert all(len(c) == TAGGED for c in stored[:-1])
    assert len(stored[-1]) == padded - CHUNK_SIZE * (count - 1) + 16
    assert open_all(stored, size) == data


@pytest.mark.parametrize("width", [1, 7, 65535, 65536, 65537, 10**6])
def test_any_source_chunking_gives_same_stream(width: int) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 500)
    assert seal(data, width) == seal(data, 4096)


@pytest.mark.parametrize("width", [1, 1000, TAGGED - 1, TAGGED, TAGGED + 1, 10**6])
def test_open_accepts_any_chunking_of_stored_bytes(width: int) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 500)
    stored = b"".join(seal(data))
    assert open_all(pieces(stored, width), len(data)) == data


def test_plaintext_layout_and_nonces() -> None:
    """Decrypt each chunk by hand: nonce = prefix || uint32_be(i) || last flag."""
    data = os.urandom(CHUNK_SIZE + 10)
    stored = seal(data)
    aead = AESGCM(_files.chunk_key(FK))
    aad = b"chuishao/v1/file\x00" + CASE + FILE
    plain = b"".join(
        aead.decrypt(PREFIX + i.to_bytes(4, "big") + bytes([i == len(stored) - 1]), c, aad)
        for i, c in enumerate(stored)
    )
    assert plain == data + b"\x80" + bytes(crypto.padme(len(data) + 1) - len(data) - 1)


def test_source_length_mismatch_raises_value_error() -> None:
    with pytest.raises(ValueError):
        list(crypto.seal_file(FK, PREFIX, CASE, FILE, [b"abc"], 4))
    with pytest.raises(ValueError):
        list(crypto.seal_file(FK, PREFIX, CASE, FILE, [b"abcde"], 4))
    with pytest.raises(ValueError):
        list(crypto.seal_file(FK, PREFIX, CASE, FILE, [os.urandom(CHUNK_SIZE + 1)], CHUNK_SIZE))
    with pytest.raises(ValueError):
        crypto.seal_file(FK, PREFIX, CASE, FILE, [], -1)
    with pytest.raises(ValueError):
        crypto.seal_file(FK, b"short", CASE, FILE, [], 0)


def test_constant_memory_streaming() -> None:
    """Sealing and opening a large stream hold at most about one chunk at a time."""
    size = 40 * CHUNK_SIZE + 123
    produced = 0

    def source() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(size // 4096):
            produced += 4096
            yield b"\x5a" * 4096
        produced += size % 4096
        yield b"\x5a" * (size % 4096)

    sealed = crypto.seal_file(FK, PREFIX, CASE, FILE, source(), size)
    first = next(sealed)
    assert len(first) == TAGGED and produced <= 2 * CHUNK_SIZE
    opened = crypto.open_file(FK, PREFIX, CASE, FILE, _chain(first, sealed), size)
    total = 0
    for piece in opened:
        assert len(piece) <= CHUNK_SIZE
        total += len(piece)
        assert produced - total <= 3 * CHUNK_SIZE
    assert total == size


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def test_large_padding_spanning_whole_chunks() -> None:
    """Above 2**24 bytes PADMÉ can add whole chunks of padding; they must verify as zeros."""
    size = (1 << 25) + 1  # padme adds ~1 MiB, i.e. many padding-only chunks
    padded, count = _files.layout(size)
    assert padded - size > 2 * CHUNK_SIZE
    tail = crypto.padme(size + 1)
    assert tail == padded and count == -(-padded // CHUNK_SIZE)
    assert _files._padding_bytes(CHUNK_SIZE * (count - 1), padded, size) == bytes(
        padded - CHUNK_SIZE * (count - 1)
    )


def test_open_bad_arguments_raise_open_error() -> None:
    stored = seal(b"hello")
    for kwargs in [{"file_key": b"x"}, {"nonce_prefix": b"x"}, {"case_id": b"x"}]:
        with pytest.raises(OpenError):
            open_all(stored, 5, **kwargs)
    with pytest.raises(OpenError):
        open_all(stored, -1)
