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


# Bounds, so a flood of public requests cannot make the hold grow without end: access lines
# are summed as they come (at most this many distinct routes per period, the rest summed as
# one), and at most this many other records are held per period (the rest only counted).
MAX_ROUTES = 500
MAX_RECORDS = 1000
OTHER_ROUTES = "(other routes)"


class PublicRecordHold(logging.Filter):
    """On a handler: holds the records of public requests until their period has ended."""

    def __init__(self, handler: logging.Handler, step: int = 3600) -> None:
        super().__init__()
        self.handler = handler
        self.step = step
        self._lock = threading.Lock()
        # period -> route ("GET /path 200") -> [count, slowest ms]
        self._access: dict[int, dict[str, list[float]]] = {}
        self._records: dict[int, list[logging.LogRecord]] = {}
        self._dropped: dict[int, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "chuishao_released", False) or not _serving_public.get():
            return True
        period = int(record.created) // self.step * self.step
        line = record.getMessage()
        # A console request's own access line stays live and exact even if the marker leaked
        # into its context (a kept-alive connection from a proxy carries several requests).
        if record.name == ACCESS_LOGGER and line.split(" ", 2)[1:2] and (
                line.split(" ", 2)[1] == "/console"
                or line.split(" ", 2)[1].startswith("/console/")):
            return True
        with self._lock:
            if record.name == ACCESS_LOGGER and " " in line:
                route, _, took = line.rpartition(" ")
                routes = self._access.setdefault(period, {})
                if route not in routes and len(routes) >= MAX_ROUTES:
                    route = OTHER_ROUTES
                total = routes.setdefault(route, [0, 0.0])
                total[0] += 1
                total[1] = max(total[1], _milliseconds(took))
                return False
            held = self._records.setdefault(period, [])
            if len(held) >= MAX_RECORDS:
                self._dropped[period] = self._dropped.get(period, 0) + 1
                return False
            # Formatted now (its arguments may change later); the time is replaced on release.
            record.msg, record.args = line, None
            if record.exc_info and not record.exc_text:
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
            held.append(record)
        return False

    def release(self, now: float | None = None, *, everything: bool = False) -> int:
        """Write what the periods that have ended hold (everything, at shutdown)."""
        moment = time.time() if now is None else now
        current = int(moment) // self.step * self.step
        with self._lock:
            periods = sorted(p for p in {*self._access, *self._records, *self._dropped}
                             if everything or p < current)
            taken = [(p, self._access.pop(p, {}), self._records.pop(p, []),
                      self._dropped.pop(p, 0)) for p in periods]
        written = 0
        for period, routes, records, dropped in taken:
            for record in _summarised(period, self.step, routes, records, dropped):
                self.handler.handle(record)
                written += 1
        return written


def _stamped(record: logging.LogRecord, period: int) -> logging.LogRecord:
    record.created, record.msecs, record.relativeCreated = float(period), 0.0, 0.0
    record.chuishao_released = True
    return record


def _summarised(period: int, step: int, routes: dict[str, list[float]],
                records: list[logging.LogRecord], dropped: int) -> Iterator[logging.LogRecord]:
    """One access line per route and status; other records sorted by what they say, never by
    when they were made."""
    for route, (count, slowest) in sorted(routes.items()):
        yield _stamped(logging.LogRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0, "%s ×%d (slowest %.1fms; period of %ds)",
            (route, int(count), slowest, step), None), period)
    for record in sorted(records, key=lambda r: (-r.levelno, r.name, str(r.msg))):
        yield _stamped(record, period)
    if dropped:
        yield _stamped(logging.LogRecord(
            __name__, logging.WARNING, __file__, 0,
            "%d further records of public requests in this period were not kept", (dropped,),
            None), period)


def _milliseconds(text: str) -> float:
    try:
        return float(text.removesuffix("ms"))
    except ValueError:
        return 0.0


_holds: list[PublicRecordHold] = []


def release_held(now: float | None = None, *, everything: bool = False) -> int:
    return sum(hold.release(now, everything=everything) for hold in list(_holds))


async def release_periodically(step: int) -> None:
    """Just after every period boundary, write what the period's public requests logged."""
    for hold in _holds:
        hold.step = step
    try:
        while True:
            await anyio.sleep(step - time.time() % step + 0.5)
            release_held()
    finally:
        release_held(everything=True)


class Formatter(logging.Formatter):
    """Records marked ``timeless`` (the access lines of reporters' routes) carry no time: the
    moment of a request would link a report to a visit more finely than stored times do."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if getattr(record, "timeless", False):
            return "-"
        return super().formatTime(record, datefmt)


def configure(level: str = "INFO", stream: Any = None, *, granularity_seconds: int = 3600
              ) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    # The filter scrubs message, traceback and stack; the time stamp (which looks like an IPv6
    # fragment, 12:34:56) is ours and stays readable.
    handler.setFormatter(Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(AddressScrubFilter())
    # After the scrub, so what is held is scrubbed already.
    hold = PublicRecordHold(handler, granularity_seconds)
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
