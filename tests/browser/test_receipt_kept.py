"""On a phone-sized Chromium, with and without JavaScript: the receipt is never lost and a
report is never filed twice (issue 13). Reload, Back and Forward after the receipt, a double
tap on Send, and what was removed from each photo, shown on the receipt screen."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.browser.test_reporter_flow import (
    RECEIPT_RE,
    counts,
    fill_report,
    gps_jpeg,
    submit_from_python,
    tr,
)

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True,
         "device_scale_factor": 2}
# What the receipt says was removed from a photo with GPS and a camera model, in plain words.
PLAIN = "拍摄地点（GPS）、相机型号、拍摄时间"


@pytest.fixture
def live(live_factory: Callable[..., LiveServer]) -> LiveServer:  # noqa: F811
    return live_factory()


@pytest.fixture
def phone(chromium: Any, live: LiveServer) -> Iterator[Callable[[bool], Any]]:
    contexts: list[Any] = []

    def open_page(javascript: bool) -> Any:
        context = chromium.new_context(base_url=live.base_url, java_script_enabled=javascript,
                                       locale="zh-CN", **PHONE)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def _cases(live: LiveServer) -> int:
    return counts(live)["Case"]


def _photo(tmp_path: Path, padding: int = 0) -> Path:
    photo = tmp_path / "IMG_20261130_221503.jpg"
    # Bytes after the picture's end are hidden data too, and make the upload as large as asked.
    photo.write_bytes(gps_jpeg() + os.urandom(padding))
    return photo


def test_without_javascript_reload_back_and_forward_file_nothing_twice(
        live: LiveServer, phone: Callable[[bool], Any], tmp_path: Path) -> None:
    page = phone(False)
    page.goto("/")
    assert page.get_attribute("#f-description", "autocomplete") == "off"
    fill_report(page, [_photo(tmp_path)])
    page.click("#submit-report")
    page.wait_for_selector("#receipt-code")
    # Post/redirect/get: the receipt page is a GET without the receipt in its address.
    assert page.url.endswith("/report/sent")
    receipt = page.text_content("#receipt-code").strip()
    assert RECEIPT_RE.fullmatch(receipt)
    assert PLAIN in page.text_content("#removed-summary")
    assert "IMG_20261130_221503.jpg：已删除" in page.text_content("#removed-summary")
    assert _cases(live) == 1
    # Reload: the same receipt, no second report.
    page.reload()
    assert page.text_content("#receipt-code").strip() == receipt
    assert _cases(live) == 1
    # Back: the form, empty (the description is not given back on a shared phone).
    page.go_back()
    page.wait_for_selector("#report-form")
    assert page.input_value("#f-description") == ""
    assert _cases(live) == 1
    # Forward: the same receipt again, still no second report.
    page.go_forward()
    assert page.text_content("#receipt-code").strip() == receipt
    assert _cases(live) == 1
    # Written down: the receipt leaves the phone; Back then shows it was sent, not a receipt.
    page.click("#receipt-written")
    page.wait_for_selector("#report-form")
    page.go_back()
    page.wait_for_selector("#already-sent")
    assert not page.query_selector("#receipt-code")
    assert tr("zh_CN", "Already sent") in page.inner_text("h1")
    assert _cases(live) == 1


def test_without_javascript_a_double_tap_files_one_report(
        live: LiveServer, phone: Callable[[bool], Any], tmp_path: Path) -> None:
    page = phone(False)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto("/")
    fill_report(page, [_photo(tmp_path, padding=20 * 1024 * 1024)])
    page.locator("#submit-report").scroll_into_view_if_needed()
    box = page.locator("#submit-report").bounding_box()
    # Two taps in quick succession, as on a slow phone; the second one posts the form again.
    # The second waits until the first is on the wire: a tap before that only replaces the
    # planned submission in the browser, and the server would never see two.
    for _ in range(2):
        with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/report")):
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#receipt-code, #already-sent", timeout=60_000)
    page.wait_for_load_state()
    assert len([url for url in posts if url.endswith("/report")]) == 2
    assert _cases(live) == 1
    # Either the receipt or a plain "already sent": never a page that invites sending again.
    shown = page.inner_text("main")
    assert (page.query_selector("#receipt-code") is not None
            or tr("zh_CN", "Already sent") in shown)


def test_with_javascript_leaving_the_receipt_asks_first(
        live: LiveServer, phone: Callable[[bool], Any], tmp_path: Path) -> None:
    page = phone(True)
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", answer)
    page.goto("/")
    page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
    fill_report(page, [_photo(tmp_path)])
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code", timeout=120_000)
    receipt = page.text_content("#receipt-code").strip()
    assert PLAIN in page.text_content("#removed-summary")
    assert _cases(live) == 1
    # Reload (and Back, the same event) asks first; staying keeps the receipt on screen.
    with contextlib.suppress(PlaywrightTimeout):  # the reporter stayed: no reload
        page.reload(timeout=3_000)
    assert dialogs == ["beforeunload"]
    assert page.text_content("#receipt-code").strip() == receipt
    # The form that held the plaintext is empty.
    assert page.input_value("#f-description") == ""
    # Written down: leaving no longer asks, and the new form files nothing by itself.
    page.click("#receipt-written")
    page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
    assert dialogs == ["beforeunload"]
    assert page.input_value("#f-description") == ""
    assert _cases(live) == 1


@pytest.mark.parametrize("javascript", [True, False])
def test_both_paths_refuse_in_the_same_words_and_never_cut_text(
        live: LiveServer, phone: Callable[[bool], Any], javascript: bool) -> None:
    page = phone(javascript)
    page.goto("/")
    if javascript:
        page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
    refusal = "#form-error" if javascript else "#refusal"
    fill_report(page)
    page.fill("#f-unit", "   ")
    page.click("#submit-report")
    if not javascript:
        # The browser itself holds back an empty required box; spaces pass it.
        page.wait_for_selector(refusal)
    page.wait_for_selector(f"{refusal}:not([hidden])")
    assert page.text_content(refusal) == tr("zh_CN", "Name the unit (enterprise) you are reporting.")
    long_text = "液氨储罐阀门泄漏。" * 2300  # 20 700 characters, over the limit of 20 000
    page.fill("#f-unit", "某机械厂")
    page.fill("#f-description", long_text)
    assert page.input_value("#f-description") == long_text  # not cut while typing
    page.click("#submit-report")
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel) && document.querySelector(sel).textContent === text",
        arg=[refusal, tr("zh_CN", "A field is too long (at most {limit} characters).",
                         limit=20000)])
    assert page.input_value("#f-description") == long_text
    assert _cases(live) == 0


@pytest.mark.parametrize("width", [320, 390])
def test_followup_reply_form_fits_a_phone(live: LiveServer, chromium: Any, width: int) -> None:
    receipt, _ = submit_from_python(live)
    context = chromium.new_context(base_url=live.base_url, java_script_enabled=False,
                                   locale="zh-CN", viewport={"width": width, "height": 844})
    try:
        page = context.new_page()
        page.goto("/followup")
        page.fill("#f-receipt", receipt)
        page.click("#followup-form button[type=submit]")
        page.wait_for_selector("section.reply")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        label, box, files = (page.locator(sel).bounding_box()
                             for sel in ("label[for=f-reply]", "#f-reply", "#f-reply-files"))
        # Label above its box, the evidence picker below it, nothing side by side.
        assert label["y"] + label["height"] <= box["y"] + 1
        assert box["y"] + box["height"] <= files["y"]
        assert box["x"] + box["width"] <= width and files["x"] + files["width"] <= width
    finally:
        context.close()
