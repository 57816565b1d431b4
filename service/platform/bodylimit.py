"""Request bodies: bounded per route, read whole before any database gate, cut off when slow.

``RequestBody`` is the outer layer. It finds the route a request is for before reading a byte
of its body: a body for an unknown address or method is refused (404/405) unread, a declared
length above the route's limit gets 413 at once, and the body is then read within the route's
limit, an idle timeout, a minimum average rate and a ceiling on the bytes held for all requests
together. Only then does the request go on (and take a database gate, see ``service.platform.db``).

Starlette's built-in limit answers with a bare English "Content Too Large"; refusals here
render the same error page or JSON error as every other refusal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
from starlette.requests import Request
from starlette.routing import Match, Mount, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.platform.errors import HTTP_MESSAGES, ChuishaoError, TooLarge, render_error
from service.platform.i18n import N_
from service.platform.offload import Busy

# Work a route may do once its body is in, before the request takes a database gate.
Prepare = Callable[[Request], Awaitable[None]]
# Bytes per message when a read body is given to the app again.
REPLAY_SLICE = 1024 * 1024
MB = 1024 * 1024
# Seconds a body may take before its minimum average rate is enforced.
RATE_GRACE_SECONDS = 10.0


class BodyTimeout(ChuishaoError):
    status = 408
    code = "body_timeout"
    message = N_("The upload was too slow or stopped, so it was cut off. Nothing was stored; "
                 "please try again.")


# The same answers the router gives (see errors.handle_http_exception), without the body.
class NoSuchPath(ChuishaoError):
    status = 404
    code = "http_404"
    message = HTTP_MESSAGES[404]


class MethodNotAllowed(ChuishaoError):
    status = 405
    code = "http_405"
    message = HTTP_MESSAGES[405]


class BodyLimit:
    """Plain ASGI: refuse early on Content-Length, and count what actually arrives."""

    def __init__(self, app: ASGIApp, limit: int | None,
                 prepare: Prepare | None = None, streamed: bool = False) -> None:
        self.app = app
        self.limit = limit
        self.prepare = prepare
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit is None:
            await self.app(scope, receive, send)
            return
        # An inner limit (per route) may only be stricter than an outer one.
        limit = min(self.limit, scope.get("chuishao.body_limit", self.limit))
        scope["chuishao.body_limit"] = limit
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > limit:
            refused = too_large(limit)
            response = render_error(Request(scope), 413, refused.code, refused.message,
                                    refused.params)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def limited(endpoint: Callable[[Request], Any], limit: int, *,
            prepare: Prepare | None = None, streamed: bool = False) -> ASGIApp:
    """A route endpoint whose request body may not exceed ``limit`` bytes.

    ``prepare``: CPU-heavy work (through ``service.platform.offload``) done once the body is in and
    before the database gate is taken, so no gate is held while it runs. ``streamed``: the body
    is not read whole first; ``prepare`` reads it as it arrives (and must: the view cannot).
    """
    return BodyLimit(request_response(endpoint), limit, prepare, streamed)


def prepared_first(endpoint: Callable[[Request], Any], prepare: Prepare) -> ASGIApp:
    """A route endpoint (with the enclosing limit) whose ``prepare`` runs before the gate."""
    return BodyLimit(request_response(endpoint), None, prepare)


def _resolve(app: Any, scope: Scope) -> tuple[Match, Any]:
    """The endpoint ``scope`` is routed to (without running anything), through mounts."""
    router = getattr(app, "router", None)
    partial = False
    for route in getattr(router, "routes", ()):
        match, child = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, Mount):
                inner = {**scope, **child}
                if getattr(route.app, "router", None) is None:
                    return Match.FULL, route.app  # static files: no body expected
                return _resolve(route.app, inner)
            if isinstance(route, Route):
                return Match.FULL, route.endpoint
        elif match is Match.PARTIAL:
            partial = True
    return (Match.PARTIAL if partial else Match.NONE), None


def _announces_body(scope: Scope) -> tuple[bool, int | None]:
    declared: int | None = None
    chunked = False
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
                chunked = True  # unreadable length: treat as a body of unknown size
        elif name == b"transfer-encoding":
            chunked = True
    return chunked or bool(declared), declared


async def _refuse(scope: Scope, send: Send, error: ChuishaoError) -> None:
    """Answer without reading (more of) the body, and close the connection after it: the
    unread rest must not be taken for the next request."""
    response = render_error(Request(scope), error.status, error.code, error.message,
                            error.params)
    response.headers["Connection"] = "close"
    if isinstance(error, Busy):
        response.headers["Retry-After"] = "60"

    async def no_receive() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_receive, send)


async def whole_body(request: Request) -> bytes:
    """The body ``RequestBody`` has read already, as it is (a batch of chunks is 4 MiB: no
    copies), or Starlette's reading of it where that layer is not in front."""
    body = request.scope.get("chuishao.body")
    return body if isinstance(body, bytes) else await request.body()


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` again, then whatever comes (a disconnect).

    In slices, with a checkpoint between them: a form parser that reads a large body then
    works through it a slice at a time and lets other requests run in between."""
    offset = 0
    done = False

    async def replay() -> Message:
        nonlocal offset, done
        if done:
            return await receive()
        if offset:
            await anyio.lowlevel.checkpoint()
        part = body[offset:offset + REPLAY_SLICE]
        offset += len(part)
        done = offset >= len(body)
        return {"type": "http.request", "body": part, "more_body": not done}

    return replay


def too_large(limit: int) -> TooLarge:
    """The refusal of a body over ``limit``, which it names."""
    size = f"{limit // MB} MB" if limit >= MB else f"{limit // 1024} KB"
    return TooLarge(N_("What you sent is larger than the limit of {size}."), size=size)


class _Meter:
    """The rules every body is read under: its limit, an idle timeout, a minimum average rate
    after a grace period, and a deadline at that rate for its declared (or largest) size."""

    def __init__(self, receive: Receive, limit: int, declared: int | None,
                 idle_seconds: float, min_rate: int) -> None:
        self.receive = receive
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.min_rate = min_rate
        self.received = 0
        self.started = time.monotonic()
        self.deadline = self.started + RATE_GRACE_SECONDS + (declared or limit) / max(1, min_rate)

    async def next(self) -> Message:
        """The next message, or a refusal (``BodyTimeout``, ``TooLarge``)."""
        wait = min(self.idle_seconds, self.deadline - time.monotonic())
        if wait <= 0:
            raise BodyTimeout()
        try:
            with anyio.fail_after(wait):
                message = await self.receive()
        except TimeoutError:
            raise BodyTimeout() from None
        if message["type"] != "http.request":
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.limit:
            raise too_large(self.limit)
        elapsed = time.monotonic() - self.started
        if message.get("more_body", False) and elapsed > RATE_GRACE_SECONDS and \
                self.received < self.min_rate * (elapsed - RATE_GRACE_SECONDS):
            raise BodyTimeout()
        return message


class RequestBody:
    """Plain ASGI, outside the database layer: route-aware limits, read whole, timeouts.

    A streamed route (the no-JavaScript form, see ``limited``) is not read here: its prepare
    step reads it as it arrives, under the same rules, and what it holds in memory counts
    against the same budget (``chuishao.hold``) until the request ends."""

    def __init__(self, app: ASGIApp, *, default_limit: int, budget: int, idle_seconds: float,
                 min_rate: int) -> None:
        self.app = app
        self.default_limit = default_limit
        self.budget = budget
        self.idle_seconds = idle_seconds
        self.min_rate = min_rate
        # Body bytes held right now by all requests together (one event loop: no lock).
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        match, endpoint = _resolve(scope.get("app"), scope)
        prepare = getattr(endpoint, "prepare", None)
        if prepare is not None:
            scope["chuishao.prepare"] = prepare
        has_body, declared = _announces_body(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        if match is not Match.FULL:
            await _refuse(scope, send, MethodNotAllowed() if match is Match.PARTIAL
                          else NoSuchPath())
            return
        limit = self.default_limit
        if isinstance(endpoint, BodyLimit) and endpoint.limit is not None:
            limit = endpoint.limit
        if declared is not None and declared > limit:
            await _refuse(scope, send, too_large(limit))
            return
        if isinstance(endpoint, BodyLimit) and endpoint.streamed:
            await self._streamed(scope, receive, send, limit, declared)
            return
        try:
            body = await self._read(receive, limit, declared)
        except ChuishaoError as exc:
            await _refuse(scope, send, exc)
            return
        if body is None:  # the client went away
            return
        reserved = len(body)
        # Kept for a route's prepare step (see service.platform.db), which reads it before the view.
        scope["chuishao.body"] = body
        replay = replaying(body, receive)

        try:
            await self.app(scope, replay, send)
        finally:
            self.held -= reserved

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int,
                        declared: int | None) -> None:
        meter = _Meter(receive, limit, declared, self.idle_seconds, self.min_rate)
        reserved = 0

        def hold(count: int) -> None:
            nonlocal reserved
            reserved += count
            self.held += count
            if self.held > self.budget:
                raise Busy()

        scope["chuishao.hold"] = hold
        scope["chuishao.streamed"] = True
        try:
            await self.app(scope, meter.next, send)
        finally:
            self.held -= reserved
            # Whatever waited on disk for this request goes now (see service.platform.spool).
            for spool in scope.get("chuishao.spools", ()):
                spool.close()

    async def _read(self, receive: Receive, limit: int, declared: int | None) -> bytes | None:
        meter = _Meter(receive, limit, declared, self.idle_seconds, self.min_rate)
        chunks: list[bytes] = []
        more = True
        try:
            while more:
                message = await meter.next()
                if message["type"] == "http.disconnect":
                    self.held -= meter.received
                    meter.received = 0
                    return None
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                if not chunk:
                    continue
                self.held += len(chunk)
                if self.held > self.budget:
                    raise Busy()
                chunks.append(chunk)
        except BaseException:
            self.held -= sum(len(chunk) for chunk in chunks)  # nothing of it is kept
            raise
        body = b"".join(chunks)
        chunks.clear()
        return body
