"""A full disk as a reporter with JavaScript meets it: told the truth, the sealed report kept
in the page, sent again unchanged once the service can store it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.platform.errors import StorageUnavailable
from service.web.jsmessages import MESSAGES
from tests.browser.live import running_server
from tests.browser.test_reporter_flow import (
    Browser,
    check_receipt_matches,
    counts,
    fill_report,
    open_form,
    stored_case,
    tr,
)
from tests.faults import Filler, small_filesystem


def test_sealed_report_is_kept_in_the_page_and_sent_again(chromium: Any, tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", size_mb=8) as mount, \
            running_server(mount / "live") as live:
        browser = Browser(chromium, live.base_url)
        filler = Filler(mount)
        try:
            page = browser.page()
            envelopes: list[dict[str, Any]] = []
            page.on("request", lambda r: envelopes.append(json.loads(r.post_data))
                    if r.method == "POST" and r.url.endswith("/api/v1/submissions") else None)
            open_form(page)
            fill_report(page)
            filler.fill()
            page.click("#submit-report")
            page.wait_for_selector("#resend-report:not([hidden])")
            assert page.text_content("#form-error") == tr("zh_CN", StorageUnavailable.message)
            assert page.text_content("#progress-text") == tr("zh_CN", MESSAGES["held"])
            # One way on: the form's own button (which would seal a second report) and the
            # empty progress bar are out of the way while the report is held.
            assert not page.is_visible("#submit-report")
            assert not page.is_visible("#progress-bar")
            assert counts(live)["Case"] == 0
            sent = browser.api_calls("POST", "/api/v1/submissions")
            assert len(sent) == 1

            filler.free()
            page.click("#resend-report")
            page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
            receipt = page.text_content("#receipt-code").strip()
            check_receipt_matches(live, receipt, stored_case(live))
            # Sealed once, sent twice: the same case, the same sealed items, a fresh stamp.
            first, second = envelopes
            assert first["case_id"] == second["case_id"] == stored_case(live).id
            assert first["items"] == second["items"] and first["pow"] != second["pow"]
            assert not page.is_visible("#resend-report")
            assert not page.is_visible("#submit-report")  # the receipt screen replaced the form
        finally:
            filler.free()
            browser.close()
