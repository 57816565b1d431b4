"""Logging that never holds a client address, nor the time of a reporter's request.

Uvicorn's access log is switched off (our AccessLogMiddleware logs without addresses) and
every record also passes a filter that blanks anything shaped like an IP address, in case a
library logs one in a message we do not control.

Records made while serving the public (everything outside /console: the reporter's pages, the
API, static files) are held back and written once their period of the time granularity has
ended: stamped with the period's start, access lines summed up per route and status, the rest
sorted by content. Neither their time stamps nor their place among the console's lines can
then date a reporter's request finer than the granularity (docs/THREAT-MODEL.md).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import anyio

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")


def scrub(text: str) -> str:
    return _IPV6.sub("[address]", _IPV4.sub("[address]", text))


class AddressScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # Tracebacks and stack dumps are text the formatter prints as they are: scrub them here
        # (the formatter uses a record's exc_text when it is set).
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_serving_public: ContextVar[bool] = ContextVar("chuishao_serving_public", default=False)
ACCESS_LOGGER = "chuishao.access"


@contextmanager
def serving_the_public() -> Iterator[None]:
    """Marks what runs inside as work for a public request: its log records are held."""
    token = _serving_public.set(True)
    try:
        yield
    finally:
        _serving_public.reset(token)


class PublicRecordHold(logging.Filter):
    """On a handler: holds the records of public requests until their period has ended."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler
        self._lock = threading.Lock()
        self._held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "chuishao_released", False) or not _serving_public.get():
            return True
        # Formatted now (a record's arguments may change later); the time is replaced below.
        record.msg, record.args = record.getMessage(), None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
        with self._lock:
            self._held.append(record)
        return False

    def release(self, step: int, now: float | None = None, *, everything: bool = False) -> int:
        """Write the held records of every period that has ended (all of them at shutdown)."""
        moment = time.time() if now is None else now
        current = int(moment) // step * step
        with self._lock:
            due: list[logging.LogRecord] = []
            kept: list[logging.LogRecord] = []
            for record in self._held:
                ended = everything or int(record.created) // step * step < current
                (due if ended else kept).append(record)
            self._held = kept
        for record in _summarised(due, step):
            self.handler.handle(record)
        return len(due)


def _stamped(record: logging.LogRecord, period: int) -> logging.LogRecord:
    record.created, record.msecs, record.relativeCreated = float(period), 0.0, 0.0
    record.chuishao_released = True
    return record


def _summarised(records: list[logging.LogRecord], step: int) -> Iterator[logging.LogRecord]:
    """Access lines become one line per period, route and status; other records are sorted by
    what they say, never by when."""
    access: dict[tuple[int, str], list[float]] = {}
    others: list[tuple[int, logging.LogRecord]] = []
    for record in records:
        period = int(record.created) // step * step
        line = str(record.msg)
        if record.name == ACCESS_LOGGER and " " in line:
            route, _, took = line.rpartition(" ")
            access.setdefault((period, route), []).append(_milliseconds(took))
        else:
            others.append((period, record))
    for (period, route), times in sorted(access.items()):
        summary = logging.LogRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0,
            "%s ×%d (slowest %.1fms; period of %ds)", (route, len(times), max(times), step),
            None)
        yield _stamped(summary, period)
    for period, record in sorted(others, key=lambda pair: (
            pair[0], -pair[1].levelno, pair[1].name, str(pair[1].msg))):
        yield _stamped(record, period)


def _milliseconds(text: str) -> float:
    try:
        return float(text.removesuffix("ms"))
    except ValueError:
        return 0.0


_holds: list[PublicRecordHold] = []


def release_held(step: int, now: float | None = None, *, everything: bool = False) -> int:
    return sum(hold.release(step, now, everything=everything) for hold in list(_holds))


async def release_periodically(step: int) -> None:
    """Just after every period boundary, write what the period's public requests logged."""
    try:
        while True:
            await anyio.sleep(step - time.time() % step + 0.5)
            release_held(step)
    finally:
        release_held(step, everything=True)


def configure(level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    # The filter scrubs message, traceback and stack; the time stamp (which looks like an IPv6
    # fragment, 12:34:56) is ours and stays readable.
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(AddressScrubFilter())
    # After the scrub, so what is held is scrubbed already.
    hold = PublicRecordHold(handler)
    handler.addFilter(hold)
    _holds[:] = [hold]
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # Belt and braces: even if someone turns uvicorn's access log back on, it goes nowhere.
    logging.getLogger("uvicorn.access").disabled = True


# Passed to uvicorn so it does not install its own handlers and formats.
UVICORN_LOG_CONFIG: dict[str, object] = {"version": 1, "disable_existing_loggers": False}
