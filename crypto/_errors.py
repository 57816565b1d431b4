"""The single failure type for opening anything."""

from __future__ import annotations


class OpenError(Exception):
    """Something could not be opened: wrong key, wrong context, tampered or malformed data.

    The message never says which check failed, so that callers cannot leak an oracle.
    """

    def __init__(self) -> None:
        super().__init__("cannot open: wrong key, wrong context, or damaged data")
