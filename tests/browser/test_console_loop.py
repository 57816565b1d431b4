# ruff: noqa: F811  (pytest fixtures are parameters named like the imported fixtures)
"""The rectification loop in real Chromium, in zh-CN and in English: a hazard removed on the
spot is recorded with a photo sealed in the browser and checked by a second reviewer; a
refusal needs its box ticked and words for the reporter, the reporter reads them, an approver
reopens it and the reporter is told; a refused action never leaves the browser on an action
URL; the case page and the record are photographed at 1366 and 768 px wide.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import crypto
from service.client import Client, urllib_transport
from service.domain import recipients
from service.domain.models import AuditEntry, Case, Channel
from service.domain.models.rectification import Rectification
from service.platform.i18n import Catalogs
from tests.browser.live import LiveServer
from tests.browser.test_console_rectification import (  # noqa: F401  (fixtures)
    REPORT,
    Browser,
    _salt,
    _verified_case,
    browser,
    live,
)
from tests.factories import make_reviewer

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("CHUISHAO_SCREENSHOTS", "")) if os.environ.get(
    "CHUISHAO_SCREENSHOTS") else None


def tr(language: str, message: str, **params: object) -> str:
    return Catalogs.load().gettext(language)(message, **params)


def english(page: Any, path: str) -> None:
    page.goto(f"/language?lang=en&next={path}")
    page.wait_for_url(f"**{path}")


def shoot(page: Any, name: str) -> None:
    """Both widths the console must work at; kept when CHUISHAO_SCREENSHOTS names a folder."""
    for width in (1366, 768):
        page.set_viewport_size({"width": width, "height": 900})
        data = page.screenshot(full_page=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        # Nothing sticks out sideways at either width.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (name, width, overflow)
        if SHOTS is not None:
            SHOTS.mkdir(parents=True, exist_ok=True)
            (SHOTS / f"{name}-{width}.png").write_bytes(data)
    page.set_viewport_size({"width": 1366, "height": 900})


def feed(browser: Browser, receipt: str) -> list[str]:
    reporter = browser.page()
    reporter.goto("/followup")
    reporter.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    reporter.fill("#f-receipt", receipt)
    reporter.click("#followup-form button[type=submit]")
    reporter.wait_for_selector("#case-panel:not([hidden]) #events li")
    texts: list[str] = reporter.locator("#events li").all_inner_texts()
    return texts


def test_a_hazard_removed_on_the_spot_in_the_browser(browser: Browser, live: LiveServer,
                                                     tmp_path: Path) -> None:
    receipt, case_id = _verified_case(live)
    page = browser.console("reviewer0", live.reviewer_keys[0])
    page.goto(f"/console/cases/{case_id}")
    # No button makes the case "rectified": the page points to the records.
    assert page.locator("#form-accept_rectification").count() == 0
    assert page.locator("#rectify-through-records").is_visible()
    shoot(page, "case-verified")
    page.click("#rectification-records")
    page.fill("#f-description", "三号车间冲压机光电保护装置被拆除")
    page.click("#form-open button[type=submit]")
    page.wait_for_url("**/console/rectifications/*?done=open")
    number = int(page.url.split("/rectifications/")[1].split("?")[0])
    page.locator("#spot-evidence-picker").wait_for()
    page.fill("#spot-person", "赵师傅（设备科）")
    page.fill("#spot-measures", "当场装回光电保护装置并试机三次")
    photo = tmp_path / "现场.jpg"
    photo.write_bytes(bytes(range(256)) * 300)
    page.set_input_files("#spot-evidence-files", str(photo))
    page.click("#form-fixed_on_spot button[type=submit]")
    page.wait_for_url("**?done=fixed_on_spot")
    assert page.get_attribute("#record-state", "data-state") == "awaiting_acceptance"
    assert page.inner_text("#record-on-spot") == tr("zh_CN", "removed on the spot")
    assert page.locator("#accept-hint").is_visible()  # the recorder may not check it
    # The photo went sealed and comes back decrypted in this browser.
    page.locator("li[data-file-id] button.evidence-open").wait_for()
    assert "现场.jpg" in page.inner_text("#entries")
    shoot(page, "record-on-spot")
    # A colleague, in English, checks it.
    second = browser.console("reviewer1", live.reviewer_keys[1])
    english(second, f"/console/rectifications/{number}")
    assert second.inner_text("#record-on-spot") == "removed on the spot"
    assert "Removed on the spot on" in second.inner_text("#record-facts")
    second.select_option("#accept-result", "pass")
    second.click("#form-accept button[type=submit]")
    second.wait_for_url("**?done=accept")
    shoot(second, "record-accepted-en")
    with live.session() as session:
        record = session.get(Rectification, number)
        assert record.on_the_spot and record.state == "accepted"
        assert session.get(Case, case_id).status == "rectified"
    # The reporter reads it in plain words.
    events = feed(browser, receipt)
    assert any(tr("zh_CN", "The hazard was removed on the spot; a second person checks the "
                  "work.") in e for e in events), events
    assert not any("赵师傅" in e for e in events)


def _new_case(live: LiveServer) -> tuple[str, str]:
    receipt = Client(urllib_transport(live.base_url), language="zh-CN").submit(
        live.channel_slug, REPORT)
    with live.session() as session:
        keys = crypto.derive_receipt(receipt, _salt(session), live.settings.receipt_iterations)
        case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
        channel = session.get(Channel, case.channel_id)
        # An approver with the channel in scope (not a recipient), given by an administrator.
        admin = make_reviewer(session, "admin", roles="admin").user
        chief = make_reviewer(session, "chief", roles="approver").user
        recipients.add_scope(session, admin, chief, channel)
        return receipt, case.id


def test_refusal_confirmed_explained_reopened_and_no_repost(browser: Browser,
                                                           live: LiveServer) -> None:
    receipt, case_id = _new_case(live)
    page = browser.console("reviewer0", live.reviewer_keys[0])
    page.goto(f"/console/cases/{case_id}")
    # Refusing is folded away and looks unlike accepting.
    assert not page.locator("#form-not_accept").is_visible()
    assert page.locator("#form-accept button").evaluate(
        "b => getComputedStyle(b).backgroundColor") != page.locator(
        "#button-not_accept").evaluate("b => getComputedStyle(b).backgroundColor")
    page.click("#refusal summary")
    page.select_option("#reason", "out_of_scope")
    note = "该单位不在本热线受理范围内，请向属地应急管理局举报。"
    page.fill("#na-note", note)
    # Without the box ticked the browser does not send it.
    page.click("#button-not_accept")
    assert "/actions/" not in page.url
    assert page.evaluate("document.getElementById('na-confirm').validity.valueMissing")
    with live.session() as session:
        assert session.get(Case, case_id).status == "new"
    shoot(page, "case-refusal-form")
    page.check("#na-confirm")
    page.click("#button-not_accept")
    page.wait_for_url("**?done=not_accept#triage")
    assert page.inner_text("#case-status") == tr("zh_CN", "Not accepted")
    # A refused action (a stale form from another tab) lands on the case page; a reload
    # asks nothing again.
    stale = page.evaluate("""async (caseId) => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const form = document.createElement('form');
      form.method = 'post'; form.action = `/console/cases/${caseId}/actions/accept`;
      for (const [k, v] of [['csrf_token', csrf], ['version', '1']]) {
        const input = document.createElement('input');
        input.type = 'hidden'; input.name = k; input.value = v; form.append(input);
      }
      document.body.append(form); form.submit(); return true; }""", case_id)
    assert stale
    page.wait_for_url(re.compile(r".*/console/cases/[0-9a-f]+\?failed=.*"))
    assert "/actions/" not in page.url and page.locator("#action-error").is_visible()
    with live.session() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    page.reload()
    assert "/actions/" not in page.url
    with live.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == before
    # The reporter reads the reason and the reviewers' words.
    events = feed(browser, receipt)
    assert any(note in e for e in events), events
    # The approver reopens it, in English; the reporter is told.
    chief = browser.console("chief", None)
    english(chief, f"/console/cases/{case_id}")
    assert "An approver can reopen this refusal until" in chief.inner_text("#reopen-window")
    why = "The unit has a branch in this district; it is within our remit."
    chief.fill("#reopen-reason", why)
    chief.click("#form-reopen_refusal button[type=submit]")
    chief.wait_for_url("**?done=reopen_refusal#triage")
    assert chief.inner_text("#action-done") == tr(
        "en", "The refusal was reopened; the case waits for acceptance again.")
    assert chief.inner_text("#case-status") == "New (waiting for acceptance)"
    shoot(chief, "case-reopened-en")
    events = feed(browser, receipt)
    assert any(why in e for e in events), events
    with live.session() as session:
        assert session.get(Case, case_id).status == "new"
