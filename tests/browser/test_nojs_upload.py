"""A phone without JavaScript sends a video as large as the page promises (issue 13).

The page says "200 MB each"; the no-JavaScript form once held the whole post in memory and
refused anything over 50 MB ("您提交的内容过大"). Now its files stream to the sealer: a 60 MB
video reaches one case, byte for byte, and a file over the limit is refused in words that
name the limit, with the form filled in again and no case filed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.domain.models import StoredFile
from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.browser.test_receipt_kept import PHONE
from tests.browser.test_reporter_flow import (
    DESCRIPTION,
    RECEIPT_RE,
    counts,
    fill_report,
    open_stored_file,
    stored_case,
    tr,
)
from tests.factories import open_as

pytestmark = pytest.mark.browser

MB = 1024 * 1024


def _video(path: Path, size: int) -> Path:
    # An MP4 by its first bytes (what filetypes.detect reads), then bytes that do not compress.
    with path.open("wb") as out:
        out.write(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom")
        left = size - 24
        while left > 0:
            out.write(os.urandom(min(left, MB)))
            left -= MB
    return path


def _phone(chromium: Any, live: LiveServer) -> Any:
    context = chromium.new_context(base_url=live.base_url, java_script_enabled=False,
                                   locale="zh-CN", **PHONE)
    page = context.new_page()
    page.set_default_timeout(120_000)
    return context, page


def test_a_60_mb_video_without_javascript_reaches_one_case(
        live_factory: Callable[..., LiveServer], chromium: Any, tmp_path: Path) -> None:  # noqa: F811
    live = live_factory()  # the shipped limits: 200 MB per file
    video = _video(tmp_path / "VID_20261130_221503.mp4", 60 * 1000 * 1000)
    context, page = _phone(chromium, live)
    try:
        page.goto("/")
        # What the worker is promised, on the page itself.
        label = page.text_content("label[for=f-files]")
        assert tr("zh_CN", "Photos or documents, at most {count} files of {mb} MB each",
                  count=live.settings.max_files, mb=200) in label
        fill_report(page, [video])
        page.check("input[name=unclean][value=send]")
        page.click("#submit-report")
        page.wait_for_selector("#receipt-code")
        assert page.url.endswith("/report/sent")
        assert RECEIPT_RE.fullmatch(page.text_content("#receipt-code").strip())
        # The receipt says the video went uncleaned, under the name it was chosen by.
        assert video.name in page.inner_text("main")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
    found = counts(live)
    assert (found["Case"], found["StoredFile"]) == (1, 1)
    case = stored_case(live)
    assert case.ready and case.sealed_on_server
    with live.session() as session:
        _, items = open_as(live.reviewer_keys[0], session, case.id)
        assert items["report"][0]["description"] == DESCRIPTION
        [meta] = items["file-meta"]
        [stored] = session.scalars(select(StoredFile)).all()
        assert meta["size"] == video.stat().st_size and meta["name"] == "视频-1.mp4"
        assert open_stored_file(live, session, case.id, meta, stored) == video.read_bytes()


def test_a_file_over_the_limit_is_refused_naming_it_and_nothing_is_filed(
        live_factory: Callable[..., LiveServer], chromium: Any, tmp_path: Path) -> None:  # noqa: F811
    live = live_factory(max_file_bytes=20 * MB)
    video = _video(tmp_path / "VID_20261130_221503.mp4", 20 * MB + 1)
    context, page = _phone(chromium, live)
    try:
        page.goto("/")
        fill_report(page, [video])
        page.check("input[name=unclean][value=send]")
        page.click("#submit-report")
        page.wait_for_selector("#refusal")
        assert page.text_content("#refusal") == tr(
            "zh_CN", "A file is larger than the limit of {mb} MB.", mb=20)
        # What was typed comes back; the file must be chosen again (a smaller one).
        assert page.input_value("#f-description") == DESCRIPTION
        assert page.is_checked("input[name=unclean][value=send]")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
    assert counts(live) == {"Case": 0, "SealedItem": 0, "StoredFile": 0, "FileChunk": 0}
