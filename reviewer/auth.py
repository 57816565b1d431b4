"""Console sessions, the current user, roles and CSRF — the console's own middleware.

A session is a random token in a ``__Host-`` cookie (HttpOnly, Secure, SameSite=Strict);
the database keeps only its SHA-256. Sessions end after ``session_idle_minutes`` without use,
after ``session_max_hours`` in any case, on logout, and when revoked.

CSRF: every state-changing console request must carry a token (form field ``csrf_token`` or
header ``X-CSRF-Token``) that is an HMAC of the session id (or, before login, of a random
value in a pre-session cookie), and must not come from another site (Origin and
Sec-Fetch-Site are checked when the browser sends them).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import crypto
from service.domain import audit, refusals
from service.domain.models import ConsoleSession, User, utcnow
from service.platform import tokens
from service.platform.errors import ChuishaoError, Forbidden, render_error
from service.platform.i18n import N_
from service.platform.middleware import cookie_name
from service.platform.settings import Settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class NotSignedIn(ChuishaoError):
    status = 401
    code = "not_signed_in"
    message = N_("Please sign in.")


class CsrfFailed(ChuishaoError):
    status = 403
    code = "csrf"
    message = N_("This form has expired or did not come from this site. Reload the page and "
                 "try again.")


def csrf_token_for(secret_key: str, binding: str) -> str:
    mac = hmac.new(secret_key.encode(), b"chuishao.csrf\x00" + binding.encode(), hashlib.sha256)
    return crypto.b64u_encode(mac.digest())


# ---------------------------------------------------------------------------- sessions


def start_session(session: Session, settings: Settings, user: User,
                  now: dt.datetime | None = None) -> str:
    """Create a session for ``user``; returns the cookie token (shown to nobody else)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(ConsoleSession(
        id=tokens.digest(token), user_id=user.id, created_at=now, last_seen_at=now,
        expires_at=now + dt.timedelta(hours=settings.session_max_hours),
    ))
    session.flush()
    return token


def load_session(session: Session, settings: Settings, token: str | None,
                 now: dt.datetime | None = None) -> tuple[ConsoleSession, User] | None:
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    row = session.get(ConsoleSession, tokens.digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.last_seen_at + dt.timedelta(minutes=settings.session_idle_minutes) <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    # Touch at most once a minute: keeps the idle timer honest without a write per request.
    if now - row.last_seen_at > dt.timedelta(minutes=1):
        row.last_seen_at = now
    return row, user


def revoke_session(session: Session, session_id: str, now: dt.datetime | None = None) -> None:
    row = session.get(ConsoleSession, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utcnow()


def session_cookie(settings: Settings) -> str:
    return cookie_name("session", settings.secure_cookies)


def presession_cookie(settings: Settings) -> str:
    return cookie_name("presession", settings.secure_cookies)


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(session_cookie(settings), token, path="/", httponly=True,
                        secure=settings.secure_cookies, samesite="strict")


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(session_cookie(settings), path="/", httponly=True,
                           secure=settings.secure_cookies, samesite="strict")


# ---------------------------------------------------------------------------- middleware


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: S112 - a malformed cookie header is ignored
                continue
    return {key: morsel.value for key, morsel in jar.items()}


class ConsoleAuthMiddleware:
    """Loads the signed-in user (or None) and the CSRF token for the console's pages.

    Refuses state-changing requests whose CSRF token or origin is wrong, before any view runs,
    and records the refusal: in the audit trail for a signed-in user, as a counter otherwise.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings: Settings = state.settings
        cookies = _cookies(scope)
        db: Session = scope["state"]["db"]
        loaded = load_session(db, settings, cookies.get(session_cookie(settings)))
        scope["user"] = loaded[1] if loaded else None
        scope["console_session"] = loaded[0] if loaded else None
        new_presession = None
        if loaded:
            binding = "session:" + loaded[0].id
        else:
            presession = cookies.get(presession_cookie(settings), "")
            if not presession or len(presession) > 100:
                presession = new_presession = secrets.token_urlsafe(24)
            binding = "anon:" + presession
        expected = csrf_token_for(state.secret_key, binding)
        scope["csrf_token"] = expected
        # Names this session's unlocked private key in the browser's key store (IndexedDB);
        # a new session means a new handle, so a key never outlives its session.
        scope["key_handle"] = (csrf_token_for(state.secret_key, "key-handle:" + loaded[0].id)
                               if loaded else "")

        if scope["method"] not in SAFE_METHODS:
            checked = await self._check(scope, receive, expected, loaded)
            if checked is None:
                return await self._refuse(scope, send, loaded)
            receive = checked

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and new_presession:
                cookie = (f"{presession_cookie(settings)}={new_presession}; Path=/; HttpOnly; "
                          f"SameSite=Strict" + ("; Secure" if settings.secure_cookies else ""))
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _check(self, scope: Scope, receive: Receive, expected: str,
                     loaded: Any) -> Receive | None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope.get("headers", [])}
        if headers.get("sec-fetch-site") == "cross-site":
            return None
        origin = headers.get("origin")
        host = headers.get("host", "")
        if origin and origin != "null" and origin.split("://", 1)[-1] != host:
            return None
        given = headers.get("x-csrf-token")
        body = b""
        if given is None:
            # Buffer the (bounded) form body to read the field, then replay it to the view.
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            given = _form_field(headers.get("content-type", ""), body, "csrf_token")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return None
        if not body:
            return receive
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _refuse(self, scope: Scope, send: Send, loaded: Any) -> None:

        request = Request(scope)
        user = loaded[1] if loaded else None
        if user is None:
            # Nobody signed in: counted per hour, not one audit entry per request.
            refusals.record(scope["app"].state.database, "csrf")
        else:
            audit.record_refusal(scope["app"].state.database, "csrf", actor_id=user.id,
                                 target=scope["path"][:100])
        response = render_error(request, CsrfFailed.status, CsrfFailed.code, CsrfFailed.message)

        async def no_receive() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_receive, send)


def _form_field(content_type: str, body: bytes, name: str) -> str | None:
    if content_type.startswith("application/x-www-form-urlencoded"):
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            if key == name:
                return value
        return None
    if content_type.startswith("multipart/form-data"):
        marker = f'name="{name}"'.encode()
        at = body.find(marker)
        if at < 0:
            return None
        start = body.find(b"\r\n\r\n", at)
        end = body.find(b"\r\n", start + 4)
        if start < 0 or end < 0:
            return None
        return body[start + 4:end].decode("ascii", "replace")
    return None


# ---------------------------------------------------------------------------- access


def current_user(request: Request) -> User:
    user: User | None = request.scope.get("user")
    if user is None:
        raise NotSignedIn()
    return user


def require_roles(*roles: str) -> Callable[[Callable[[Request], Awaitable[Response]]],
                                           Callable[[Request], Awaitable[Response]]]:
    """A view decorator: signed in with at least one of ``roles`` (any role if none given).

    A refusal is recorded in the audit trail before it is answered.
    """

    def decorate(view: Callable[[Request], Awaitable[Response]]) -> Callable[
            [Request], Awaitable[Response]]:
        @functools.wraps(view)
        async def wrapped(request: Request) -> Response:
            user = request.scope.get("user")
            if user is None:
                raise NotSignedIn()
            if roles and not user.has_role(*roles):
                audit.record_refusal(request.app.state.database, "forbidden", actor_id=user.id,
                                     target=request.url.path[:100],
                                     details={"needs": list(roles)})
                raise Forbidden()
            return await view(request)

        wrapped.required_roles = roles  # type: ignore[attr-defined]
        return wrapped

    return decorate
