"""The console as auditors and administrators read it, in a real Chromium against the real
app: the audit trail in sentences with filters and both spreadsheets, the ledger page, role
names on the admin pages, the layout at 1366 and 768 px, in zh-CN and in English.

The auditor is invited by an administrator in the browser and enrols through the console's
own invitation path. Screenshots go to CHUISHAO_SCREENSHOTS (default: the test's tmp dir).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select

import crypto
from reviewer import auth
from service.app import create_app
from service.client import Client, plain_file, urllib_transport
from service.domain import workflow
from service.domain.models import Case, Channel, User
from service.platform.i18n import Catalogs
from tests.browser.live import LiveServer, running_server
from tests.console import enrol
from tests.factories import make_reviewer

pytestmark = pytest.mark.browser

REPORT = {"v": 1, "unit": "宏达机械制造有限公司", "location": "三号车间", "category": "hazard",
          "description": "冲压机防护罩拆除后无人处理。", "seen_at": "", "insider": "",
          "language": "zh_CN"}


STORE_KEY = """
async ([d, x, keyIdHex]) => {
  const keys = await import('/static/js/console/keys.js');
  const key = await crypto.subtle.importKey(
    'jwk', { kty: 'OKP', crv: 'X25519', d, x, ext: false }, { name: 'X25519' }, false,
    ['deriveBits']);
  await keys.storePrivateKey(key, keyIdHex);
  return (await keys.getPrivateKey()).keyId === keyIdHex;
}
"""


def tr(language: str, message: str, **params: object) -> str:
    return Catalogs.load().gettext(language)(message, **params)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "live") as server:
        yield server


def _signed_in(chromium: Any, live: LiveServer, username: str, locale: str) -> Any:
    context = chromium.new_context(base_url=live.base_url, locale=locale,
                                   accept_downloads=True, viewport={"width": 1366,
                                                                    "height": 900})
    outside: list[str] = []
    context.on("request", lambda r: outside.append(r.url)
               if not r.url.startswith(live.base_url + "/") else None)
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        token = auth.start_session(session, live.settings, user)
    context.add_cookies([{"name": auth.session_cookie(live.settings), "value": token,
                          "url": live.base_url}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.outside = outside  # type: ignore[attr-defined]
    return page


def _history(live: LiveServer, photo: Path) -> str:
    """A report with a photo (its EXIF stripped on the way) through the intake, accepted and
    verified by a reviewer: entries to read."""
    exif = Image.Exif()
    exif[0x010F] = "Zhang San camera"
    Image.new("RGB", (20, 20)).save(photo, "JPEG", exif=exif)
    receipt = Client(urllib_transport(live.base_url), language="zh-CN").submit(
        live.channel_slug, REPORT, files=[plain_file(photo)])
    assert receipt
    with live.session() as session:
        case = session.scalars(select(Case).order_by(Case.created_at.desc())).first()
        reviewer = session.scalar(select(User).where(User.username == "reviewer0"))
        for version, (action, params) in enumerate(
                [("accept", {}), ("start_verification", {}), ("verify", {"result": "true"})],
                1):
            workflow.perform(session, live.settings, case, reviewer, action, version=version,
                             params=params)
        return str(case.id)


def _nav_on_one_line(page: Any) -> bool:
    return bool(page.evaluate("""() => {
      const tops = [...document.querySelectorAll('.console-nav > *')]
        .map((n) => Math.round(n.getBoundingClientRect().top));
      return new Set(tops).size === 1;
    }"""))


def _fits(page: Any) -> bool:
    return bool(page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_auditor_reads_the_trail_and_opens_both_spreadsheets(chromium: Any, live: LiveServer,
                                                             tmp_path: Path) -> None:
    shots = Path(os.environ.get("CHUISHAO_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with live.session() as session:
        make_reviewer(session, "admin.wang", roles="admin").user.display_name = "王管理员"
        channel_id = session.scalar(select(Channel.id).where(Channel.slug == live.channel_slug))
    case_id = _history(live, tmp_path / 'site.jpg')

    # The administrator invites the auditor in the browser: roles by their names.
    admin = _signed_in(chromium, live, "admin.wang", "zh-CN")
    admin.goto("/console/admin/invitations")
    roles = admin.locator("#invite-create fieldset").first.inner_text()
    assert "审计人员" in roles and "受理人员" in roles and "auditor" not in roles
    admin.uncheck('input[name="roles"][value="reviewer"]')
    admin.check('input[name="roles"][value="auditor"]')
    admin.check(f'input[name="scope"][value="{channel_id}"]')
    admin.screenshot(path=str(shots / "invitations-1366-zh.png"), full_page=True)
    admin.click('#invite-create button[type="submit"]')
    link = admin.locator("#invitation-link").inner_text()
    listed = admin.locator("#open-invitations").inner_text()
    assert "审计人员" in listed and "某机械厂内部举报" in listed
    admin.context.close()
    enrol(create_app(live.settings), live.settings, link, "sun.li")

    auditor = _signed_in(chromium, live, "sun.li", "zh-CN")
    auditor.goto("/console/audit")
    table = auditor.locator("#audit").inner_text()
    assert tr("zh_CN", "Accepted a case") in table and "受理了案件" in table
    assert "case.accept" not in table and "\\u" not in table
    assert "王管理员" in table  # display names, not usernames
    assert _nav_on_one_line(auditor), "the auditor's menu wraps at 1366 px"
    head = auditor.locator("#chain-head").inner_text()
    count = auditor.locator("#audit-count").inner_text()
    assert head and count
    auditor.screenshot(path=str(shots / "audit-1366-zh.png"), full_page=True)

    # Filters: by action (from the translated list) and by case.
    auditor.select_option("#f-action", "case.accept")
    auditor.click('#audit-filters button[type="submit"]')
    rows = auditor.locator("#audit tbody tr")
    assert rows.count() == 1 and "受理了案件" in rows.first.inner_text()
    auditor.fill("#f-case", case_id)
    auditor.select_option("#f-action", "")
    auditor.click('#audit-filters button[type="submit"]')
    assert auditor.locator("#audit tbody tr").count() == 3  # accept, verify started, verified

    # Both spreadsheets, as the page links them (the same filter).
    with auditor.expect_download() as got_csv:
        auditor.click("#audit-csv")
    text = Path(got_csv.value.path()).read_bytes().decode("utf-8-sig")
    written = list(csv.reader(io.StringIO(text)))
    assert written[0][4] == "操作" and len(written) == 4
    assert {row[8] for row in written[1:]} == {"case.accept", "case.start_verification",
                                                "case.verify"}
    with auditor.expect_download() as got_xlsx:
        auditor.click("#audit-xlsx")
    sheet = load_workbook(io.BytesIO(Path(got_xlsx.value.path()).read_bytes())).worksheets[0]
    assert sheet.freeze_panes == "A2" and sheet.max_row == 4
    assert [c.value for c in sheet[1]] == written[0]

    # The hazard ledger page of the auditor's channel, and its XLSX.
    auditor.goto(f"/console/ledger?channel={channel_id}")
    assert auditor.locator("h1").count() == 1
    auditor.screenshot(path=str(shots / "ledger-1366-zh.png"), full_page=True)

    # 768 px: nothing wider than the screen; the table scrolls inside its own box.
    auditor.set_viewport_size({"width": 768, "height": 1000})
    auditor.goto("/console/audit")
    assert _fits(auditor), "the audit trail is wider than 768 px"
    auditor.screenshot(path=str(shots / "audit-768-zh.png"), full_page=True)
    auditor.goto(f"/console/ledger?channel={channel_id}")
    assert _fits(auditor), "the ledger is wider than 768 px"
    auditor.screenshot(path=str(shots / "ledger-768-zh.png"), full_page=True)

    # English: the same trail in English sentences.
    auditor.set_viewport_size({"width": 1366, "height": 900})
    auditor.goto("/console/audit")
    auditor.click('.console-nav a[lang="en"]')
    auditor.wait_for_selector('html[lang="en"]')
    table = auditor.locator("#audit").inner_text()
    assert "Accepted a case" in table and "Recorded the verification result" in table
    assert "受理了案件" not in table
    assert _nav_on_one_line(auditor), "the auditor's menu wraps at 1366 px in English"
    auditor.screenshot(path=str(shots / "audit-1366-en.png"), full_page=True)
    assert not auditor.outside  # type: ignore[attr-defined]
    auditor.context.close()

    # The reward form takes what the case page read in the decrypted report through the URL
    # fragment only (never sent): "insider: yes" arrives checked, with a note to check it.
    reviewer = _signed_in(chromium, live, "reviewer0", "zh-CN")
    # The case page names what was stripped from the photo in the page's language.
    reviewer.goto(f"/console/cases/{case_id}")
    public = crypto.public_key(live.reviewer_keys[0])
    assert reviewer.evaluate(STORE_KEY, [crypto.b64u_encode(live.reviewer_keys[0]),
                                         crypto.b64u_encode(public),
                                         crypto.key_id(public).hex()]) is True
    reviewer.reload()
    reviewer.locator("#files li").first.wait_for()
    files = reviewer.locator("#files").inner_text()
    assert tr("zh_CN", "EXIF (incl. GPS)") in files and "EXIF (incl. GPS)" not in files
    reviewer.goto(f"/console/cases/{case_id}/reward#insider=yes")
    assert reviewer.is_checked("#r-insider")
    assert reviewer.locator("#insider-prefilled").is_visible()
    # One field per line; the checkbox on the line of its label.
    box = reviewer.locator("#r-insider").bounding_box()
    label = reviewer.locator("label.check", has=reviewer.locator("#r-insider")).bounding_box()
    assert box and label and abs(box["y"] - label["y"]) < 12 and box["width"] < 40
    reviewer.screenshot(path=str(shots / "reward-form-1366-zh.png"), full_page=True)
    reviewer.goto(f"/console/cases/{case_id}/reward#insider=no")
    assert not reviewer.is_checked("#r-insider")
    assert not reviewer.outside  # type: ignore[attr-defined]
    reviewer.context.close()
