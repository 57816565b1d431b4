"""Console users for HTTP tests, through the real machinery: signing in, and accounts made
as an administrator makes them (an invitation link, then the new user's own browser)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from reviewer import auth
from service.domain.models import User
from service.platform import tokens
from service.platform.settings import Settings


def sign_in(client: TestClient, session: Session, settings: Settings, user: User) -> str:
    """Start a real session for ``user`` on ``client``; returns the CSRF token."""
    token = auth.start_session(session, settings, user)
    session.commit()
    client.cookies.set(auth.session_cookie(settings), token)
    return auth.csrf_token_for(settings.secret_key.__str__(), "session:" + tokens.digest(token))


_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_SECRET_ATTR = re.compile(r'data-secret="([A-Z2-7]+)"')
_LINK = re.compile(r'<code id="invitation-link">([^<]+)</code>')


@dataclass
class Enrolled:
    user_id: int
    username: str
    private_key: bytes
    totp_secret: bytes


def invitation_link(client: TestClient, csrf: str, roles: list[str],
                    channel: int | None = None, scope: list[int] | None = None) -> str:
    """The admin's invitation form in the console; returns the one-time link it shows."""
    form: dict[str, object] = {"csrf_token": csrf, "roles": roles, "hours": "24"}
    if channel is not None:
        form["channel"] = str(channel)
    if scope:
        form["scope"] = [str(c) for c in scope]
    made = client.post("/console/admin/invitations", data=form)
    assert made.status_code == 200, made.text
    match = _LINK.search(made.text)
    assert match, "no invitation link on the page"
    return match.group(1)


def enrol(app: Any, settings: Settings, link: str, username: str,
          password: str = "correct horse battery staple") -> Enrolled:
    """Follow an invitation link in a browser of its own, as invite.js does: keys made and
    wrapped on the client, then the first TOTP code confirmed."""
    token = link.rsplit("/", 1)[1]
    with TestClient(app, base_url=str(settings.base_url)) as browser:
        page = browser.get(f"/console/invite/{token}")
        assert page.status_code == 200, page.text
        csrf = _CSRF_META.search(page.text).group(1)  # type: ignore[union-attr]
        salt = os.urandom(16)
        keys = crypto.derive_password(password, salt, settings.password_iterations)
        private, public = crypto.generate_keypair()
        kid = crypto.key_id(public)
        body = {"username": username, "display_name": username,
                "user_salt": crypto.b64u_encode(salt),
                "auth_secret": crypto.b64u_encode(keys.auth_secret),
                "public_key": crypto.b64u_encode(public),
                "wrapped_private_key": crypto.b64u_encode(
                    crypto.wrap_private_key(keys.kek, private, kid))}
        created = browser.post(f"/console/invite/{token}", json=body,
                               headers={"X-CSRF-Token": csrf, "Accept": "application/json"})
        assert created.status_code == 200, created.text
        enrolment = browser.get(f"/console/invite/{token}/totp")
        shown = _SECRET_ATTR.search(enrolment.text).group(1)  # type: ignore[union-attr]
        secret = crypto.b32_decode(shown)
        csrf = _CSRF_META.search(enrolment.text).group(1)  # type: ignore[union-attr]
        code = TOTP(secret, 6, SHA1(), 30).generate(time.time()).decode()  # noqa: S303
        done = browser.post(f"/console/invite/{token}/totp",
                            data={"csrf_token": csrf, "code": code}, follow_redirects=False)
        assert done.status_code == 303, done.text
    with app.state.database.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None and user.totp_confirmed
        return Enrolled(user.id, username, private, secret)
