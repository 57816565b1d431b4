"""In real Chromium on a 390 x 844 phone: the receipt's check digit. A mistyped digit or two
swapped digits are said at once on the follow-up page (with JavaScript before any request,
without it by the server), and what the reporter typed stays in the box. Screenshots go to
CHUISHAO_SCREENSHOTS (default: the test's tmp dir)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import crypto
from service.domain.followup import RECEIPT_MISTYPED
from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.browser.test_reporter_flow import (
    RECEIPT_RE,
    Browser,
    fill_report,
    open_form,
    submit_from_python,
    tr,
)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# The text of each line the element's text is laid out on.
LINES = """e => {
  const text = e.firstChild, lines = [];
  let top = null;
  for (let i = 0; i < text.length; i++) {
    const r = document.createRange();
    r.setStart(text, i); r.setEnd(text, i + 1);
    const rect = r.getClientRects()[0];
    if (!rect) continue;
    if (top === null || rect.top > top + 2) { lines.push(""); top = rect.top; }
    lines[lines.length - 1] += text.data[i];
  }
  return lines.map((l) => l.trim());
}"""


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


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("CHUISHAO_SCREENSHOTS") or tmp_path / "shots")
    where.mkdir(parents=True, exist_ok=True)
    return where


def mistyped(receipt: str) -> tuple[str, str]:
    """One wrong digit in the fifth group, and the receipt with two neighbours swapped."""
    i = 13
    wrong = receipt[:i] + str((int(receipt[i]) + 1) % 10) + receipt[i + 1 :]
    j = next(k for k in range(20) if receipt[k] != receipt[k + 1])
    swapped = receipt[:j] + receipt[j + 1] + receipt[j] + receipt[j + 2 :]
    return " ".join(wrong[k : k + 3] for k in range(0, 21, 3)), swapped


def fits(page: Any) -> bool:
    return int(page.evaluate("document.documentElement.scrollWidth")) <= PHONE["width"]


def test_the_receipt_screen_shows_21_digits_in_groups_of_three(live: LiveServer,
                                                                browser: Browser,
                                                                shots: Path) -> None:
    page = browser.page()
    page.set_viewport_size(PHONE)
    open_form(page)
    fill_report(page)
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    shown = page.text_content("#receipt-code").strip()
    assert RECEIPT_RE.fullmatch(shown)
    digits = shown.replace(" ", "")
    assert crypto.damm_check_digit(digits) == "0"
    # On a phone the groups wrap only between groups, on two lines at most (four and three
    # with this font, also at 320 px), and nothing sticks out sideways.
    groups = shown.split()
    for width in (390, 320):
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        lines = page.eval_on_selector("#receipt-code", LINES)
        assert len(lines) <= 2 and [g for line in lines for g in line.split()] == groups, lines
        assert int(page.evaluate("document.documentElement.scrollWidth")) <= width
        page.eval_on_selector("#receipt-code", "e => e.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(shots / f"receipt-{width}-zh.png"))


def test_a_mistyped_receipt_is_said_at_once_and_stays_typed(live: LiveServer, browser: Browser,
                                                            shots: Path) -> None:
    receipt, _ = submit_from_python(live)
    assert len(receipt) == 21
    wrong, swapped = mistyped(receipt)
    page = browser.page()
    page.set_viewport_size(PHONE)
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    expected = tr("zh_CN", RECEIPT_MISTYPED)
    for typed in (wrong, swapped):
        page.fill("#f-receipt", "")
        before = len(browser.requests)
        page.fill("#f-receipt", typed)
        page.click("#followup-form button[type=submit]")
        page.wait_for_function(
            "t => document.getElementById('form-error').textContent === t", arg=expected)
        # Told before anything is derived or sent: no request but static files (the
        # proof-of-work worker may still be fetching its script).
        sent = [(m, u) for m, u in browser.requests[before:] if "/static/" not in u]
        assert sent == [], "a mistyped receipt must not reach the server"
        assert page.input_value("#f-receipt") == typed
        assert page.is_visible("#followup-form") and page.is_hidden("#case-panel")
    assert fits(page)
    page.fill("#f-receipt", wrong)
    page.click("#followup-form button[type=submit]")
    page.wait_for_function(
        "t => document.getElementById('form-error').textContent === t", arg=expected)
    page.screenshot(path=str(shots / "followup-mistyped-390-zh.png"))
    # Mended, it opens; so do its 20 digits alone, as a receipt from before the check digit.
    for typed in (crypto.format_receipt(receipt), receipt[:20]):
        page.goto("/followup")
        page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
        page.fill("#f-receipt", typed)
        page.click("#followup-form button[type=submit]")
        page.wait_for_selector("#case-panel:not([hidden]) #case-status", timeout=60_000)
    assert not browser.errors


def test_without_javascript_the_server_says_it_and_keeps_what_was_typed(
        live: LiveServer, browser: Browser, shots: Path) -> None:
    receipt, _ = submit_from_python(live)
    wrong, swapped = mistyped(receipt)
    page = browser.page(javascript=False)
    page.set_viewport_size(PHONE)
    expected = tr("zh_CN", RECEIPT_MISTYPED)
    for typed in (wrong, swapped):
        page.goto("/followup")
        page.fill("#f-receipt", typed)
        page.click("#followup-form button[type=submit]")
        page.wait_for_selector("#refusal")
        assert page.text_content("#refusal").strip() == expected
        assert page.input_value("#f-receipt") == typed
    assert fits(page)
    page.screenshot(path=str(shots / "followup-mistyped-nojs-390-zh.png"))
    # Mended in the same box, it opens; the 20 digits alone do too.
    for typed in (crypto.format_receipt(receipt), receipt[:20]):
        page.goto("/followup")
        page.fill("#f-receipt", typed)
        page.click("#followup-form button[type=submit]")
        page.wait_for_selector("#messages")
