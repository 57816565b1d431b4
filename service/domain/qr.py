"""QR symbols (segno) as the drawings here need them: runs of dark modules.

Byte mode, error correction level M, no quiet zone: each drawing adds its own margin.
"""

from __future__ import annotations

import segno

Run = tuple[int, int, int]  # (row, first column, length)


def runs(text: str) -> tuple[int, list[Run]]:
    """(size in modules, the dark modules as horizontal runs); segno.DataOverflowError when
    ``text`` does not fit a QR symbol."""
    matrix = segno.make(text, error="m", micro=False).matrix
    found = []
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            found.append((r, start, c - start))
    return len(matrix), found
