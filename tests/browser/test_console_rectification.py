"""A rectification in real Chromium against the real app under uvicorn on a temporary SQLite
database: a verified case becomes a rectification record, gets progress with a photo sealed in
the browser (opened again from Python with another reviewer's key), passes the acceptance check
of a second reviewer and is written off by an approver; the reporter follows each step with the
receipt on the follow-up page. No request may leave the server's origin.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import crypto
from reviewer import auth
from service.client import Client, urllib_transport
from service.domain import rectification_facts, workflow
from service.domain.models import Case, StoredFile, User
from service.domain.models.rectification import Rectification, RectificationFile
from service.platform.i18n import Catalogs
from tests.browser.live import LiveServer, running_server
from tests.factories import make_reviewer, open_as

pytestmark = pytest.mark.browser

KEYS_JS = Path(__file__).resolve().parents[2] / "service" / "static" / "js" / "console" / "keys.js"
REPORT = {"v": 1, "unit": "某机械厂", "location": "三号车间", "category": "hazard",
          "description": "冲压机光电保护装置被拆除，工人徒手送料。", "seen_at": "",
          "insider": "", "language": "zh_CN"}
PHOTO = bytes(range(256)) * 400 + "整改后".encode()  # two chunks
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


def zh(message: str, **params: object) -> str:
    return Catalogs.load().gettext("zh_CN")(message, **params)


class Browser:
    """Contexts on the live server that watch every request and every page error."""

    def __init__(self, chromium: Any, live: LiveServer) -> None:
        self.chromium = chromium
        self.live = live
        self.contexts: list[Any] = []
        self.requests: list[str] = []
        self.errors: list[str] = []

    def page(self) -> Any:
        context = self.chromium.new_context(base_url=self.live.base_url, locale="zh-CN",
                                            accept_downloads=True)
        context.on("request", lambda r: self.requests.append(r.url))
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text)
                if m.type == "error" and "favicon" not in m.location.get("url", "") else None)
        return page

    def console(self, username: str, private_key: bytes | None) -> Any:
        page = self.page()
        with self.live.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            token = auth.start_session(session, self.live.settings, user)
        page.context.add_cookies([{"name": auth.session_cookie(self.live.settings),
                                   "value": token, "url": self.live.base_url}])
        page.goto("/console/rectifications")
        if private_key is not None:
            public = crypto.public_key(private_key)
            assert page.evaluate(STORE_KEY, [crypto.b64u_encode(private_key),
                                             crypto.b64u_encode(public),
                                             crypto.key_id(public).hex()]) is True
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        elsewhere = [u for u in self.requests if not u.startswith(self.live.base_url + "/")]
        assert not elsewhere, f"requests to other origins: {elsewhere}"
        assert not self.errors, f"errors in the page: {self.errors}"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    deadline = time.monotonic() + 120
    while not KEYS_JS.exists():  # built alongside the console; wait rather than fake it
        if time.monotonic() > deadline:
            pytest.fail(f"{KEYS_JS} did not appear")
        time.sleep(1)
    with running_server(tmp_path / "live") as server:
        yield server


@pytest.fixture
def browser(chromium: Any, live: LiveServer) -> Iterator[Browser]:
    watcher = Browser(chromium, live)
    try:
        yield watcher
    finally:
        watcher.close()


def _verified_case(live: LiveServer) -> tuple[str, str]:
    receipt = Client(urllib_transport(live.base_url), language="zh-CN").submit(
        live.channel_slug, REPORT)
    with live.session() as session:
        keys = crypto.derive_receipt(receipt, _salt(session), live.settings.receipt_iterations)
        case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
        reviewer = session.scalar(select(User).where(User.username == "reviewer0"))
        for version, (action, params) in enumerate(
                [("accept", {}), ("start_verification", {}), ("verify", {"result": "true"})],
                1):
            workflow.perform(session, live.settings, case, reviewer, action, version=version,
                             params=params)
        channel_id = case.channel_id
        case_id = case.id
        from service.domain.models import Channel

        make_reviewer(session, "chief", session.get(Channel, channel_id), roles="approver")
    return receipt, case_id


def _salt(session: Any) -> bytes:
    from service.domain.installation import get_installation

    installation = get_installation(session)
    assert installation is not None
    return installation.salt


def test_rectification_from_case_to_write_off_followed_by_the_reporter(
        browser: Browser, live: LiveServer, tmp_path: Path) -> None:
    receipt, case_id = _verified_case(live)
    deadline = (rectification_facts.today() + dt.timedelta(days=20)).isoformat()
    # The first reviewer opens a record from the case page and decides the five guarantees.
    page = browser.console("reviewer0", live.reviewer_keys[0])
    page.goto(f"/console/cases/{case_id}")
    page.click("#rectification-records")
    page.wait_for_url(f"**/console/cases/{case_id}/rectifications")
    page.fill("#f-description", "三号车间冲压机光电保护装置缺失")
    page.fill("#f-risk", "可致手部挤压伤害")
    page.click("#form-open button[type=submit]")
    page.wait_for_url("**/console/rectifications/*?done=open")
    number = int(page.url.split("/rectifications/")[1].split("?")[0])
    page.fill("#f-unit", "冲压车间")
    page.fill("#f-person", "赵师傅")
    page.fill("#f-measures", "恢复光电保护装置并加装双手按钮")
    page.fill("#f-funds", "8000")
    page.fill("#f-deadline", deadline)
    page.fill("#f-contingency", "停机挂牌，专人看护")
    page.click("#button-decide")
    page.wait_for_url("**?done=decide")
    assert page.get_attribute("#record-state", "data-state") == "in_progress"
    # Progress with a photo: sealed here with the case key, uploaded in chunks.
    photo = tmp_path / "整改后.jpg"
    photo.write_bytes(PHOTO)
    page.locator("#evidence-picker").wait_for()
    page.fill("#progress-text", "光电保护装置已恢复")
    page.set_input_files("#evidence-files", str(photo))
    page.select_option("#evidence-phase", "after")
    page.click("#form-progress button[type=submit]")
    page.wait_for_url("**?done=progress")
    with live.session() as session:
        link = session.scalar(select(RectificationFile))
        stored = session.get(StoredFile, link.file_id)
        assert link.phase == "after" and stored.author == "reviewer" and stored.complete
        # Another reviewer's key opens it: the real case key, the real STREAM format.
        case_key, items = open_as(live.reviewer_keys[1], session, case_id)
        meta = next(m for m in items["file-meta"] if m.get("phase") == "after")
        assert meta["name"] == "整改后.jpg"
        from service.domain.intake import read_chunk

        chunks = [read_chunk(session, stored, i) for i in range(stored.chunk_count)]
        plain = b"".join(crypto.open_file(crypto.b64u_decode(meta["key"]),
                                          crypto.b64u_decode(meta["prefix"]),
                                          bytes.fromhex(case_id), bytes.fromhex(stored.id),
                                          chunks, meta["size"]))
        assert plain == PHOTO
    # The page decrypts it back into a download.
    button = page.locator(f'button.evidence-open[data-file-id="{link.file_id}"]')
    button.wait_for()
    assert "整改后.jpg" in page.locator(f'li[data-file-id="{link.file_id}"]').inner_text()
    with page.expect_download() as download:
        button.click()
    assert Path(download.value.path()).read_bytes() == PHOTO
    page.click("#form-request_acceptance button[type=submit]")
    page.wait_for_url("**?done=request_acceptance")
    assert page.locator("#accept-hint").is_visible()  # the opener may not check it
    # A second reviewer does the acceptance check.
    second = browser.console("reviewer1", live.reviewer_keys[1])
    second.goto(f"/console/rectifications/{number}")
    second.select_option("#accept-result", "pass")
    second.click("#form-accept button[type=submit]")
    second.wait_for_url("**?done=accept")
    assert second.get_attribute("#record-state", "data-state") == "accepted"
    # The approver writes it off; the case closes.
    chief = browser.console("chief", None)
    chief.goto(f"/console/rectifications/{number}")
    chief.click("#form-write_off button[type=submit]")
    chief.wait_for_url("**?done=write_off")
    assert chief.get_attribute("#record-state", "data-state") == "closed"
    with live.session() as session:
        record = session.get(Rectification, number)
        assert record.state == "closed" and record.funds_fen == 800_000
        assert session.get(Case, case_id).status == "closed"
    # The reporter follows each step with the receipt.
    reporter = browser.page()
    reporter.goto("/followup")
    reporter.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    reporter.fill("#f-receipt", receipt)
    reporter.click("#followup-form button[type=submit]")
    reporter.wait_for_selector("#case-panel:not([hidden]) #events li")
    events = reporter.locator("#events li").all_inner_texts()
    for text in (zh("A rectification was opened for the hazard."),
                 zh("Measures to remove the hazard were decided; deadline {deadline}.",
                    deadline=deadline),
                 zh("Rectification progress was recorded."),
                 zh("The rectification passed its acceptance check."),
                 zh("The case is closed.")):
        assert any(text in event for event in events), (text, events)
    shown = reporter.inner_text("body")
    for name in ("reviewer0", "reviewer1", "chief", "赵师傅"):
        assert name not in shown
