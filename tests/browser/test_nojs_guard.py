"""In real Chromium: a page whose encryption module did not load must not hand the plaintext to
the server (issue 10, section 3); without JavaScript the server path still works, and never
says the report was encrypted on the device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.domain.reportform import ScriptDidNotRun
from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.browser.test_reporter_flow import (
    DESCRIPTION,
    RECEIPT_RE,
    Browser,
    counts,
    fill_report,
    gps_jpeg,
    open_form,
    stored_case,
    submit_from_python,
    tr,
)

pytestmark = pytest.mark.browser

NOTHING = {"Case": 0, "SealedItem": 0, "StoredFile": 0, "FileChunk": 0}
MISSING = ("This page's encryption script has not loaded, although your browser runs "
           "JavaScript. Do not send yet: what you send would reach the server unencrypted, so "
           "it would be refused. Reload the page. If this notice stays, use an up-to-date "
           "browser, or switch JavaScript off for this site: the server then encrypts what you "
           "send as soon as it arrives.")
DEVICE_CLAIM = ("What you send is encrypted on your device before it leaves it; the server "
                "cannot read it.")


@pytest.fixture
def live(live_factory: Callable[..., LiveServer]) -> LiveServer:  # noqa: F811
    return live_factory()


@pytest.fixture
def browser(chromium: Any, live: LiveServer) -> Iterator[Browser]:
    watcher = Browser(chromium, live.base_url)
    try:
        yield watcher
    finally:
        watcher.close()


def block(page: Any, module: str) -> list[str]:
    blocked: list[str] = []

    def abort(route: Any) -> None:
        blocked.append(route.request.url)
        route.abort()

    page.route(f"**/js/{module}", abort)
    return blocked


@pytest.mark.parametrize("module", ["intake.js", "crypto/core.js"])
def test_blocked_module_means_nothing_is_sent_in_plaintext(live: LiveServer, browser: Browser,
                                                           tmp_path: Path, module: str) -> None:
    photo = tmp_path / "IMG_20261130_221503.jpg"
    photo.write_bytes(gps_jpeg())
    page = browser.page()
    blocked = block(page, module)
    page.goto("/")
    # The page itself says what happened and what to do, before anything is sent.
    page.wait_for_selector("#script-missing", state="visible", timeout=10_000)
    assert page.text_content("#script-missing") == tr("zh_CN", MISSING)
    assert blocked
    fill_report(page, [photo])
    page.fill("#f-name", "张三")
    page.click("#submit-report")
    page.wait_for_selector("#refusal")
    # The browser fell back to the plain form post, and the server refused it.
    assert browser.api_calls("POST", "/report")
    assert page.text_content("#refusal") == tr("zh_CN", ScriptDidNotRun.message)
    assert counts(live) == NOTHING
    # What the reporter typed is back in the form (it was not stored).
    assert page.input_value("#f-description") == DESCRIPTION
    assert page.input_value("#f-name") == "张三"
    # The receipt of a no-JavaScript report is never shown.
    assert not page.query_selector("#receipt-code:not(:empty)")
    # Once the module loads, the same form is sealed in the browser.
    page.unroute(f"**/js/{module}")
    page.reload()
    page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
    assert page.is_hidden("#script-missing") or not page.query_selector("#script-missing")
    fill_report(page)
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    assert not stored_case(live).sealed_on_server


def test_blocked_followup_module_keeps_the_receipt_away(live: LiveServer,
                                                        browser: Browser) -> None:
    receipt, _ = submit_from_python(live)
    page = browser.page(locale="en-US")
    block(page, "followup.js")
    page.goto("/followup")
    page.wait_for_selector("#script-missing", state="visible", timeout=10_000)
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#refusal")
    assert page.text_content("#refusal") == tr("en", ScriptDidNotRun.message)
    assert not page.query_selector("#case-status")  # the case was not opened on the server


def test_without_javascript_the_server_path_works_and_says_what_it_is(
        live: LiveServer, browser: Browser, tmp_path: Path) -> None:
    photo = tmp_path / "IMG_20261130_221503.jpg"
    photo.write_bytes(gps_jpeg())
    page = browser.page(javascript=False, locale="en-US")
    open_form(page, javascript=False)
    assert page.is_hidden("#script-missing")
    shown = page.inner_text("body")
    assert "encrypted on your device" not in shown
    assert "before it leaves your device" not in shown
    assert "JavaScript is off" in shown
    fill_report(page, [photo])
    page.click("#submit-report")
    page.wait_for_selector("#receipt-code")
    assert RECEIPT_RE.fullmatch(page.text_content("#receipt-code").strip())
    shown = page.inner_text("body")
    assert "because JavaScript was off" in shown and "encrypted on your device" not in shown
    assert stored_case(live).sealed_on_server
    # The follow-up, reply included, works too without scripts.
    receipt = page.text_content("#receipt-code").strip()
    page.goto("/followup")
    assert "encrypted on your device" not in page.inner_text("body")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#messages")
    assert "encrypted on your device" not in page.inner_text("body")
    page.fill("#f-reply", "The valve is still open.")
    page.click("section.reply button[type=submit]")
    page.wait_for_selector(".notice[role=status]")
    assert "The valve is still open." in page.inner_text("#messages")


def test_with_javascript_the_page_says_it_encrypts_on_the_device(live: LiveServer,
                                                                 browser: Browser) -> None:
    page = browser.page(locale="en-US")
    open_form(page)
    assert not page.query_selector("#script-missing")
    assert DEVICE_CLAIM in page.inner_text("p.lead")
    assert DEVICE_CLAIM in page.inner_text("footer")
    # Nothing a script-free browser would send is left in the form.
    assert not page.query_selector("#report-form [name=sealing]")
    page.wait_for_timeout(500)
    assert not browser.errors


NO_X25519 = """
  const original = crypto.subtle.generateKey.bind(crypto.subtle);
  crypto.subtle.generateKey = (algorithm, ...rest) =>
    (algorithm && algorithm.name === "X25519")
      ? Promise.reject(new DOMException("no", "NotSupportedError"))
      : original(algorithm, ...rest);
