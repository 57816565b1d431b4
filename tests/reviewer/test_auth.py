"""Console sessions and CSRF, through a probe route on the real console middleware."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from reviewer import auth
from reviewer.auth import require_roles
from service.app import create_app
from service.domain import accounts
from service.domain.models import AuditEntry, ConsoleSession, utcnow
from tests.conftest import BASE_URL
from tests.console import sign_in
from tests.factories import make_reviewer


@require_roles("approver")
async def approve(request: Request) -> Response:
    return JSONResponse({"ok": auth.current_user(request).username})


def _client(settings, database):  # type: ignore[no-untyped-def]
    app = create_app(settings, database=database)
    console = next(r.app for r in app.routes if getattr(r, "path", "") == "/console")
    console.router.routes.append(Route("/probe", approve, methods=["GET", "POST"]))
    return TestClient(app, base_url=BASE_URL)


def test_roles_and_csrf(settings, committed_database) -> None:  # type: ignore[no-untyped-def]
    session = committed_database.sessionmaker()
    boss = make_reviewer(session, "boss", roles="approver").user
    clerk = make_reviewer(session, "clerk", roles="reviewer").user
    session.commit()
    with _client(settings, committed_database) as client:
        assert client.get("/console/probe", headers={"Accept": "application/json"}).status_code == 401
        csrf = sign_in(client, session, settings, boss)
        assert client.get("/console/probe").json() == {"ok": "boss"}
        assert client.post("/console/probe", data={"csrf_token": csrf}).status_code == 200
        assert client.post("/console/probe", headers={"X-CSRF-Token": csrf}).status_code == 200
        missing = client.post("/console/probe", data={"x": "1"})
        assert missing.status_code == 403 and "此表单已过期" in missing.text
        flipped = csrf[:-1] + ("B" if csrf[-1] == "A" else "A")
        forged = client.post("/console/probe", data={"csrf_token": flipped})
        assert forged.status_code == 403
        cross = client.post("/console/probe", headers={"X-CSRF-Token": csrf,
                                                       "Origin": "https://evil.example"})
        assert cross.status_code == 403
        site = client.post("/console/probe", headers={"X-CSRF-Token": csrf,
                                                      "Sec-Fetch-Site": "cross-site"})
        assert site.status_code == 403
        client.cookies.clear()
        sign_in(client, session, settings, clerk)
        assert client.get("/console/probe").status_code == 403
    session.expire_all()
    refusals = [(e.action, e.outcome) for e in session.scalars(select(AuditEntry))]
    session.close()
    assert refusals.count(("csrf", "refused")) == 4
    assert ("forbidden", "refused") in refusals


def test_sessions_expire_and_can_be_revoked(settings, session) -> None:  # type: ignore[no-untyped-def]
    user = make_reviewer(session, "u").user
    token = auth.start_session(session, settings, user)
    assert auth.load_session(session, settings, token) is not None
    idle = utcnow() + dt.timedelta(minutes=settings.session_idle_minutes + 1)
    assert auth.load_session(session, settings, token, now=idle) is None
    late = utcnow() + dt.timedelta(hours=settings.session_max_hours + 1)
    assert auth.load_session(session, settings, token, now=late) is None
    assert auth.load_session(session, settings, "forged-token") is None
    assert accounts.revoke_others(session, user.id, None) == 1
    assert auth.load_session(session, settings, token) is None
    stored = session.scalar(select(ConsoleSession))
    assert token not in stored.id  # only the hash is kept
