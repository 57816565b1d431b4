"""Bounded request bodies, refused with the project's own translated 413.

Starlette's built-in limit answers with a bare English "Content Too Large"; this one renders
the same error page or JSON error as every other refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import TooLarge, render_error


class BodyLimit:
    """Plain ASGI: refuse early on Content-Length, and count what actually arrives."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
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
            response = render_error(Request(scope), 413, TooLarge.code, TooLarge.message)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge()
            return message

        await self.app(scope, limited_receive, send)


def limited(endpoint: Callable[[Request], Any], limit: int) -> ASGIApp:
    """A route endpoint whose request body may not exceed ``limit`` bytes."""
    return BodyLimit(request_response(endpoint), limit)
