"""CSRF on every state-changing console route, found at run time.

The user holds every role, so authorization would let each request through: only the CSRF
check stands between it and the view. Each route is tried without a token, with a wrong
token, with the token of another user's session, and with the right token but from another
site (Origin, Sec-Fetch-Site). Every attempt must be refused with 403 "csrf", change nothing,
and leave one "refused" entry in the audit trail.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from reviewer import auth
from service.domain.models import AuditEntry
from tests.console import sign_in
from tests.security.support import JSON_ACCEPT, Rich, console_routes, fill, snapshot


def _attempts(mine: str, theirs: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(label, headers, form fields) of each forged request."""
    flipped = mine[:-2] + ("AA" if not mine.endswith("AA") else "BB")
    return [
        ("no token", {}, {"field": "1"}),
        ("empty token", {"X-CSRF-Token": ""}, {}),
        ("wrong token (header)", {"X-CSRF-Token": flipped}, {}),
        ("wrong token (form)", {}, {"csrf_token": flipped}),
        ("token of another session (header)", {"X-CSRF-Token": theirs}, {}),
        ("token of another session (form)", {}, {"csrf_token": theirs}),
        ("right token, cross-site Origin", {"X-CSRF-Token": mine,
                                            "Origin": "https://evil.example"}, {}),
        ("right token, Origin of another port", {"X-CSRF-Token": mine,
                                                  "Origin": "https://testserver:8443"}, {}),
        ("right token, Sec-Fetch-Site cross-site", {"X-CSRF-Token": mine,
                                                    "Sec-Fetch-Site": "cross-site"}, {}),
        ("right form token, cross-site Origin", {"Origin": "http://evil.example"},
         {"csrf_token": mine}),
    ]


def test_every_state_changing_console_route_needs_the_token(web: TestClient, rich: Rich,
                                                            session, settings) -> None:  # type: ignore[no-untyped-def]
    # Another user's session: its token is valid, but bound to that session only.
    theirs = sign_in(web, session, settings, rich.users["reviewer"].user)
    web.cookies.clear()
    mine = sign_in(web, session, settings, rich.allrounder.user)
    assert mine != theirs
    routes = [r for r in console_routes(web.app) if r.unsafe_methods]  # type: ignore[arg-type]
    assert len(routes) >= 10, "the console's routes were not found"
    before = snapshot(session, exclude=("audit_log", "console_sessions"))
    first_entry = session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1))
    expected_refusals = []
    problems = []
    for route in routes:
        path = fill(route.path, rich.values, route.params)
        for method in route.unsafe_methods:
            for label, headers, form in _attempts(mine, theirs):
                response = web.request(method, path, headers={**JSON_ACCEPT, **headers},
                                       data=form or None, follow_redirects=False)
                where = f"{method} {path} [{label}]"
                if response.status_code != 403:
                    problems.append(f"{where}: {response.status_code}")
                    continue
                if response.json().get("error", {}).get("code") != "csrf":
                    problems.append(f"{where}: refused, but not as CSRF: {response.text[:120]}")
                expected_refusals.append(path[:100])
    assert not problems, "\n".join(problems)
    assert snapshot(session, exclude=("audit_log", "console_sessions")) == before
    session.expire_all()
    entries = list(session.scalars(select(AuditEntry).where(
        AuditEntry.id > (first_entry or 0)).order_by(AuditEntry.id)))
    assert [(e.action, e.outcome) for e in entries] == [("csrf", "refused")] * len(
        expected_refusals)
    assert [e.target for e in entries] == expected_refusals
    assert {e.actor_id for e in entries} == {rich.allrounder.user.id}


def test_the_right_token_from_this_site_passes(web: TestClient, rich: Rich, session,  # type: ignore[no-untyped-def]
                                               settings) -> None:
    """The control: the same requests with the right token and a same-site Origin are not
    refused as CSRF (they may fail later for their own reasons), so the refusals above are
    the check at work and not a route that refuses everything."""
    mine = sign_in(web, session, settings, rich.allrounder.user)
    for route in console_routes(web.app):  # type: ignore[arg-type]
        if "POST" not in route.methods or route.path.endswith(("/logout", "revoke-all")):
            continue
        path = fill(route.path, rich.values, route.params)
        response = web.post(path, headers={**JSON_ACCEPT, "X-CSRF-Token": mine,
                                           "Origin": "https://testserver",
                                           "Sec-Fetch-Site": "same-origin"},
                            follow_redirects=False)
        if response.status_code == 403:
            assert response.json()["error"]["code"] != "csrf", path
        assert response.status_code < 500, (path, response.status_code, response.text[:200])
    assert auth.session_cookie(settings) in web.cookies
