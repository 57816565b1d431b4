"""Security headers, the CSP and cookie flags on every route, found at run time.

Every GET-able route of the app and of the console sub-app is requested with its path
parameters filled from a real world (a verified case with a file, a reward, a rectification
record, a policy, an export, an invitation), as an anonymous visitor and as a signed-in user
of each role. Every answer, whatever its status, must carry the strict CSP and the other
headers; every HTML page must be free of inline script, inline style, event handlers and
URLs of other origins. Every cookie the app ever sends (found by walking the flows that set
them) must be HttpOnly, SameSite=Strict, Path=/ and, with secure cookies, __Host- and Secure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

import crypto
from reviewer import auth
from service.app import create_app
from service.domain import invitations
from service.platform import tokens
from service.platform.assets import STATIC_DIR
from service.platform.db import Database
from tests.conftest import BASE_URL, fast_settings
from tests.console import sign_in
from tests.security.support import (
    ROLES,
    Rich,
    fill,
    followup_token,
    page_problems,
    routes_of,
)

ALLOWED_SOURCES = {"'self'", "'none'"}
# img-src may name blob: and data: (decrypted pictures are shown from blob: URLs).
ALLOWED_EXTRA = {"img-src": {"blob:", "data:"}}
REQUIRED = {"default-src": "'none'", "frame-ancestors": "'none'", "object-src": "'none'",
            "base-uri": "'none'", "script-src": "'self'", "style-src": "'self'",
            "form-action": "'self'"}


def csp_problems(value: str | None) -> list[str]:
    if not value:
        return ["no Content-Security-Policy"]
    problems = []
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0].lower()] = tokens[1:]
    for name, wanted in REQUIRED.items():
        if directives.get(name) != [wanted]:
            problems.append(f"{name} is {directives.get(name)}, not {wanted}")
    for name, sources in directives.items():
        for source in sources:
            if source.lower() in ALLOWED_SOURCES or source in ALLOWED_EXTRA.get(name, set()):
                continue
            problems.append(f"{name} allows {source}")  # unsafe-*, http:, hosts, *, nonces
    return problems


def header_problems(response: object, path: str) -> list[str]:
    headers = response.headers  # type: ignore[attr-defined]
    # A policy binds documents and workers only; an imported module or a stylesheet ignores
    # it, so those are sent without one (service/platform/middleware.py).
    binds = not (path.startswith("/static/") and path.endswith((".js", ".css"))
                 and not path.endswith("worker.js"))
    problems = csp_problems(headers.get("content-security-policy")) if binds else []
    if headers.get("x-content-type-options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if headers.get("referrer-policy") != "no-referrer":
        problems.append("no Referrer-Policy: no-referrer")
    cache = headers.get("cache-control", "")
    # Static files and the favicon carry nothing of anyone's: they may be cached.
    if path.startswith("/static/") or path == "/favicon.ico":
        if "no-store" in cache:
            problems.append("static asset marked no-store")
    elif cache != "no-store":
        problems.append(f"Cache-Control {cache!r}, not no-store")
    # The tests' installation runs with secure cookies, so HSTS is due on every answer.
    if headers.get("strict-transport-security") != "max-age=63072000; includeSubDomains":
        problems.append("no Strict-Transport-Security")
    # X-Frame-Options binds a framed document only; like the policy, a module or a
    # stylesheet goes without.
    if binds and headers.get("x-frame-options") != "DENY":
        problems.append("no X-Frame-Options: DENY")
    if "access-control-allow-origin" in headers:
        problems.append("a CORS header")
    return problems


def html_problems(response: object) -> list[str]:
    content_type = response.headers.get("content-type", "")  # type: ignore[attr-defined]
    if not content_type.startswith("text/html"):
        return []
    return page_problems(response.text)  # type: ignore[attr-defined]


class Recorder:
    """Every Set-Cookie header a client receives, with the request that caused it."""

    def __init__(self, client: TestClient) -> None:
        self.cookies: list[tuple[str, str]] = []
        client.event_hooks = {"response": [self.hook]}

    def hook(self, response: object) -> None:
        for value in response.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
            self.cookies.append((str(response.request.url.path), value))  # type: ignore[attr-defined]


def cookie_problems(header: str, secure: bool) -> list[str]:
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    problems = []
    for name, morsel in jar.items():
        flags = {part.strip().split("=")[0].lower(): part.strip()
                 for part in header.split(";")[1:]}
        if "httponly" not in flags:
            problems.append(f"{name}: not HttpOnly")
        if morsel["samesite"].lower() != "strict":
            problems.append(f"{name}: SameSite={morsel['samesite']!r}")
        if morsel["path"] != "/":
            problems.append(f"{name}: Path={morsel['path']!r}")
        if morsel["domain"]:
            problems.append(f"{name}: Domain={morsel['domain']!r}")
        if secure:
            if not name.startswith("__Host-"):
                problems.append(f"{name}: no __Host- prefix")
            if "secure" not in flags:
                problems.append(f"{name}: not Secure")
        elif "secure" in flags and name.startswith("__Host-"):
            problems.append(f"{name}: __Host- without secure cookies")
    return problems


# ---------------------------------------------------------------------------- every route


def _walk(web: TestClient, rich: Rich, followup: str, recorder: Recorder) -> list[str]:
    problems = []
    for route in routes_of(web.app):  # type: ignore[arg-type]
        if "GET" not in route.methods:
            continue
        path = fill(route.path, rich.values, route.params)
        headers = {}
        if path.startswith("/api/v1/followup"):
            headers["Authorization"] = f"Bearer {followup}"
        before = len(recorder.cookies)
        response = web.get(path, headers=headers, follow_redirects=False)
        where = f"GET {path} -> {response.status_code}"
        if response.status_code >= 500:
            problems.append(f"{where}: server error")
        problems += [f"{where}: {p}" for p in header_problems(response, path)]
        problems += [f"{where}: {p}" for p in html_problems(response)]
        if path.startswith("/api/") and len(recorder.cookies) > before:
            problems.append(f"{where}: the API set a cookie")
    return problems


def test_every_get_route_as_anyone_and_every_role(web: TestClient, rich: Rich, session,  # type: ignore[no-untyped-def]
                                                  settings) -> None:
    followup = followup_token(web, session, settings, rich.receipt)
    recorder = Recorder(web)
    problems: list[str] = []
    for role in (None, *ROLES, "all"):
        web.cookies.clear()
        if role == "all":
            sign_in(web, session, settings, rich.allrounder.user)
        elif role is not None:
            sign_in(web, session, settings, rich.users[role].user)
        problems += [f"[{role or 'anonymous'}] {p}" for p in _walk(web, rich, followup,
                                                                   recorder)]
    assert not problems, "\n".join(problems)
    for path, cookie in recorder.cookies:
        assert not cookie_problems(cookie, secure=True), (path, cookie)


def test_static_assets_carry_the_headers_and_may_be_cached(web: TestClient) -> None:
    problems = []
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert files
    for file in files:
        path = "/static/" + file.relative_to(STATIC_DIR).as_posix()
        response = web.get(path)
        assert response.status_code == 200, path
        problems += [f"{path}: {p}" for p in header_problems(response, path)]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- error answers


async def _explode(request: Request) -> Response:
    raise RuntimeError("secret detail 10.1.2.3 must not leak")


@pytest.fixture
def exploding(settings, database) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The real app plus one route in the app and one in the console that fail."""
    app = create_app(settings, database=database)
    app.router.routes.insert(0, Route("/explode", _explode, methods=["GET", "POST"]))
    console = next(r.app for r in app.routes if getattr(r, "path", "") == "/console")
    console.router.routes.insert(0, Route("/explode", _explode))
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        yield client


