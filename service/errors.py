"""Domain errors carry their status and a translatable message; one handler renders them.

Pages get an HTML error page in the visitor's language; the JSON API gets
``{"error": {"code": ..., "message": ...}}``. A 500 never shows exception text.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.i18n import N_

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
    from service.templating import render, translator

    text = translator(request)(message, **(params or {}))
    if wants_json(request):
        return JSONResponse({"error": {"code": code, "message": text}}, status_code=status)
    return render(request, "error.html", {"status": status, "message": text}, status=status)


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


async def handle_server_error(request: Request, exc: Exception) -> Response:
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
