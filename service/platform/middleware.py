"""Plain ASGI middleware: no client addresses, security headers, language, access log."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.platform import csp, logs
from service.platform.i18n import LANGUAGES, negotiate

access_log = logging.getLogger(logs.ACCESS_LOGGER)

# Headers a proxy may use to pass a client address along. Dropped before any code sees them.
ADDRESS_HEADERS = {b"x-forwarded-for", b"x-real-ip", b"forwarded", b"true-client-ip",
                   b"cf-connecting-ip", b"x-client-ip", b"x-cluster-client-ip"}


class NoClientAddressMiddleware:
    """Outermost layer: removes every trace of the client's address from the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["client"] = None
            scope["headers"] = [
                (name, value) for name, value in scope.get("headers", [])
                if name.lower() not in ADDRESS_HEADERS
            ]
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Strict CSP and friends on every response; no-store except for static assets."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/") or scope["path"] == "/favicon.ico"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A policy binds documents and workers only: an imported module or a
                # stylesheet ignores it, so those assets are sent without it (it is a third
                # of their headers), and without X-Frame-Options, which binds framed
                # documents only. The few bytes of the rest go on every answer. (The
                # Referrer-Policy of a module script governs the imports it fetches.)
                document = not static or not _policy_free(scope["path"])
                if document:
                    headers["Content-Security-Policy"] = csp.HEADER_VALUE
                    headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Cross-Origin-Resource-Policy"] = "same-origin"
                headers["Referrer-Policy"] = "no-referrer"
                if not static:
                    headers["Cross-Origin-Opener-Policy"] = "same-origin"
                    headers["Permissions-Policy"] = (
                        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
                        "interest-cohort=()"
                    )
                if self.hsts:
                    headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
                if static:
                    headers.setdefault("Cache-Control", "max-age=3600")
                else:
                    # Reports, receipts and console pages must not linger in any cache.
                    headers["Cache-Control"] = "no-store"
                    headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _policy_free(path: str) -> bool:
    # Worker scripts (named *worker.js) take their policy from their own response.
    return path.endswith((".js", ".css")) and not path.endswith("worker.js")


def cookie_name(base: str, secure: bool) -> str:
    # __Host- binds the cookie to this exact origin over HTTPS, with Path=/ and no Domain.
    return f"__Host-{base}" if secure else base


class LanguageMiddleware:
    """Chooses zh_CN or en: the visitor's switch (a cookie) first, then Accept-Language."""

    def __init__(self, app: ASGIApp, *, default: str, secure: bool) -> None:
        self.app = app
        self.default = default
        self.cookie = cookie_name("lang", secure)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            chosen = None
            accept = None
            for name, value in scope.get("headers", []):
                if name == b"cookie":
                    jar: SimpleCookie = SimpleCookie()
                    try:
                        jar.load(value.decode("latin-1"))
                    except Exception:  # noqa: S112 - a malformed cookie header is ignored
                        continue
                    if self.cookie in jar and jar[self.cookie].value in LANGUAGES:
                        chosen = jar[self.cookie].value
                elif name == b"accept-language":
                    accept = value.decode("latin-1")
            scope["language"] = chosen or negotiate(accept, self.default)
        await self.app(scope, receive, send)


# Long opaque path segments (tokens, ids) are shortened in the log.
_SECRETISH = re.compile(r"[A-Za-z0-9_\-]{16,}")


class AccessLogMiddleware:
    """Our own access log: method, redacted path, status, time. Never an address."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # Everything outside the console may be a reporter's request: what it logs is held
        # back and written per period (service.platform.logs), so no line dates it.
        public = not (scope["path"] == "/console" or scope["path"].startswith("/console/"))
        with logs.serving_the_public() if public else contextlib.nullcontext():
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                access_log.info(
                    "%s %s %d %.1fms", scope["method"], _SECRETISH.sub("…", scope["path"]),
                    status, (time.perf_counter() - started) * 1000,
                )
