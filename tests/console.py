"""Signing a console user in for HTTP tests, through the real session machinery."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from reviewer import auth
from service.models import User
from service.settings import Settings


def sign_in(client: TestClient, session: Session, settings: Settings, user: User) -> str:
    """Start a real session for ``user`` on ``client``; returns the CSRF token."""
    token = auth.start_session(session, settings, user)
    session.commit()
    client.cookies.set(auth.session_cookie(settings), token)
    return auth.csrf_token_for(settings.secret_key.__str__(), "session:" + auth._hash(token))
