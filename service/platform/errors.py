"""Domain errors carry their status and a translatable message; one handler renders them.

Pages get an HTML error page in the visitor's language; the JSON API gets
``{"error": {"code": ..., "message": ...}}``. A 500 never shows exception text.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.platform.i18n import N_
from service.platform.templating import render, translator

log = logging.getLogger("chuishao.errors")


class ChuishaoError(Exception):
    """Base of every refusal the project makes on purpose."""

    status = 400
    code = "bad_request"
    message = N_("The request could not be processed.")

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 status: int | None = None, **params: Any) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.params = params


class NotFound(ChuishaoError):
    status = 404
    code = "not_found"
    message = N_("This page does not exist.")


class Forbidden(ChuishaoError):
    status = 403
    code = "forbidden"
    message = N_("You are not allowed to do this.")


class Conflict(ChuishaoError):
    status = 409
    code = "conflict"
    message = N_("Someone else changed this in the meantime. Reload and try again.")


class TooLarge(ChuishaoError):
    status = 413
    code = "too_large"
    message = N_("What you sent is too large.")


class RateLimited(ChuishaoError):
    status = 429
    code = "rate_limited"
    message = N_("Too many requests right now. Please wait a few minutes and try again.")


class InvalidInput(ChuishaoError):
    status = 400
    code = "invalid"
    message = N_("Some of what you entered is not valid.")


class Malformed(InvalidInput):
    """Sealed data that does not have the protocol's shape; ``what`` names the part."""

    message = N_("The encrypted data is malformed ({what}).")

    def __init__(self, what: str) -> None:
        super().__init__(what=what)


class NotSetUp(ChuishaoError):
    """The installation has no keys yet (``chuishao init`` was not run)."""

    status = 503
    code = "not_initialised"
    message = N_("This service is not set up yet.")


class StorageUnavailable(ChuishaoError):
    """Storage is full or read-only: nothing can be stored until an operator frees it."""

    status = 503
    code = "storage_unavailable"
    message = N_("The service cannot store reports right now: its storage is full or cannot "
                 "be written. Nothing you sent was stored. This is a fault on our side.")


# What a reporter without JavaScript reads: their text is not kept anywhere but in their
# browser's back history, so say what to do with it.
STORAGE_PAGE = N_("The service cannot store reports right now: its storage is full or cannot "
                  "be written, so what you sent was not stored. This is a fault on our side. "
                  "Go back in your browser: the form usually still holds what you wrote. Copy "
                  "your text somewhere safe, and send it again in an hour or so, or report "
                  "through another reporting line.")
STORAGE_CONSOLE = N_("The database cannot be written right now (its storage is full or "
                     "read-only). Nothing was changed. Try again once an administrator has "
                     "freed space.")


# Messages for errors raised by the framework rather than by our code.
HTTP_MESSAGES = {
    400: N_("The request could not be processed."),
    403: N_("You are not allowed to do this."),
    404: N_("This page does not exist."),
    405: N_("This address does not accept that kind of request."),
    413: N_("What you sent is too large."),
    429: N_("Too many requests right now. Please wait a few minutes and try again."),
}
SERVER_ERROR = N_("Something went wrong on our side. Nothing you sent was lost; please try again.")


def wants_json(request: Request) -> bool:
    path = request.url.path
    return "/api/" in path or path.startswith("/api") or (
        "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def render_error(request: Request, status: int, code: str, message: str,
                 params: dict[str, Any] | None = None) -> Response:

    text = translator(request)(message, **(params or {}))
    if wants_json(request):
        return JSONResponse({"error": {"code": code, "message": text}}, status_code=status)
    return render(request, "error.html", {"status": status, "message": text, "code": code},
                  status=status)


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChuishaoError)
    return render_error(request, exc.status, exc.code, exc.message, exc.params)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = HTTP_MESSAGES.get(exc.status_code, HTTP_MESSAGES[400])
    response = render_error(request, exc.status_code, f"http_{exc.status_code}", message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


# SQLite primary result codes that mean "cannot write here": full, read-only, I/O error.
_SQLITE_STORAGE = {13, 8, 10}
_SQLITE_MESSAGES = ("database or disk is full", "readonly database", "disk i/o error")
# PostgreSQL: disk_full, insufficient_resources, read_only_sql_transaction, io_error.
_PG_STORAGE = {"53100", "53000", "25006", "58030"}
_OS_STORAGE = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


def storage_cause(exc: BaseException | None) -> str | None:
    """A short description when ``exc`` (or what caused it) means storage cannot be written."""
    seen = 0
    while exc is not None and seen < 10:
        seen += 1
        original: BaseException = exc
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            original = exc.orig
        if isinstance(original, sqlite3.Error):
            code = getattr(original, "sqlite_errorcode", 0) & 0xFF
            if code in _SQLITE_STORAGE or any(m in str(original).lower()
                                              for m in _SQLITE_MESSAGES):
                return f"SQLite: {str(original).strip()}"
        sqlstate = getattr(original, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate in _PG_STORAGE:
            return f"PostgreSQL {sqlstate}: {first_line(original)}"
        if isinstance(original, OSError) and original.errno in _OS_STORAGE:
            return f"{os.strerror(original.errno or 0)}: {original.filename or ''}".strip()
        exc = exc.__cause__ or exc.__context__
    return None


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def storage_message(request: Request) -> str:
    if wants_json(request):
        return StorageUnavailable.message
    if request.url.path.startswith("/console"):
        return STORAGE_CONSOLE
    return STORAGE_PAGE


async def handle_server_error(request: Request, exc: Exception) -> Response:
    cause = storage_cause(exc)
    watch = getattr(request.app.state, "storage", None)
    if cause is not None and watch is not None:
        # Said once, with its cause, until storage works again; not a traceback per request.
        watch.failed(cause)
        try:
            return render_error(request, 503, StorageUnavailable.code, storage_message(request))
        except Exception:  # the error page itself must not fail
            return Response("503", status_code=503, media_type="text/plain")
    # The traceback goes to the log (which never holds client addresses); the page says nothing.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    try:
        return render_error(request, 500, "server_error", SERVER_ERROR)
    except Exception:  # the error page itself must not fail
        return Response("500", status_code=500, media_type="text/plain")


class ServerErrorPageMiddleware:
    """Turns an unhandled exception into the translated 500 page.

    It sits inside the security-header and language middleware (Starlette's own 500 handler
    sits outside all middleware, so its page would lack the CSP) and outside the database
    session, which has already rolled back by the time the exception arrives here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:
                raise
            response = await handle_server_error(Request(scope), exc)
            await response(scope, receive, send)