def test_every_kind_of_error_answer_carries_the_headers(exploding: TestClient, rich: Rich,  # type: ignore[no-untyped-def]
                                                        settings) -> None:
    client = exploding
    big = b"x" * (settings.max_form_bytes + 1)
    json_headers = {"Content-Type": "application/json"}
    cases = [
        ("GET", "/no-such-page", {}, None, 404),
        ("GET", "/api/v1/no-such-thing", {}, None, 404),
        ("POST", "/language", {}, None, 405),
        ("GET", "/api/v1/submissions", {}, None, 405),
        ("GET", "/console/logout", {}, None, 405),
        ("POST", "/api/v1/submissions", json_headers, big, 413),
        ("POST", "/api/v1/submissions", {"Content-Type": "text/plain"}, b"{}", 415),
        ("POST", "/api/v1/submissions", json_headers, b"{", 400),
        ("GET", "/api/v1/followup", {"Authorization": "Bearer nonsense"}, None, 401),
        ("POST", "/console/logout", {}, b"", 403),
        ("GET", "/console/invite/not-a-token", {}, None, 404),
        ("GET", "/explode", {}, None, 500),
        ("GET", "/explode", {"Accept": "application/json"}, None, 500),
        ("GET", "/console/explode", {}, None, 500),
    ]
    problems = []
    for method, path, headers, body, status in cases:
        response = client.request(method, path, headers=headers, content=body)
        where = f"{method} {path} -> {response.status_code}"
        if response.status_code != status:
            problems.append(f"{where}: expected {status}")
        problems += [f"{where}: {p}" for p in header_problems(response, path)]
        problems += [f"{where}: {p}" for p in html_problems(response)]
        if "secret detail" in response.text or "RuntimeError" in response.text:
            problems.append(f"{where}: exception text in the answer")
    assert not problems, "\n".join(problems)


