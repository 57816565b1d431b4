"""Streamed file encryption: STREAM construction over AES-256-GCM in 64 KiB chunks.

Memory use is bounded by one chunk plus one piece of the input, whatever the file size.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._encoding import require_bytes
from ._errors import OpenError
from ._items import padme

CHUNK_SIZE = 65536
TAG_SIZE = 16
PREFIX_SIZE = 7
_MAX_CHUNKS = 1 << 32  # the counter is a uint32
_KEY_INFO = b"chuishao/v1/file"
_AAD_LABEL = b"chuishao/v1/file\x00"


def chunk_key(file_key: bytes) -> bytes:
    """HKDF-SHA256(ikm=file_key, salt=empty, info="chuishao/v1/file", L=32)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(
        require_bytes(file_key, 32, "file_key")
    )


def file_aad(case_id: bytes, file_id: bytes) -> bytes:
    return (
        _AAD_LABEL + require_bytes(case_id, 16, "case_id") + require_bytes(file_id, 16, "file_id")
    )


def chunk_nonce(nonce_prefix: bytes, index: int, last: bool) -> bytes:
    """nonce_prefix(7) || uint32_be(index) || 0x01 if last else 0x00."""
    return nonce_prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def layout(size: int) -> tuple[int, int]:
    """(padded stream length, number of chunks) for a file of `size` content bytes."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("size must be a non-negative int")
    padded = padme(size + 1)
    count = -(-padded // CHUNK_SIZE)
    if count > _MAX_CHUNKS:
        raise ValueError("file too large")
    return padded, count


def _padding_bytes(start: int, end: int, size: int) -> bytes:
    """The padding that positions [max(start, size), end) of the stream must hold."""
    first = max(start, size)
    if first >= end:
        return b""
    if first == size:
        return b"\x80" + bytes(end - first - 1)
    return bytes(end - first)


def _rechunk(source: Iterable[bytes], width: int) -> Iterator[bytes]:
    """Yield pieces of exactly `width` bytes (the last may be shorter) from any chunking."""
    buf = bytearray()
    for piece in source:
        buf += piece
        if len(buf) < width:
            continue
        # Slice by offset and trim once, so a huge input piece costs linear time.
        start = 0
        with memoryview(buf) as view:
            while len(buf) - start >= width:
                yield bytes(view[start : start + width])
                start += width
        del buf[:start]
    if buf:
        yield bytes(buf)


def seal_file(
    file_key: bytes,
    nonce_prefix: bytes,
    case_id: bytes,
    file_id: bytes,
    source: Iterable[bytes],
    size: int,
) -> Iterator[bytes]:
    """Encrypt `size` bytes from `source` (any chunking); yields the stored chunks.

    Raises ValueError (while iterating) if the source does not hold exactly `size` bytes;
    output produced before that must be discarded.
    """
    aead = AESGCM(chunk_key(file_key))
    prefix = require_bytes(nonce_prefix, PREFIX_SIZE, "nonce_prefix")
    aad = file_aad(case_id, file_id)
    padded, count = layout(size)
    return _seal_stream(aead, prefix, aad, source, size, padded, count)


def _seal_stream(
    aead: AESGCM,
    prefix: bytes,
    aad: bytes,
    source: Iterable[bytes],
    size: int,
    padded: int,
    count: int,
) -> Iterator[bytes]:
    index = 0
    position = 0
    pending = _rechunk(source, CHUNK_SIZE)
    while index < count:
        end = min(position + CHUNK_SIZE, padded)
        want = max(0, min(end, size) - position)
        content = next(pending, b"") if want else b""
        if len(content) != want:
            raise ValueError("source length does not match size")
        plaintext = content + _padding_bytes(position, end, size)
        last = index == count - 1
        yield aead.encrypt(chunk_nonce(prefix, index, last), plaintext, aad)
        index += 1
        position = end
    if next(pending, b""):
        raise ValueError("source length does not match size")


def open_file(
    file_key: bytes,
    nonce_prefix: bytes,
    case_id: bytes,
    file_id: bytes,
    chunks: Iterable[bytes],
    size: int,
) -> Iterator[bytes]:
    """Decrypt stored chunks (any chunking of the stored bytes); yields file content.

    Raises OpenError (while iterating) on any damage, including a missing final chunk.
    Content already yielded is authentic but incomplete: use it only if iteration finishes.
    """
    try:
        aead = AESGCM(chunk_key(file_key))
        prefix = require_bytes(nonce_prefix, PREFIX_SIZE, "nonce_prefix")
        aad = file_aad(case_id, file_id)
        padded, count = layout(size)
    except Exception:
        raise OpenError() from None
    return _open_stream(aead, prefix, aad, chunks, size, padded, count)


def _open_stream(
    aead: AESGCM,
    prefix: bytes,
    aad: bytes,
    chunks: Iterable[bytes],
    size: int,
    padded: int,
    count: int,
) -> Iterator[bytes]:
    records = _rechunk(chunks, CHUNK_SIZE + TAG_SIZE)
    position = 0
    for index in range(count):
        end = min(position + CHUNK_SIZE, padded)
        record = next(records, b"")
        # The size fixes every chunk length and which chunk carries the last flag, so a
        # truncated, extended, reordered or relabelled stream fails here or at the tag.
        if len(record) != end - position + TAG_SIZE:
            raise OpenError()
        try:
            plaintext = aead.decrypt(chunk_nonce(prefix, index, index == count - 1), record, aad)
        except Exception:
            raise OpenError() from None
        keep = max(0, min(end, size) - position)
        if not hmac.compare_digest(plaintext[keep:], _padding_bytes(position, end, size)):
            raise OpenError()
        if keep:
            yield plaintext[:keep]
        position = end
    if next(records, b""):
        raise OpenError()