"""


def test_without_x25519_the_followup_goes_to_the_server_only_when_chosen(
        live: LiveServer, browser: Browser) -> None:
    receipt, case_id = submit_from_python(live)
    page = browser.page()
    page.add_init_script(NO_X25519)
    page.goto("/followup")
    page.wait_for_selector("#f-server-seal")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    assert not browser.api_calls("POST", "/followup")  # the required box stops the form
    page.check("#f-server-seal")
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#case-status")
    # The case page (scripts on, none of its own) keeps the choice for its reply form.
    assert page.locator("section.reply input[name=sealing]").get_attribute("value") == "chosen"
    page.fill("#f-reply", "阀门编号 V-12。")
    page.click("section.reply button[type=submit]")
    page.wait_for_selector(".notice[role=status]")
    assert "阀门编号 V-12。" in page.inner_text("#messages")


def test_a_script_that_stops_half_way_leaves_the_notice_and_sends_nothing(
        live: LiveServer, browser: Browser) -> None:
    page = browser.page(locale="en-US")

    served: list[str] = []

    def broken(route: Any) -> None:
        if served:  # the answer page loads it again: keep that one simple
            route.abort()
            return
        served.append(route.request.url)
        response = route.fetch()
        body = response.text().replace('form.addEventListener("submit", onSubmit);',
                                       'throw new Error("stopped half-way");', 1)
        assert "stopped half-way" in body
        route.fulfill(response=response, body=body)

    page.route("**/js/intake.js", broken)
    page.goto("/")
    page.wait_for_selector("#script-missing", state="visible", timeout=10_000)
    fill_report(page)
    page.click("#submit-report")
    page.wait_for_selector("#refusal")
    assert page.text_content("#refusal") == tr("en", ScriptDidNotRun.message)
    assert counts(live) == NOTHING
    browser.errors.clear()  # the page error is the point of this test
