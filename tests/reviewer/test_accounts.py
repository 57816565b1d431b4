"""Accounts over HTTP, with the real crypto in Python playing the browser's part.

The password never appears in a request: the "browser" here derives auth_secret and kek
exactly as static/js/console/ does, and the tests check what the server kept.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from dataclasses import dataclass

import pytest
import zxingcpp
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from PIL import Image, ImageDraw
from sqlalchemy import select
from starlette.testclient import TestClient

import crypto
from reviewer import auth
from service.app import create_app
from service.client import solve_pow
from service.domain import accounts, invitations, totp
from service.domain.models import (
    AuditEntry,
    ChannelRecipient,
    ConsoleSession,
    Invitation,
    RefusalCount,
    User,
    utcnow,
)
from service.platform import tokens
from tests.conftest import BASE_URL

PASSWORD = "correct horse battery staple"
JSON = {"Accept": "application/json"}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
HANDLE_META = re.compile(r'<meta name="key-handle" content="([^"]*)">')
SECRET_ATTR = re.compile(r'data-secret="([A-Z2-7]+)"')
QR_SVG = re.compile(r'<svg [^>]*id="totp-qr" viewBox="0 0 (\d+) \d+".*?<path [^>]*d="([^"]*)"',
                    re.S)
QR_RUN = re.compile(r"M(\d+) (\d+)h(\d+)v1h-\3z")


def decode_totp_qr(page: str) -> list[str]:
    """Draw the enrolment page's QR code as its SVG says (viewBox with the margin, one
    rectangle per run) and read it back as a phone's camera app would."""
    match = QR_SVG.search(page)
    assert match, "page without the QR code"
    side, path = int(match.group(1)), match.group(2)
    assert QR_RUN.sub("", path) == "", "path data other than runs of modules"
    scale, margin = 8, 4
    image = Image.new("L", (side * scale, side * scale), 255)
    draw = ImageDraw.Draw(image)
    for col, row, length in ((int(a), int(b), int(n)) for a, b, n in QR_RUN.findall(path)):
        x, y = (col + margin) * scale, (row + margin) * scale
        draw.rectangle((x, y, x + length * scale - 1, y + scale - 1), fill=0)
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def csrf_of(client: TestClient, path: str = "/console/login") -> str:
    match = CSRF_META.search(client.get(path).text)
    assert match, "page without a CSRF token"
    return match.group(1)


def b64(data: bytes) -> str:
    return crypto.b64u_encode(data)


@dataclass
class Account:
    user_id: int
    username: str
    password: str
    private_key: bytes
    totp_secret: bytes


def make_account(session, settings, username: str, password: str = PASSWORD,  # type: ignore[no-untyped-def]
                 roles: str = "reviewer") -> Account:
    """A finished account (as if enrolled), stored straight into the database."""
    salt = os.urandom(16)
    keys = crypto.derive_password(password, salt, settings.password_iterations)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    secret = os.urandom(20)
    user = User(username=username, display_name=username, roles=roles, active=True,
                user_salt=salt, auth_hash=crypto.hash_auth_secret(keys.auth_secret,
                                                                  n=settings.scrypt_n),
                public_key=public, key_id=kid.hex(),
                wrapped_private_key=crypto.wrap_private_key(keys.kek, private, kid),
                totp_secret=secret, totp_confirmed=True, totp_last_step=0,
                created_at=utcnow())
    session.add(user)
    session.commit()
    return Account(user.id, username, password, private, secret)


def prelogin(client: TestClient, csrf: str, username: str) -> dict:  # type: ignore[type-arg]
    response = client.post("/console/api/prelogin", json={"username": username},
                           headers={"X-CSRF-Token": csrf, **JSON})
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def login(client: TestClient, username: str, password: str, code: str,
          csrf: str | None = None):  # type: ignore[no-untyped-def]
    """Sign in as login.js does; returns the response."""
    csrf = csrf if csrf is not None else csrf_of(client)
    pre = prelogin(client, csrf, username)
    keys = crypto.derive_password(password, crypto.b64u_decode(pre["salt"]), pre["iterations"])
    return client.post("/console/login", json={
        "username": username, "auth_secret": b64(keys.auth_secret), "totp": code,
        "pow": solve_pow(pre["pow"]["challenge"], pre["pow"]["difficulty"]),
    }, headers={"X-CSRF-Token": csrf, **JSON})