def test_a_console_server_error_is_the_translated_page(exploding: TestClient) -> None:
    page = exploding.get("/console/explode", headers={"Accept-Language": "en"})
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "Something went wrong on our side" in page.text
    api = exploding.get("/console/explode", headers={"Accept": "application/json"})
    assert api.json()["error"]["code"] == "server_error"


# ---------------------------------------------------------------------------- cookies


def _walk_cookie_flows(client: TestClient, session, settings) -> None:  # type: ignore[no-untyped-def]
    """Every flow that sets or clears a cookie: language, pre-session, enrolment (set and
    cleared), sign-in, revocation of the own session, sign-out."""
    from tests.reviewer.test_accounts import PASSWORD, Clock, csrf_of, login, make_account

    clock = Clock()
    client.get("/language?lang=en&next=/")
    client.get("/language?lang=zh_CN&next=/")
    client.cookies.clear()
    client.get("/console/login")  # the pre-session cookie
    # Enrolment: the account is created, the enrolment cookie is set, then cleared.
    _, token = invitations.create_invitation(session, roles=["reviewer"], hours=2)
    session.commit()
    csrf = csrf_of(client, f"/console/invite/{token}")
    salt = os.urandom(16)
    keys = crypto.derive_password(PASSWORD, salt, settings.password_iterations)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    created = client.post(f"/console/invite/{token}", headers={
        "X-CSRF-Token": csrf, "Accept": "application/json"}, json={
        "username": "cookie.walker", "display_name": "", "user_salt": crypto.b64u_encode(salt),
        "auth_secret": crypto.b64u_encode(keys.auth_secret),
        "public_key": crypto.b64u_encode(public),
        "wrapped_private_key": crypto.b64u_encode(crypto.wrap_private_key(keys.kek, private,
                                                                          kid))})
    assert created.status_code == 200, created.text
    from service.domain.models import User

    session.expire_all()
    from sqlalchemy import select

    user = session.scalar(select(User).where(User.username == "cookie.walker"))
    assert user is not None and user.totp_secret is not None
    import reviewer.views.accounts as account_views

    original = account_views.utcnow
    account_views.utcnow = clock  # type: ignore[assignment]
    import service.domain.accounts as account_domain

    original_domain = account_domain.utcnow
    account_domain.utcnow = clock  # type: ignore[assignment]
    import service.domain.invitations as invitation_domain

    original_invitations = invitation_domain.utcnow
    invitation_domain.utcnow = clock  # type: ignore[assignment]
    try:
        confirmed = client.post(f"/console/invite/{token}/totp", data={
            "csrf_token": csrf, "code": clock.code(user.totp_secret)}, follow_redirects=False)
        assert confirmed.status_code == 303, confirmed.text[:300]
        make_account(session, settings, "cookie.eater")
        clock.tick()
        account = session.scalar(select(User).where(User.username == "cookie.eater"))
        assert login(client, "cookie.eater", PASSWORD,
                     clock.code(account.totp_secret)).status_code == 200
    finally:
        account_views.utcnow = original  # type: ignore[assignment]
        account_domain.utcnow = original_domain  # type: ignore[assignment]
        invitation_domain.utcnow = original_invitations  # type: ignore[assignment]
    csrf = csrf_of(client, "/console/account")
    own = client.cookies.get(auth.session_cookie(settings))
    assert own
    revoked = client.post(f"/console/account/sessions/{tokens.digest(own)}/revoke",
                          data={"csrf_token": csrf}, follow_redirects=False)
    assert revoked.status_code == 303
    client.cookies.clear()
    csrf = sign_in(client, session, settings, account)
    client.post("/console/account/sessions/revoke-all", data={"csrf_token": csrf},
                follow_redirects=False)
    csrf = sign_in(client, session, settings, account)
    out = client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303


@pytest.mark.parametrize("secure", [True, False], ids=["secure", "plain-http"])
def test_every_cookie_is_httponly_strict_and_host_bound(tmp_path: Path, database: Database,  # type: ignore[no-untyped-def]
                                                         session, secure: bool) -> None:
    settings = fast_settings(tmp_path / "var", secure_cookies=secure)
    from tests.factories import make_world

    make_world(session, settings)
    app = create_app(settings, database=database)
    with TestClient(app, base_url=BASE_URL if secure else "http://testserver") as client:
        recorder = Recorder(client)
        _walk_cookie_flows(client, session, settings)
    names = set()
    problems = []
    for path, header in recorder.cookies:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        names.update(jar.keys())
        problems += [f"{path}: {p}" for p in cookie_problems(header, secure)]
    assert not problems, "\n".join(problems)
    prefix = "__Host-" if secure else ""
    assert {prefix + n for n in ("lang", "presession", "session", "enrol")} <= names, names
    # Deleting cookies (sign-out, the end of enrolment) uses the same flags: seen above.
    assert sum("max-age=0" in h.lower() or "expires=thu, 01 jan 1970" in h.lower()
               for _, h in recorder.cookies) >= 2
