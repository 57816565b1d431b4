"""Sign-in makes the attacker pay instead of locking the owner out.

The attack found in review: five wrong sign-ins (no stamp needed) paused an account, and ~4
requests an hour kept its owner out indefinitely. Now every attempt carries a proof-of-work
stamp whose price grows with the claimed name's recent failures; the owner always gets in
(paying one dear stamp), and is told, as are the administrators.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

import crypto
from service.client import solve_pow
from service.domain import accounts
from service.domain.models import AuditEntry, RefusalCount, SignInFailure
from tests.console import sign_in
from tests.factories import make_reviewer
from tests.reviewer import test_accounts
from tests.reviewer.test_accounts import JSON, PASSWORD, b64, csrf_of, make_account

# The sign-in tests' fixtures: a frozen TOTP clock, and a client whose requests commit.
clock = test_accounts.clock
committed_client = test_accounts.committed_client


def _attempt(client, csrf: str, username: str, password: str, code: str, *,  # type: ignore[no-untyped-def]
             stamp: str | None = None, language: str = "en"):
    pre = client.post("/console/api/prelogin", json={"username": username},
                      headers={"X-CSRF-Token": csrf, **JSON}).json()
    keys = crypto.derive_password(password, crypto.b64u_decode(pre["salt"]), pre["iterations"])
    if stamp is None:
        stamp = solve_pow(pre["pow"]["challenge"], pre["pow"]["difficulty"])
    response = client.post("/console/login", json={
        "username": username, "auth_secret": b64(keys.auth_secret), "totp": code,
        "pow": stamp}, headers={"X-CSRF-Token": csrf, "Accept-Language": language, **JSON})
    return response, pre["pow"]["difficulty"]


def test_four_guesses_an_hour_never_lock_the_owner_out(clock, committed_client,  # type: ignore[no-untyped-def]
                                                       committed_database, settings) -> None:
    with committed_database.session() as session:
        owner = make_account(session, settings, "owner")
        admin = make_reviewer(session, "root", roles="admin").user
        session.commit()
    client = committed_client
    csrf = csrf_of(client)
    base = settings.login_pow_difficulty
    prices = []
    # A day of the attack: four wrong guesses an hour.
    for _ in range(24 * 4):
        response, difficulty = _attempt(client, csrf, "owner", "a wrong guess", "000000")
        assert response.status_code == 401
        prices.append(difficulty)
        clock.now += dt.timedelta(minutes=15)
    # Free for the first few, then one bit (twice the work) per failure, up to a ceiling.
    free, ceiling = settings.login_pow_free_failures, settings.login_pow_max_extra
    assert prices[:free + 1] == [base] * (free + 1)
    assert prices[free + 1:free + 4] == [base + 1, base + 2, base + 3]
    assert max(prices) == prices[-1] == base + ceiling
    # The administrators see it before the owner is back.
    admin_client = client.__class__(client.app, base_url=str(client.base_url))
    with committed_database.session() as session:
        sign_in(admin_client, session, settings, session.get(type(admin), admin.id))
    page = admin_client.get("/console/admin", headers={"Accept-Language": "en"}).text
    assert re.search(r'<span class="badge server">96</span>', page)
    # Before: 401 for as long as the attack goes on. Now: in, with one stamp of the top price.
    response, difficulty = _attempt(client, csrf, "owner", PASSWORD, clock.code(owner.totp_secret))
    assert response.status_code == 200, response.text
    assert difficulty == base + ceiling
    answer = response.json()
    assert answer["failed_attempts"] == 96
    assert "96 failed sign-in attempts" in answer["failed_notice"]
    # The slate is clean afterwards; every failure is one audit entry naming the account.
    with committed_database.session() as session:
        assert accounts.recent_failures(session, settings, str(settings.secret_key),
                                        "owner", clock.now).count == 0
        refused = session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "login", AuditEntry.outcome == "refused",
            AuditEntry.actor_id == owner.user_id))
        assert refused == 96
        ok = session.scalar(select(AuditEntry).where(AuditEntry.action == "login",
                                                     AuditEntry.outcome == "ok"))
        assert ok.details == {"failed_before": 96}


def test_a_stamp_bought_before_the_failures_no_longer_pays(clock, committed_client,  # type: ignore[no-untyped-def]
                                                           committed_database, settings) -> None:
    with committed_database.session() as session:
        make_account(session, settings, "mei")
    client = committed_client
    csrf = csrf_of(client)
    cheap = client.post("/console/api/prelogin", json={"username": "mei"},
                        headers={"X-CSRF-Token": csrf, **JSON}).json()["pow"]
    old_stamp = solve_pow(cheap["challenge"], cheap["difficulty"])
    for _ in range(settings.login_pow_free_failures + 2):
        assert _attempt(client, csrf, "mei", "wrong", "000000")[0].status_code == 401
    with committed_database.session() as session:
        audited = session.scalar(select(func.count()).select_from(AuditEntry))
    response, _ = _attempt(client, csrf, "mei", "wrong", "000000", stamp=old_stamp)
    assert response.status_code == 400 and response.json()["error"]["code"] == "pow_invalid"
    # Refused before the password is even hashed: no failure counted, no audit entry.
    with committed_database.session() as session:
        assert accounts.recent_failures(session, settings, str(settings.secret_key),
                                        "mei").count == settings.login_pow_free_failures + 2
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == audited


def test_no_stamp_no_sign_in_and_only_a_counter(clock, committed_client, committed_database,  # type: ignore[no-untyped-def]
                                                settings) -> None:
    with committed_database.session() as session:
        make_account(session, settings, "lan")
    client = committed_client
    csrf = csrf_of(client)
    for _ in range(20):
        response = client.post("/console/login", json={
            "username": "lan", "auth_secret": b64(b"\0" * 32), "totp": "000000"},
            headers={"X-CSRF-Token": csrf, **JSON})
        assert response.status_code == 400 and response.json()["error"]["code"] == "pow_invalid"
    with committed_database.session() as session:
        # Before: 20 audit entries and a paused account. Now: one counter row, nothing else.
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0
        assert session.scalar(select(func.count()).select_from(SignInFailure)) == 0
        rows = list(session.scalars(select(RefusalCount)))
        assert [(r.kind, r.count) for r in rows] == [("login.pow", 20)]


def test_made_up_names_are_priced_like_real_ones(clock, committed_client, committed_database,  # type: ignore[no-untyped-def]
                                                 settings) -> None:
    with committed_database.session() as session:
        make_account(session, settings, "real")
    client = committed_client
    csrf = csrf_of(client)
    seen = {}
    for name in ("real", "ghost"):
        prices = []
        for _ in range(settings.login_pow_free_failures + 3):
            response, difficulty = _attempt(client, csrf, name, "wrong", "000000")
            assert response.status_code == 401
            prices.append(difficulty)
        seen[name] = prices
    assert seen["real"] == seen["ghost"]
    with committed_database.session() as session:
        # A made-up name is counted, not audited, and not stored in the clear.
        assert session.scalar(select(RefusalCount.count).where(
            RefusalCount.kind == "login.unknown_user")) == settings.login_pow_free_failures + 3
        assert "ghost" not in str(list(session.execute(select(AuditEntry.details))))
        assert session.scalar(select(func.count()).select_from(SignInFailure)) <= 2


def test_the_owner_is_told_in_chinese_too(clock, committed_client, committed_database,  # type: ignore[no-untyped-def]
                                          settings) -> None:
    with committed_database.session() as session:
        wu = make_account(session, settings, "wu")
    client = committed_client
    csrf = csrf_of(client)
    assert _attempt(client, csrf, "wu", "wrong", "000000")[0].status_code == 401
    response, _ = _attempt(client, csrf, "wu", PASSWORD, clock.code(wu.totp_secret),
                           language="zh-CN")
    assert response.status_code == 200
    notice = response.json()["failed_notice"]
    assert "1" in notice and "登录" in notice
    # Nothing to tell after a clean sign-in.
    client.cookies.clear()
    csrf = csrf_of(client)
    clock.tick()
    again, _ = _attempt(client, csrf, "wu", PASSWORD, clock.code(wu.totp_secret))
    assert again.json()["failed_attempts"] == 0 and again.json()["failed_notice"] == ""


def test_old_failures_are_forgotten(clock, committed_client, committed_database,  # type: ignore[no-untyped-def]
                                    settings) -> None:
    with committed_database.session() as session:
        make_account(session, settings, "he")
    client = committed_client
    csrf = csrf_of(client)
    for _ in range(settings.login_pow_free_failures + 4):
        _attempt(client, csrf, "he", "wrong", "000000")
    price = client.post("/console/api/prelogin", json={"username": "he"},
                        headers={"X-CSRF-Token": csrf, **JSON}).json()["pow"]["difficulty"]
    assert price == settings.login_pow_difficulty + 4
    clock.now += dt.timedelta(hours=settings.sign_in_failure_hours, minutes=1)
    price = client.post("/console/api/prelogin", json={"username": "he"},
                        headers={"X-CSRF-Token": csrf, **JSON}).json()["pow"]["difficulty"]
    assert price == settings.login_pow_difficulty
    # The next failure starts a new count.
    _attempt(client, csrf, "he", "wrong", "000000")
    with committed_database.session() as session:
        assert accounts.recent_failures(session, settings, str(settings.secret_key), "he",
                                        clock.now).count == 1
