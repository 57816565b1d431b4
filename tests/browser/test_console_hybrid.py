"""Protocol v2 for reviewers, end to end in Chromium: an account from before v2 gains its
X-Wing key at sign-in, a report the worker's browser seals reaches it v2, and the console
opens it through the v2 slot. With the hybrid made unavailable the account, and so the case,
stay classical, and the console marks the case classical-only."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import crypto
from service.domain.models import AuditEntry, ChannelRecipient, KeySlot, User, utcnow
from tests.browser.live import LiveServer, running_server
from tests.browser.test_console_accounts import totp_now
from tests.browser.test_reporter_flow import (
    DESCRIPTION,
    NO_HYBRID,
    Browser,
    fill_report,
    open_form,
    stored_case,
)

pytestmark = pytest.mark.browser

PASSWORD = "长城 correct horse battery"
# NO_HYBRID hides the hybrid from feature detection and key generation; a browser that truly
# lacks it cannot import or unwrap an X-Wing key either.
NO_XWING_AT_ALL = NO_HYBRID + """
  for (const op of ["importKey", "unwrapKey"]) {
    const original = crypto.subtle[op].bind(crypto.subtle);
    crypto.subtle[op] = (...args) => args.some((a) => name(a) === XWING)
      ? Promise.reject(new DOMException("no", "NotSupportedError"))
      : original(...args);
  }
"""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "live", reviewers=0) as server:
        yield server


@pytest.fixture
def browser(chromium: Any, live: LiveServer) -> Iterator[Browser]:
    watcher = Browser(chromium, live.base_url)
    try:
        yield watcher
    finally:
        watcher.close()
    assert not watcher.errors, watcher.errors


def classical_reviewer(live: LiveServer, username: str, roles: str = "reviewer") -> bytes:
    """An account as one made before v2 (X25519 only), receiving the channel's reports if a
    reviewer; returns its TOTP secret."""
    salt = os.urandom(16)
    keys = crypto.derive_password(PASSWORD, salt, live.settings.password_iterations)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    secret = os.urandom(20)
    with live.session() as session:
        user = User(username=username, display_name=username, roles=roles, active=True,
                    user_salt=salt, auth_hash=crypto.hash_auth_secret(
                        keys.auth_secret, n=live.settings.scrypt_n),
                    public_key=public, key_id=kid.hex(),
                    wrapped_private_key=crypto.wrap_private_key(keys.kek, private, kid),
                    totp_secret=secret, totp_confirmed=True, totp_last_step=0,
                    created_at=utcnow())
        session.add(user)
        session.flush()
        if "reviewer" in roles.split():
            session.add(ChannelRecipient(channel_id=live.world.channel.id, user_id=user.id,
                                         created_at=utcnow()))
    return secret


def sign_in(page: Any, username: str, secret: bytes, step: int = 0) -> None:
    page.goto("/console/login")
    page.wait_for_selector("#login-submit:not([disabled])")
    page.fill("#l-username", username)
    page.fill("#l-password", PASSWORD)
    page.fill("#l-code", totp_now(secret, step))
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/console/cases$"))


def submit_report(browser: Browser, live: LiveServer, *, hybrid: bool) -> str:
    page = browser.page()
    if not hybrid:
        page.add_init_script(NO_HYBRID)
    open_form(page)
    fill_report(page)
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    return stored_case(live).id


def read_in_console(page: Any, case_id: str) -> dict[str, Any]:
    page.goto("/console/cases")
    row = page.locator(f'tr.case-row[data-case-id="{case_id}"]')
    row.locator(".summary-text").filter(has_text="某机械厂").wait_for()
    assert row.get_attribute("data-decrypted") == "1"
    marked = row.locator(".badge.classical").count() == 1
    page.goto(f"/console/cases/{case_id}")
    page.locator("#report-description").filter(has_text="两周没有修理").wait_for()
    return {"list_marked": marked, "case_marked": page.locator(".badge.classical").count() == 1}


def test_a_v2_report_opens_through_the_v2_slot(live: LiveServer, browser: Browser) -> None:
    secret = classical_reviewer(live, "zhao.lei")
    console = browser.page()
    sign_in(console, "zhao.lei", secret)
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "zhao.lei"))
        assert user is not None and user.xwing_key_id is not None
        xwing_key_id, user_id = user.xwing_key_id, user.id
        assert session.scalar(select(AuditEntry.actor).where(
            AuditEntry.action == "account.add_pq")) == "zhao.lei"

    case_id = submit_report(browser, live, hybrid=True)
    with live.session() as session:
        slots = {(s.holder, s.suite) for s in session.scalars(
            select(KeySlot).where(KeySlot.case_id == case_id))}
        assert slots == {("reviewer", crypto.SUITE_V2), ("recovery", crypto.SUITE_V2),
                         ("reporter", crypto.SUITE_V2)}
        mine = session.scalar(select(KeySlot).where(KeySlot.case_id == case_id,
                                                    KeySlot.user_id == user_id))
        assert mine is not None and mine.key_id == xwing_key_id
    assert not stored_case(live).classical_only
    # No v1 slot exists for this reviewer: the case opens through the v2 one or not at all.
    assert read_in_console(console, case_id) == {"list_marked": False, "case_marked": False}
    assert DESCRIPTION.split("\n")[0] in console.inner_text("#report-description")
    # In a browser without the hybrid the same account signs in, but this case says why it
    # does not open.
    elsewhere = browser.page()
    elsewhere.add_init_script(NO_XWING_AT_ALL)
    sign_in(elsewhere, "zhao.lei", secret, step=1)
    elsewhere.goto(f"/console/cases/{case_id}")
    elsewhere.wait_for_selector("#case-error:not([hidden])")
    assert "抗量子" in elsewhere.inner_text("#case-error")


def test_without_the_hybrid_account_and_case_stay_classical_and_marked(
        live: LiveServer, browser: Browser) -> None:
    secret = classical_reviewer(live, "qian.li")
    console = browser.page()
    console.add_init_script(NO_HYBRID)
    sign_in(console, "qian.li", secret)
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "qian.li"))
        assert user is not None and user.xwing_key_id is None
    case_id = submit_report(browser, live, hybrid=False)
    with live.session() as session:
        assert {s.suite for s in session.scalars(
            select(KeySlot).where(KeySlot.case_id == case_id))} == {crypto.SUITE}
    assert stored_case(live).classical_only
    assert read_in_console(console, case_id) == {"list_marked": True, "case_marked": True}
