"""The reporter's pages pay an upload's price: a stamp priced on the declared size.

A server with a tiny free allowance (4 KiB), so a small file already costs extra bits; the
server refuses an underpriced stamp, so a stored case shows the browser asked for the
priced challenge and solved it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from service.domain import pow
from service.domain.models import StoredFile
from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.browser.test_reporter_flow import (
    Browser,
    add_reviewer_message,
    fill_report,
    open_form,
    stored_case,
)

pytestmark = pytest.mark.browser
FREE = 4096


@pytest.fixture
def priced(live_factory: Callable[..., LiveServer]) -> LiveServer:  # noqa: F811
    return live_factory(max_inline_bytes=0, pow_free_bytes=FREE)


@pytest.fixture
def watcher(chromium: Any, priced: LiveServer) -> Iterator[Browser]:
    browser = Browser(chromium, priced.base_url)
    try:
        yield browser
    finally:
        browser.close()


def _asked_bytes(browser: Browser) -> list[int]:
    return [int(parse_qs(urlparse(url).query).get("bytes", ["0"])[0])
            for url in browser.api_calls("GET", "/api/v1/pow")]


def _send_uncleaned(page: Any, report: str) -> None:
    # A .bin file cannot be cleaned of hidden data: the page asks per file whether to send
    # it as it is, and sends nothing until the reporter chose.
    choice = page.locator(f"{report} input[name=unclean-0][value=send]")
    choice.wait_for()
    choice.check()


def test_intake_and_follow_up_pay_for_the_declared_size(priced: LiveServer, watcher: Browser,
                                                        tmp_path: Path) -> None:
    evidence = tmp_path / "记录.bin"
    evidence.write_bytes(os.urandom(200_000))
    page = watcher.page()
    open_form(page)
    fill_report(page, [evidence])
    _send_uncleaned(page, "#file-report")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    receipt = page.text_content("#receipt-code").strip()
    case = stored_case(priced)
    with priced.session() as session:
        [stored] = session.scalars(select(StoredFile).where(StoredFile.case_id == case.id))
        declared = stored.stored_size
    # The page prepares an unpriced stamp while the form is filled; a file above the free
    # allowance then asks for a stamp priced for its declared size, and that one is spent.
    asked = _asked_bytes(watcher)
    assert asked[-1] == declared and set(asked) <= {0, declared}, asked
    base = priced.settings.pow_difficulty
    assert pow.upload_difficulty(base, FREE, declared) == base + 6  # ~200 KB / 4 KiB
    assert not watcher.errors

    # Follow-up: a file over the allowance pays too (the server refuses it otherwise).
    case_id = case.id
    add_reviewer_message(priced, case_id, "请补充。")
    page = watcher.page()
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#case-panel:not([hidden]) #messages li")
    more = tmp_path / "补充.bin"
    more.write_bytes(os.urandom(50_000))
    page.fill("#reply-text", "附件")
    page.set_input_files("#reply-files", str(more))
    _send_uncleaned(page, "#reply-file-report")
    page.click("#reply-send")
    page.wait_for_selector("#case-notice")
    # Files are stored under neutral names (kind and order), never the name on the device.
    assert "文件-2.bin" in page.inner_text("#files")
    with priced.session() as session:
        follow = session.scalars(select(StoredFile).where(
            StoredFile.case_id == case_id, StoredFile.id != stored.id)).one()
        assert follow.complete
    assert _asked_bytes(watcher)[-1] == follow.stored_size
    assert not watcher.errors
