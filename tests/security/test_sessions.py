"""Console sessions: what tests/reviewer/test_accounts.py does not already show.

test_accounts.py covers fixation with an invented token, logout/revocation/expiry on one
route, TOTP replay and throttling. Here, on *every* console route found at run time:

- a session token that was ended (sign-out, revocation of that session, "sign out
  everywhere", deactivation of the account, expiry, idleness) opens nothing: the answer is
  exactly what an anonymous visitor gets;
- a cookie planted before sign-in (a real session of the attacker's own account, or a
  pre-session cookie whose CSRF token the attacker knows) never becomes, or rides along
  with, the victim's session;
- an expired session sends every console page to the sign-in page.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from reviewer import auth
from service.domain.models import ConsoleSession, User, utcnow
from service.platform import tokens
from tests.console import sign_in
from tests.reviewer.test_accounts import PASSWORD, Clock, csrf_of, login, make_account
from tests.security.support import JSON_ACCEPT, Rich, console_routes, fill


@pytest.fixture
def clock(monkeypatch) -> Clock:  # type: ignore[no-untyped-def]
    frozen = Clock()
    monkeypatch.setattr("reviewer.views.accounts.utcnow", frozen)
    monkeypatch.setattr("service.domain.accounts.utcnow", frozen)
    monkeypatch.setattr("service.domain.invitations.utcnow", frozen)
    return frozen


def _all_requests(web: TestClient, rich: Rich, csrf: str) -> dict[str, tuple[int, str]]:
    """Every console route, safe or not, as the cookies of ``web`` allow; state-changing ones
    carry ``csrf``. Returns "METHOD path" -> (status, Location)."""
    answers = {}
    for route in console_routes(web.app):  # type: ignore[arg-type]
        path = fill(route.path, rich.values, route.params)
        for method in sorted(route.methods - {"HEAD"}):
            headers = {} if method == "GET" else {"X-CSRF-Token": csrf}
            response = web.request(method, path, headers=headers, follow_redirects=False)
            answers[f"{method} {path}"] = (response.status_code,
                                           response.headers.get("location", ""))
            assert response.status_code < 500, (method, path, response.text[:200])
    return answers


def _anonymous(web: TestClient, rich: Rich) -> dict[str, tuple[int, str]]:
    saved = dict(web.cookies)
    web.cookies.clear()
    csrf = csrf_of(web)
    baseline = _all_requests(web, rich, csrf)
    web.cookies.clear()
    for name, value in saved.items():
        web.cookies.set(name, value)
    return baseline


def _end_by_logout(web: TestClient, session, settings, user: User, token: str) -> None:  # type: ignore[no-untyped-def]
    csrf = csrf_of(web, "/console/account")
    assert web.post("/console/logout", data={"csrf_token": csrf},
                    follow_redirects=False).status_code == 303


def _end_by_revoking_it(web: TestClient, session, settings, user: User, token: str) -> None:  # type: ignore[no-untyped-def]
    csrf = csrf_of(web, "/console/account")
    assert web.post(f"/console/account/sessions/{tokens.digest(token)}/revoke",
                    data={"csrf_token": csrf}, follow_redirects=False).status_code == 303


def _end_everywhere_from_elsewhere(web: TestClient, session, settings, user: User,  # type: ignore[no-untyped-def]
                                   token: str) -> None:
    with TestClient(web.app, base_url=str(web.base_url)) as other:
        csrf = sign_in(other, session, settings, user)
        assert other.post("/console/account/sessions/revoke-all", data={"csrf_token": csrf},
                          follow_redirects=False).status_code == 303


def _end_by_deactivation(web: TestClient, session, settings, user: User, token: str) -> None:  # type: ignore[no-untyped-def]
    admin = make_account(session, settings, "the.admin", roles="admin")
    with TestClient(web.app, base_url=str(web.base_url)) as other:
        csrf = sign_in(other, session, settings, session.get(User, admin.user_id))
        answer = other.post(f"/console/admin/users/{user.id}/deactivate",
                            data={"csrf_token": csrf}, follow_redirects=False)
        assert answer.status_code in (200, 303), answer.text[:200]
    session.expire_all()
    assert not session.get(User, user.id).active


def _end_by_expiry(web: TestClient, session, settings, user: User, token: str) -> None:  # type: ignore[no-untyped-def]
    row = session.get(ConsoleSession, tokens.digest(token))
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    session.commit()


def _end_by_idleness(web: TestClient, session, settings, user: User, token: str) -> None:  # type: ignore[no-untyped-def]
    row = session.get(ConsoleSession, tokens.digest(token))
    row.last_seen_at = utcnow() - dt.timedelta(minutes=settings.session_idle_minutes, seconds=1)
    session.commit()


ENDINGS: dict[str, Callable[..., None]] = {
    "sign-out": _end_by_logout,
    "revocation of this session": _end_by_revoking_it,
    "sign out everywhere, from another browser": _end_everywhere_from_elsewhere,
    "account deactivated": _end_by_deactivation,
    "expired": _end_by_expiry,
    "idle": _end_by_idleness,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_an_ended_session_opens_no_console_route(web: TestClient, rich: Rich, session,  # type: ignore[no-untyped-def]
                                                 settings, ending: str) -> None:
    user = rich.allrounder.user
    csrf = sign_in(web, session, settings, user)
    token = web.cookies.get(auth.session_cookie(settings))
    assert token and web.get("/console/api/me/key").status_code == 200
    ENDINGS[ending](web, session, settings, user, token)
    # The browser (or a thief with a copy of the cookie) keeps sending the old token, with
    # the CSRF token that belonged to it.
    web.cookies.clear()
    web.cookies.set(auth.session_cookie(settings), token)
    dead = _all_requests(web, rich, csrf)
    anonymous = _anonymous(web, rich)
    # A page answers as it answers a stranger; a state-changing request is refused, either as
    # a stranger's or, since its CSRF token died with the session, as a forgery (403).
    differ = {key: (dead[key], anonymous[key]) for key in dead
              if dead[key] != anonymous[key] and not (
                  not key.startswith("GET ") and dead[key][0] == 403)}
    assert not differ, f"after {ending}, the old token still counts somewhere: {differ}"
    assert web.get("/console/api/me/key", headers=JSON_ACCEPT).status_code == 401


def test_a_planted_session_cookie_never_becomes_the_victims_session(  # type: ignore[no-untyped-def]
        clock, web: TestClient, session, settings) -> None:
    attacker = make_account(session, settings, "mallory")
    victim = make_account(session, settings, "victim", roles="reviewer approver")
    # The attacker signs in to their own account and plants that cookie in the victim's
    # browser (a shared machine, or a cookie set over a network the attacker controls).
    planted = auth.start_session(session, settings, session.get(User, attacker.user_id))
    session.commit()
    cookie = auth.session_cookie(settings)
    web.cookies.set(cookie, planted)
    csrf = csrf_of(web, "/console/account")
    signed = login(web, "victim", PASSWORD, clock.code(victim.totp_secret), csrf)
    assert signed.status_code == 200, signed.text
    fresh = signed.cookies.get(cookie)
    assert fresh and fresh != planted
    # The planted session ended with the sign-in; the victim's session is not the planted one.
    session.expire_all()
    assert session.get(ConsoleSession, tokens.digest(planted)).revoked_at is not None
    row = session.get(ConsoleSession, tokens.digest(fresh))
    assert row.user_id == victim.user_id and row.revoked_at is None
    with TestClient(web.app, base_url=str(web.base_url)) as thief:
        thief.cookies.set(cookie, planted)
        assert thief.get("/console/api/me/key", headers=JSON_ACCEPT).status_code == 401
    web.cookies.clear()
    web.cookies.set(cookie, fresh)
    assert web.get("/console/api/me/key").json()["username"] == "victim"


def test_a_planted_presession_cookie_gives_no_hold_on_the_session(  # type: ignore[no-untyped-def]
        clock, web: TestClient, session, settings) -> None:
    victim = make_account(session, settings, "victim2")
    # The attacker fetches the sign-in page with a pre-session value of their choice, and so
    # learns the CSRF token bound to it.
    chosen = "attacker-chosen-presession-value"
    presession = auth.presession_cookie(settings)
    with TestClient(web.app, base_url=str(web.base_url)) as attacker:
        attacker.cookies.set(presession, chosen)
        known = re.search(r'<meta name="csrf-token" content="([^"]*)">',
                          attacker.get("/console/login").text).group(1)  # type: ignore[union-attr]
    web.cookies.set(presession, chosen)
    assert csrf_of(web) == known
    signed = login(web, "victim2", PASSWORD, clock.code(victim.totp_secret), known)
    assert signed.status_code == 200
    # Once signed in, the token the attacker knows is worthless...
    refused = web.post("/console/account/sessions/revoke-all", headers={
        "X-CSRF-Token": known, **JSON_ACCEPT})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
    # ...and the pre-session value is not a session anywhere.
    with TestClient(web.app, base_url=str(web.base_url)) as attacker:
        attacker.cookies.set(auth.session_cookie(settings), chosen)
        attacker.cookies.set(presession, chosen)
        assert attacker.get("/console/api/me/key", headers=JSON_ACCEPT).status_code == 401
    assert web.get("/console/api/me/key").json()["username"] == "victim2"


def test_an_expired_session_sends_every_console_page_to_sign_in(web: TestClient, rich: Rich,  # type: ignore[no-untyped-def]
                                                                 session, settings) -> None:
    sign_in(web, session, settings, rich.allrounder.user)
    token = web.cookies.get(auth.session_cookie(settings))
    row = session.get(ConsoleSession, tokens.digest(token))
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    session.commit()
    problems = []
    for route in console_routes(web.app):  # type: ignore[arg-type]
        if "GET" not in route.methods or route.required_roles is None:
            continue  # sign-in and invitation pages are for visitors anyway
        path = fill(route.path, rich.values, route.params)
        page = web.get(path, follow_redirects=False)
        if "/api/" in path:
            if page.status_code != 401 or page.json()["error"]["code"] != "not_signed_in":
                problems.append(f"{path}: {page.status_code}")
        elif page.status_code != 303 or page.headers["location"] != "/console/login":
            problems.append(f"{path}: {page.status_code} {page.headers.get('location')}")
    assert not problems, "\n".join(problems)
