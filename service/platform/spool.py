"""One upload waiting on disk, sealed, while its request is still being read.

A no-JavaScript post is read before its request may take a database gate (a slow phone must
not hold the write lock), and a video is too large to wait in memory. So its bytes wait in an
anonymous file (``O_TMPFILE`` on Linux: no name, gone when closed or when the process dies)
in the data directory, in pieces sealed under a key only this object holds
(``crypto.ScratchKey``): plaintext evidence never touches the disk. Memory: one piece.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import crypto

PIECE = 65536


class Spool:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by close)
        self._key = crypto.ScratchKey()
        self._pending = bytearray()
        self._pieces = 0
        self._last = 0  # plaintext length of the final piece
        self.size = 0

    def write(self, data: bytes) -> None:
        self._pending += data
        self.size += len(data)
        while len(self._pending) >= PIECE:
            self._put(bytes(self._pending[:PIECE]))
            del self._pending[:PIECE]

    def finish(self) -> None:
        """No more bytes: the rest is sealed (a file of whole pieces ends on an empty one)."""
        self._put(bytes(self._pending))
        self._pending.clear()

    def _put(self, piece: bytes) -> None:
        assert self._file is not None
        self._file.write(self._key.seal(self._pieces, piece))
        self._pieces += 1
        self._last = len(piece)

    def read(self) -> Iterator[bytes]:
        """The plaintext again, a piece at a time (after ``finish``)."""
        assert self._file is not None
        self._file.flush()
        self._file.seek(0)
        for index in range(self._pieces):
            length = (PIECE if index < self._pieces - 1 else self._last) + crypto.SCRATCH_TAG
            piece = self._file.read(length)
            if len(piece) != length:
                raise OSError("the spool file is shorter than what was written to it")
            yield self._key.open(index, piece)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
