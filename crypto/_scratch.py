"""Scratch sealing: bytes a process writes to its own disk for minutes and reads back itself.

The no-JavaScript upload is read from the network before the request may touch the database;
what cannot wait in memory waits on disk in pieces sealed under a key that never leaves the
process (one key per upload, fresh each time), so plaintext never reaches the disk:

    piece = AES-256-GCM(key, nonce = uint96_be(index), data, aad = none)

Each index is used once per key, so a nonce never repeats. Not part of the protocol: nothing
sealed here outlives the request that wrote it.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import OpenError

SCRATCH_TAG = 16


class ScratchKey:
    """A fresh key; seals and opens the pieces of one scratch file."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, index: int, data: bytes) -> bytes:
        return self._aead.encrypt(index.to_bytes(12, "big"), data, None)

    def open(self, index: int, piece: bytes) -> bytes:
        try:
            return self._aead.decrypt(index.to_bytes(12, "big"), piece, None)
        except InvalidTag:
            raise OpenError() from None
