"""An installation that requires suite v2, in Chromium on a phone-sized screen: a browser
without the hybrid never seals classically. The report page says so in the worker's language
before anything is typed, files no case by itself, and offers the server path (which seals
v2); the follow-up page does the same before the receipt is typed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

import crypto
from service.domain.models import KeySlot
from service.web import jsmessages
from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.browser.test_reporter_flow import (
    NO_HYBRID,
    Browser,
    counts,
    fill_report,
    stored_case,
    tr,
)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live(live_factory: Callable[..., LiveServer]) -> LiveServer:  # noqa: F811
    return live_factory(require_v2=True)


@pytest.fixture
def browser(chromium: Any, live: LiveServer) -> Iterator[Browser]:
    watcher = Browser(chromium, live.base_url)
    try:
        yield watcher
    finally:
        watcher.close()
    assert not watcher.errors, watcher.errors


def phone_without_hybrid(browser: Browser, locale: str = "zh-CN") -> Any:
    page = browser.page(locale=locale)
    page.set_viewport_size(PHONE)
    page.add_init_script(NO_HYBRID)
    return page


def shown(page: Any, text: str) -> None:
    page.wait_for_function(
        "t => document.getElementById('form-error').textContent === t", arg=text)
    assert page.locator("#form-error").is_visible()


def test_the_report_page_sends_the_worker_elsewhere_and_files_nothing(
        live: LiveServer, browser: Browser) -> None:
    page = phone_without_hybrid(browser)
    page.goto("/")
    expected = tr("zh_CN", jsmessages.MESSAGES["pq_required"])
    assert "手机自带的浏览器" in expected and "抗量子" in expected
    shown(page, expected)
    fill_report(page)
    # Sending without the box: the browser refuses the form (the box is required), nothing
    # is sealed here and nothing reaches the API.
    page.click("#submit-report")
    page.wait_for_timeout(500)
    assert not browser.api_calls("POST", "/api/v1/submissions")
    assert not browser.api_calls("POST", "/report")
    assert counts(live)["Case"] == 0
    # The way out on the same page: the server seals, v2 to every key.
    page.check("#f-server-seal")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-code")
    case = stored_case(live)
    assert case.sealed_on_server and not case.classical_only
    with live.session() as session:
        suites = set(session.scalars(select(KeySlot.suite).where(KeySlot.case_id == case.id)))
    assert suites == {crypto.SUITE_V2}
    assert not browser.api_calls("POST", "/api/v1/submissions")


def test_the_english_page_says_it_too(live: LiveServer, browser: Browser) -> None:
    page = phone_without_hybrid(browser, "en-US")
    page.goto("/")
    expected = jsmessages.MESSAGES["pq_required"]
    assert "phone's own browser" in expected
    shown(page, expected)


def test_the_follow_up_page_says_it_before_the_receipt_is_typed(
        live: LiveServer, browser: Browser) -> None:
    page = phone_without_hybrid(browser)
    page.goto("/followup")
    shown(page, tr("zh_CN", jsmessages.MESSAGES["pq_required_followup"]))
    assert page.locator("#f-server-seal").is_visible()
    # No stamp fetched, no key derived, no session opened: the page did nothing by itself.
    assert not browser.api_calls("POST", "/api/v1/followup/session")


def test_a_browser_with_the_hybrid_seals_v2_as_always(live: LiveServer,
                                                      browser: Browser) -> None:
    page = browser.page()
    page.set_viewport_size(PHONE)
    page.goto("/")
    page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
    fill_report(page)
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    case = stored_case(live)
    assert not case.sealed_on_server and not case.classical_only
    # The world's reviewers have X25519 keys only: left out, the recovery key and the
    # reporter remain.
    with live.session() as session:
        holders = {(s.holder, s.suite) for s in session.scalars(
            select(KeySlot).where(KeySlot.case_id == case.id))}
    assert holders == {("recovery", crypto.SUITE_V2), ("reporter", crypto.SUITE_V2)}