class Clock:
    """The server's clock, frozen in the middle of a TOTP step, so codes never race it."""

    def __init__(self) -> None:
        middle = (int(time.time()) // 30) * 30 + 15
        self.now = dt.datetime.fromtimestamp(middle, dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def code(self, secret: bytes, offset: int = 0) -> str:
        # What an authenticator app shows, `offset` steps from now (independent of our code).
        moment = self.now.timestamp() + 30 * offset
        return TOTP(secret, 6, SHA1(), 30).generate(moment).decode()

    def wrong(self, secret: bytes) -> str:
        right = {self.code(secret, k) for k in (-1, 0, 1)}
        return next(c for c in ("000000", "111111", "222222", "333333") if c not in right)

    def tick(self) -> None:
        self.now += dt.timedelta(seconds=30)


@pytest.fixture
def clock(monkeypatch) -> Clock:  # type: ignore[no-untyped-def]
    frozen = Clock()
    monkeypatch.setattr("reviewer.views.accounts.utcnow", frozen)
    monkeypatch.setattr("service.domain.accounts.utcnow", frozen)
    monkeypatch.setattr("service.domain.invitations.utcnow", frozen)
    return frozen


@pytest.fixture
def committed_client(settings, committed_database):  # type: ignore[no-untyped-def]
    app = create_app(settings, database=committed_database)
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


def refusal_counts(database) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with database.session() as session:
        return {row.kind: row.count for row in session.scalars(select(RefusalCount))}


def audit_rows(database) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    with database.session() as session:
        return [(e.action, e.outcome, (e.details or {}).get("reason", ""))
                for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# ---------------------------------------------------------------------------- invitations


def test_invitation_totp_then_login(clock, client, session, settings) -> None:  # type: ignore[no-untyped-def]
    from service.domain import channels

    channel = channels.add_channel(session, slug="plant", kind="enterprise", name_zh="一号厂")
    _, token = invitations.create_invitation(session, roles=["reviewer"], hours=2,
                                             channel=channel)
    session.commit()
    page = client.get(f"/console/invite/{token}")
    assert page.status_code == 200 and 'id="invite-form"' in page.text
    assert f'data-iterations="{settings.password_iterations}"' in page.text
    csrf = CSRF_META.search(page.text).group(1)  # type: ignore[union-attr]

    salt = os.urandom(16)
    keys = crypto.derive_password(PASSWORD, salt, settings.password_iterations)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    body = {"username": "Zhang.Wei", "display_name": "张伟", "user_salt": b64(salt),
            "auth_secret": b64(keys.auth_secret), "public_key": b64(public),
            "wrapped_private_key": b64(crypto.wrap_private_key(keys.kek, private, kid))}
    created = client.post(f"/console/invite/{token}", json=body,
                          headers={"X-CSRF-Token": csrf, **JSON})
    assert created.status_code == 200, created.text
    assert created.json() == {"next": f"/console/invite/{token}/totp"}

    user = session.scalar(select(User).where(User.username == "zhang.wei"))
    assert user is not None and not user.totp_confirmed
    # The server holds a slow hash of auth_secret, the public key and the wrapped key: no
    # password, no kek, nothing that opens the private key.
    assert crypto.verify_auth_secret(keys.auth_secret, user.auth_hash)
    assert user.auth_hash.startswith(f"scrypt${settings.scrypt_n}$")
    assert user.key_id == kid.hex() and user.public_key == public
    assert crypto.unwrap_private_key(keys.kek, user.wrapped_private_key, kid) == private
    stored = repr([getattr(user, c.key) for c in User.__table__.columns])
    assert PASSWORD not in stored and keys.kek.hex() not in stored
    # Not usable yet: no channel, invitation still open, sign-in refused.
    assert session.get(ChannelRecipient, (channel.id, user.id)) is None
    assert login(client, "zhang.wei", PASSWORD, clock.code(user.totp_secret)).status_code == 401

    enrol = client.get(f"/console/invite/{token}/totp")
    assert enrol.status_code == 200
    shown = SECRET_ATTR.search(enrol.text).group(1)  # type: ignore[union-attr]
    secret = crypto.b32_decode(shown)
    assert secret == user.totp_secret and len(secret) == 20
    assert "otpauth://totp/Chuishao:zhang.wei?secret=" + shown in enrol.text
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="totp-qr"' in enrol.text
    assert decode_totp_qr(enrol.text) == [totp.uri("zhang.wei", secret)]
    csrf = CSRF_META.search(enrol.text).group(1)  # type: ignore[union-attr]

    wrong = client.post(f"/console/invite/{token}/totp",
                        data={"csrf_token": csrf, "code": clock.wrong(secret)})
    assert wrong.status_code == 400 and 'id="totp-error"' in wrong.text
    done = client.post(f"/console/invite/{token}/totp",
                       data={"csrf_token": csrf, "code": clock.code(secret)},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/login?welcome=1"
    session.expire_all()
    assert user.totp_confirmed and user.totp_last_step > 0
    invitation = session.scalar(select(Invitation))
    assert invitation is not None and invitation.used_at is not None
    assert invitation.used_by == user.id
    assert session.get(ChannelRecipient, (channel.id, user.id)) is not None
    # The link is spent.
    assert client.get(f"/console/invite/{token}").status_code == 404

    signed = login(client, "zhang.wei", PASSWORD, clock.code(secret, 1))
    assert signed.status_code == 200, signed.text
    answer = signed.json()
    assert answer["key_id"] == kid.hex() and answer["next"] == "/console/cases"
    assert crypto.unwrap_private_key(keys.kek, crypto.b64u_decode(answer["wrapped_private_key"]),
                                     kid) == private
    account = client.get("/console/account")
    assert account.status_code == 200 and "zhang.wei" in account.text
    assert HANDLE_META.search(account.text).group(1) == answer["key_handle"]  # type: ignore[union-attr]
    actions = [(e.action, e.outcome) for e in session.scalars(select(AuditEntry))]
    assert ("account.register", "ok") in actions and ("account.create", "ok") in actions
    assert ("login", "ok") in actions


def test_sending_the_form_again_replaces_the_pending_account(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    _, token = invitations.create_invitation(session, roles=["auditor"], hours=2)
    session.commit()

    def create(username: str) -> int:
        csrf = csrf_of(client, f"/console/invite/{token}")
        keys = crypto.derive_password(PASSWORD, os.urandom(16), settings.password_iterations)
        private, public = crypto.generate_keypair()
        kid = crypto.key_id(public)
        return client.post(f"/console/invite/{token}", headers={"X-CSRF-Token": csrf, **JSON},
                           json={"username": username, "display_name": "", "user_salt":
                                 b64(os.urandom(16)), "auth_secret": b64(keys.auth_secret),
                                 "public_key": b64(public), "wrapped_private_key":
                                 b64(crypto.wrap_private_key(keys.kek, private, kid))}
                           ).status_code

    assert create("first") == 200
    assert create("second") == 200
    names = [u.username for u in session.scalars(select(User))]
    assert names == ["second"]
    # Another browser (no enrolment cookie) cannot see the secret; it is sent back to start.
    other = TestClient(client.app, base_url=BASE_URL)
    away = other.get(f"/console/invite/{token}/totp", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == f"/console/invite/{token}"


def test_bad_account_data_is_refused(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    make_account(session, settings, "taken")
    _, token = invitations.create_invitation(session, roles=["reviewer"], hours=2)
    session.commit()
    csrf = csrf_of(client, f"/console/invite/{token}")
    good = {"username": "fine", "display_name": "", "user_salt": b64(os.urandom(16)),
            "auth_secret": b64(os.urandom(32)), "public_key": b64(os.urandom(32)),
            "wrapped_private_key": b64(b"\x01" + os.urandom(76))}
    for change in ({"username": "taken"}, {"username": "x"}, {"username": "名字"},
                   {"user_salt": b64(os.urandom(15))}, {"auth_secret": "not b64!"},
                   {"wrapped_private_key": b64(b"\x02" + os.urandom(76))},
                   {"public_key": b64(os.urandom(31))}):
        response = client.post(f"/console/invite/{token}", json={**good, **change},
                               headers={"X-CSRF-Token": csrf, **JSON})
        assert response.status_code == 400, change
    assert client.post(f"/console/invite/{token}", content=b"{", headers={
        "X-CSRF-Token": csrf, "Content-Type": "application/json", **JSON}).status_code == 400


def test_expired_used_and_unknown_invitations_look_alike(client, session) -> None:  # type: ignore[no-untyped-def]
    past = utcnow() - dt.timedelta(hours=5)
    _, expired = invitations.create_invitation(session, roles=["reviewer"], hours=1, now=past)
    used_row, used = invitations.create_invitation(session, roles=["reviewer"], hours=2)
    used_row.used_at = utcnow()
    session.commit()
    bodies = set()
    for token in (expired, used, "no-such-token", "x" * 300):
        page = client.get(f"/console/invite/{token}")
        assert page.status_code == 404
        # Only the language switch (which names the page) may differ.
        bodies.add(re.sub(r'content="[^"]*"|next=[^"]*"', "", page.text))
        api = client.post(f"/console/invite/{token}", json={},
                          headers={"X-CSRF-Token": csrf_of(client), **JSON})
        assert api.status_code == 404
        assert api.json()["error"]["code"] == "invitation_invalid"
    assert len(bodies) == 1
    assert "邀请链接无效或已过期" in bodies.pop()


def test_invitation_refusals_are_counted(committed_client, committed_database) -> None:  # type: ignore[no-untyped-def]
    # An unknown link names nobody: one counter per hour, not an audit entry per request.
    for _ in range(3):
        response = committed_client.post("/console/invite/nothing", json={}, headers={
            "X-CSRF-Token": csrf_of(committed_client), **JSON})
        assert response.status_code == 404
    assert not [row for row in audit_rows(committed_database) if row[0] == "account.register"]
    assert refusal_counts(committed_database) == {"account.register.invitation_invalid": 3}


# ---------------------------------------------------------------------------- sign-in


def test_every_refusal_gives_the_same_answer(clock, committed_client, committed_database,  # type: ignore[no-untyped-def]
                                             settings) -> None:
    with committed_database.session() as session:
        alice = make_account(session, settings, "alice")
    client = committed_client
    first = login(client, "alice", PASSWORD, clock.code(alice.totp_secret))
    assert first.status_code == 200
    client.cookies.clear()

    attempts = {
        "wrong_password": ("alice", "wrong password!", clock.code(alice.totp_secret, 1)),
        "wrong_code": ("alice", PASSWORD, clock.wrong(alice.totp_secret)),
        "replayed_code": ("alice", PASSWORD, clock.code(alice.totp_secret)),
        "unknown_user": ("nobody", PASSWORD, clock.code(alice.totp_secret, 1)),
        "malformed": ("alice", PASSWORD, "12ab56"),
    }
    answers = set()
    for _reason, (username, password, code) in attempts.items():
        response = login(client, username, password, code)
        answers.add((response.status_code, response.text))
        assert "set-cookie" not in response.headers or "session" not in response.headers[
            "set-cookie"]
    assert len(answers) == 1
    status, text = answers.pop()
    assert status == 401 and "login_failed" in text
    refused = [reason for action, outcome, reason in audit_rows(committed_database)
               if action == "login" and outcome == "refused"]
    assert refused == ["wrong_password", "wrong_code", "replayed_code", "wrong_code"]
    assert [a for a in audit_rows(committed_database) if a[:2] == ("login", "ok")]
    # A name without an account is counted, and not kept (it may be a mistyped password).
    assert refusal_counts(committed_database) == {"login.unknown_user": 1}
    with committed_database.session() as session:
        assert session.scalar(select(AuditEntry).where(
            AuditEntry.details["reason"].as_string() == "unknown_user")) is None


def test_prelogin_for_unknown_users_looks_real(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    make_account(session, settings, "real")
    csrf = csrf_of(client)
    real = prelogin(client, csrf, "real")
    ghost = prelogin(client, csrf, "ghost")
    assert prelogin(client, csrf, "ghost")["salt"] == ghost["salt"]  # deterministic
    assert prelogin(client, csrf, " GHOST ")["salt"] == ghost["salt"]
    assert prelogin(client, csrf, "ghost2")["salt"] != ghost["salt"]
    assert set(real) == set(ghost) == {"salt", "iterations", "pow"}
    assert real["pow"]["difficulty"] == ghost["pow"]["difficulty"]
    assert len(crypto.b64u_decode(ghost["salt"])) == len(crypto.b64u_decode(real["salt"])) == 16
    assert real["iterations"] == ghost["iterations"] == settings.password_iterations


def test_totp_window_and_replay(session, settings) -> None:  # type: ignore[no-untyped-def]
    dave = make_account(session, settings, "dave")
    keys = crypto.derive_password(PASSWORD, session.get(User, dave.user_id).user_salt,
                                  settings.password_iterations)
    now = utcnow()
    step = totp.current_step(now)
    secret = b64(keys.auth_secret)

    def attempt(code_step: int) -> str:
        code = totp.code_at(dave.totp_secret, code_step)
        return accounts.check_login(session, settings, "dave", secret, code, now).reason

    assert attempt(step - 2) == "wrong_code"
    assert attempt(step + 2) == "wrong_code"
    assert attempt(step - 1) == ""
    assert attempt(step - 1) == "replayed_code"
    assert attempt(step) == ""
    assert attempt(step - 1) == "replayed_code"
    assert attempt(step + 1) == ""
    assert attempt(step) == "replayed_code"


def test_unusable_accounts_cannot_sign_in(clock, session, settings, client) -> None:  # type: ignore[no-untyped-def]
    erin = make_account(session, settings, "erin")
    row = session.get(User, erin.user_id)
    row.active = False
    session.commit()
    assert login(client, "erin", PASSWORD, clock.code(erin.totp_secret)).status_code == 401
    row.active = True
    row.totp_confirmed = False
    session.commit()
    assert login(client, "erin", PASSWORD, clock.code(erin.totp_secret)).status_code == 401


def test_no_session_fixation(clock, client, session, settings) -> None:  # type: ignore[no-untyped-def]
    frank = make_account(session, settings, "frank")
    cookie = auth.session_cookie(settings)
    client.cookies.set(cookie, "chosen-by-an-attacker")
    response = login(client, "frank", PASSWORD, clock.code(frank.totp_secret, -1))
    assert response.status_code == 200
    token = response.cookies.get(cookie)
    assert token and token != "chosen-by-an-attacker"
    client.cookies.clear()
    client.cookies.set(cookie, token)
    assert session.get(ConsoleSession, tokens.digest("chosen-by-an-attacker")) is None
    # Signing in again, even from a signed-in browser, gives a new token and ends the old one.
    csrf = csrf_of(client, "/console/account")
    again = login(client, "frank", PASSWORD, clock.code(frank.totp_secret), csrf)
    assert again.status_code == 200
    second = again.cookies.get(cookie)
    assert second and second != token
    session.expire_all()
    assert session.get(ConsoleSession, tokens.digest(token)).revoked_at is not None
    assert session.get(ConsoleSession, tokens.digest(second)).revoked_at is None
    assert again.json()["key_handle"] != response.json()["key_handle"]


def test_logout_revoked_and_expired_sessions_are_refused(clock, client, session, settings) -> None:  # type: ignore[no-untyped-def]
    gina = make_account(session, settings, "gina")
    assert login(client, "gina", PASSWORD, clock.code(gina.totp_secret, -1)).status_code == 200
    token = client.cookies.get(auth.session_cookie(settings))
    assert client.get("/console/api/me/key").status_code == 200
    csrf = csrf_of(client, "/console/account")
    out = client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/console/login?out=1"
    client.cookies.set(auth.session_cookie(settings), token)  # a copied cookie stays dead
    assert client.get("/console/api/me/key").status_code == 401
    page = client.get("/console/account", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/console/login"

    client.cookies.clear()
    assert login(client, "gina", PASSWORD, clock.code(gina.totp_secret)
                 ).status_code == 200
    token = client.cookies.get(auth.session_cookie(settings))
    row = session.get(ConsoleSession, tokens.digest(token))
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    session.commit()
    assert client.get("/console/api/me/key").status_code == 401


def test_account_page_revokes_sessions(clock, client, session, settings) -> None:  # type: ignore[no-untyped-def]
    hana = make_account(session, settings, "hana")
    other = auth.start_session(session, settings, session.get(User, hana.user_id))
    session.commit()
    assert login(client, "hana", PASSWORD, clock.code(hana.totp_secret)).status_code == 200
    page = client.get("/console/account")
    assert page.status_code == 200
    assert page.text.count("/revoke\"") == 2
    assert "127.0.0.1" not in page.text and "testclient" not in page.text
    csrf = CSRF_META.search(page.text).group(1)  # type: ignore[union-attr]
    other_id = tokens.digest(other)
    done = client.post(f"/console/account/sessions/{other_id}/revoke",
                       data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    session.expire_all()
    assert session.get(ConsoleSession, other_id).revoked_at is not None
    # Someone else's session cannot be touched.
    ivan = make_account(session, settings, "ivan")
    theirs = tokens.digest(auth.start_session(session, settings, session.get(User, ivan.user_id)))
    session.commit()
    assert client.post(f"/console/account/sessions/{theirs}/revoke",
                       data={"csrf_token": csrf}).status_code == 404
    everywhere = client.post("/console/account/sessions/revoke-all", data={"csrf_token": csrf},
                             follow_redirects=False)
    assert everywhere.status_code == 303
    assert client.get("/console/api/me/key").status_code == 401
    session.expire_all()
    assert session.get(ConsoleSession, theirs).revoked_at is None


def test_password_change_rewraps_the_key(clock, client, session, settings) -> None:  # type: ignore[no-untyped-def]
    jun = make_account(session, settings, "jun")
    elsewhere = auth.start_session(session, settings, session.get(User, jun.user_id))
    session.commit()
    assert login(client, "jun", PASSWORD, clock.code(jun.totp_secret, -1)).status_code == 200
    csrf = csrf_of(client, "/console/account")
    pre = prelogin(client, csrf, "jun")
    old = crypto.derive_password(PASSWORD, crypto.b64u_decode(pre["salt"]), pre["iterations"])
    mine = client.get("/console/api/me/key").json()
    kid = bytes.fromhex(mine["key_id"])
    private = crypto.unwrap_private_key(old.kek, crypto.b64u_decode(mine["wrapped_private_key"]),
                                        kid)
    new_salt = os.urandom(16)
    new = crypto.derive_password("a brand new passphrase", new_salt, pre["iterations"])
    body = {"old_auth_secret": b64(old.auth_secret), "new_user_salt": b64(new_salt),
            "new_auth_secret": b64(new.auth_secret),
            "new_wrapped_private_key": b64(crypto.wrap_private_key(new.kek, private, kid))}

    assert client.post("/console/api/account/password", json=body).status_code == 403  # CSRF
    wrong = client.post("/console/api/account/password", headers={"X-CSRF-Token": csrf},
                        json={**body, "old_auth_secret": b64(os.urandom(32))})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    changed = client.post("/console/api/account/password", headers={"X-CSRF-Token": csrf},
                          json=body)
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"next": "/console/account?changed=1"}
    # This session goes on; the other one ended.
    assert client.get("/console/api/me/key").status_code == 200
    session.expire_all()
    assert session.get(ConsoleSession, tokens.digest(elsewhere)).revoked_at is not None
    row = session.get(User, jun.user_id)
    assert row.user_salt == new_salt and row.password_changed_at is not None
    assert crypto.unwrap_private_key(new.kek, row.wrapped_private_key, kid) == jun.private_key
    assert row.key_id == kid.hex()  # same key pair: existing cases stay readable

    client.cookies.clear()
    assert login(client, "jun", PASSWORD, clock.code(jun.totp_secret)).status_code == 401
    assert login(client, "jun", "a brand new passphrase",
                 clock.code(jun.totp_secret)).status_code == 200


def test_wrong_old_password_is_audited(clock, committed_client, committed_database, settings) -> None:  # type: ignore[no-untyped-def]
    with committed_database.session() as session:
        kim = make_account(session, settings, "kim")
    client = committed_client
    assert login(client, "kim", PASSWORD, clock.code(kim.totp_secret)).status_code == 200
    csrf = csrf_of(client, "/console/account")
    body = {"old_auth_secret": b64(os.urandom(32)), "new_user_salt": b64(os.urandom(16)),
            "new_auth_secret": b64(os.urandom(32)),
            "new_wrapped_private_key": b64(b"\x01" + os.urandom(76))}
    assert client.post("/console/api/account/password", headers={"X-CSRF-Token": csrf},
                       json=body).status_code == 403
    assert ("password.change", "refused", "wrong_password") in audit_rows(committed_database)
    with committed_database.session() as session:
        assert accounts.recent_failures(session, settings, str(settings.secret_key),
                                        "kim").count == 1


def test_csrf_is_required(clock, committed_client, committed_database, settings) -> None:  # type: ignore[no-untyped-def]
    with committed_database.session() as session:
        lin = make_account(session, settings, "lin")
        _, token = invitations.create_invitation(session, roles=["reviewer"], hours=1)
    client = committed_client
    client.get("/console/login")  # the pre-session cookie exists; only the token is missing
    assert client.post("/console/api/prelogin", json={"username": "lin"}).status_code == 403
    assert client.post("/console/login", json={"username": "lin"}).status_code == 403
    assert client.post(f"/console/invite/{token}", json={}).status_code == 403
    assert login(client, "lin", PASSWORD, clock.code(lin.totp_secret)).status_code == 200
    assert client.post("/console/logout").status_code == 403
    assert client.post("/console/account/sessions/revoke-all").status_code == 403
    # Signed in: one audit entry each. Anonymous: counted per hour.
    csrf_rows = [row for row in audit_rows(committed_database) if row[0] == "csrf"]
    assert len(csrf_rows) == 2
    assert refusal_counts(committed_database) == {"csrf": 3}


def test_qr_code_of_the_uri() -> None:
    uri = totp.uri("zhang.wei", bytes(range(20)))
    assert uri.startswith("otpauth://totp/Chuishao:zhang.wei?secret="
                          "AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT&issuer=Chuishao&")
    size, path = totp.qr_svg_path(uri)
    page = (f'<svg xmlns="http://www.w3.org/2000/svg" id="totp-qr" viewBox="0 0 {size + 8} '
            f'{size + 8}"><path d="{path}"/></svg>')
    assert decode_totp_qr(page) == [uri]
    # Nothing to draw, rather than a broken page, for text no QR symbol holds.
    assert totp.qr_svg_path("x" * 3000) == (0, "")
