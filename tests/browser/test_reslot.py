"""Re-slotting in Chromium (PROTOCOL 17.8): a case sealed while its reviewer had an X25519
key only is classical-only; once the reviewer has signed in with the hybrid, the case page
offers to seal post-quantum slots, the click replaces the v1 slot, and the case then opens
through the v2 slot and is no longer marked."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import crypto
from service.domain.models import KeySlot, User
from tests.browser.live import LiveServer
from tests.browser.test_console_hybrid import (  # noqa: F401 - fixtures
    browser,
    classical_reviewer,
    live,
    read_in_console,
    sign_in,
    submit_report,
)
from tests.browser.test_reporter_flow import Browser, stored_case

pytestmark = pytest.mark.browser


def test_a_classical_case_gains_v2_slots_from_the_case_page(live: LiveServer,  # noqa: F811
                                                            browser: Browser) -> None:  # noqa: F811
    secret = classical_reviewer(live, "sun.yu")
    case_id = submit_report(browser, live, hybrid=True)  # the reviewer has no X-Wing key yet
    assert stored_case(live).classical_only
    console = browser.page()
    sign_in(console, "sun.yu", secret)  # the account gains its X-Wing pair here
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "sun.yu"))
        assert user is not None and user.xwing_key_id is not None
        user_id, xwing_key_id = user.id, user.xwing_key_id
    assert read_in_console(console, case_id) == {"list_marked": True, "case_marked": True}
    console.wait_for_selector("#reslot-panel:not([hidden]) #reslot-button")
    console.click("#reslot-button")
    console.locator("#reslot-status").filter(has_text="已封存抗量子密钥槽：1 个").wait_for()
    assert console.locator(".badge.classical").is_hidden()
    with live.session() as session:
        mine = {(s.suite, s.key_id) for s in session.scalars(select(KeySlot).where(
            KeySlot.case_id == case_id, KeySlot.user_id == user_id))}
        assert mine == {(crypto.SUITE_V2, xwing_key_id)}
    assert not stored_case(live).classical_only
    # Opened again, through the v2 slot, and no longer offered or marked.
    assert read_in_console(console, case_id) == {"list_marked": False, "case_marked": False}
    assert console.locator("#reslot-panel").count() == 0
