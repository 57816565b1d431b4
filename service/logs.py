"""Logging that never holds a client address.

Uvicorn's access log is switched off (our AccessLogMiddleware logs without addresses) and
every record also passes a filter that blanks anything shaped like an IP address, in case a
library logs one in a message we do not control.
"""

from __future__ import annotations

import logging
import re
import sys

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


class Formatter(logging.Formatter):
    """Records marked ``timeless`` (the access lines of reporters' routes) carry no time: the
    moment of a request would link a report to a visit more finely than stored times do."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if getattr(record, "timeless", False):
            return "-"
        return super().formatTime(record, datefmt)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    # The filter scrubs message, traceback and stack; the time stamp (which looks like an IPv6
    # fragment, 12:34:56) is ours and stays readable.
    handler.setFormatter(Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(AddressScrubFilter())
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
