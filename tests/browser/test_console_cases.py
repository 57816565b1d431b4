"""The reviewer's case pages in real Chromium against the real app on a real database.

The reviewer's private key goes into the console's key store the way the sign-in page puts
it there (a non-extractable X25519 CryptoKey, through keys.js); the session cookie comes from
the real session machinery. Everything the page seals is opened again from Python with the
real crypto. No request may leave the server's origin.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.datastructures import Secret

import crypto
from reviewer import auth
from service.client import Client, urllib_transport
from service.domain import sealing
from service.domain.models import AuditEntry, Case, Installation, KeySlot, SealedItem, User
from service.platform.db import Database
from service.platform.settings import Settings
from tests.browser.live import running_server
from tests.factories import Reviewer, make_reviewer, open_as, open_reporter_slot

pytestmark = pytest.mark.browser

KEYS_JS = Path(__file__).resolve().parents[2] / "service" / "static" / "js" / "console" / "keys.js"
REPORT = {"v": 1, "unit": "某机械厂", "location": "三号车间", "category": "hazard",
          "description": "液氨储罐阀门泄漏，已经两周没有修理。", "seen_at": "", "insider": "",
          "language": "zh_CN"}
EVIDENCE = bytes(range(251)) * 600  # three chunks


# ------------------------------------------------------------------------------ live server


@dataclass
class Live:
    base_url: str
    settings: Settings
    database: Database
    reviewers: list[Reviewer]
    newcomer: Reviewer
    case_id: str
    receipt: str = ""


@contextlib.contextmanager
def live_server(directory: Path) -> Iterator[Live]:
    """The real app under uvicorn in a thread, on a freshly migrated SQLite file, with one
    submitted case and a reviewer who joined the channel after it (so holds no key for it)."""
    with running_server(directory, pow_difficulty=4,
                        secret_key=Secret("console-cases-browser-test")) as server:
        base, settings, database, world = (server.base_url, server.settings, server.database,
                                           server.world)
        receipt = Client(urllib_transport(base), language="zh-CN").submit("acme", REPORT, files=[
            sealing.PlainFile(name="检测记录.bin", type="application/octet-stream",
                              size=len(EVIDENCE), read=lambda: [EVIDENCE])])
        with database.write_session() as session:
            newcomer = make_reviewer(session, "newcomer", world.channel)
            case_id = session.scalar(select(SealedItem.case_id).where(
                SealedItem.kind == "report"))
        yield Live(base, settings, database, world.reviewers, newcomer, case_id, receipt)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with live_server(tmp_path) as server:
        yield server


def _wait_for_keys_js(seconds: float = 120) -> None:
    # keys.js (the key store) is built alongside this module; wait for it rather than fake it.
    deadline = time.monotonic() + seconds
    while not KEYS_JS.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{KEYS_JS} did not appear")
        time.sleep(1)


STORE_KEY = """
async ([d, x, keyIdHex]) => {
  const keys = await import('/static/js/console/keys.js');
  const key = await crypto.subtle.importKey(
    'jwk', { kty: 'OKP', crv: 'X25519', d, x, ext: false }, { name: 'X25519' }, false,
    ['deriveBits']);
  await keys.storePrivateKey(key, keyIdHex);
  const stored = await keys.getPrivateKey();
  return stored.keyId === keyIdHex && stored.privateKey.extractable === false;
}
"""


class Console:
    """One browser context signed in as one reviewer, watching every request."""

    def __init__(self, chromium: Any, live: Live) -> None:
        self.live = live
        self.context = chromium.new_context(base_url=live.base_url, locale="zh-CN",
                                            accept_downloads=True)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))

    def sign_in(self, reviewer: Reviewer) -> Any:
        with self.live.database.write_session() as session:
            user = session.get(User, reviewer.user.id)
            token = auth.start_session(session, self.live.settings, user)
        self.context.add_cookies([{"name": auth.session_cookie(self.live.settings),
                                   "value": token, "url": self.live.base_url}])
        page = self.context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text)
                if m.type == "error" and "favicon" not in m.location.get("url", "") else None)
        page.goto("/console/cases")
        public = crypto.public_key(reviewer.private_key)
        stored = page.evaluate(STORE_KEY, [crypto.b64u_encode(reviewer.private_key),
                                           crypto.b64u_encode(public),
                                           crypto.key_id(public).hex()])
        assert stored is True
        return page

    def close(self) -> None:
        self.context.close()
        elsewhere = [url for url in self.requests
                     if not url.startswith(self.live.base_url + "/")]
        assert not elsewhere, f"requests to other origins: {elsewhere}"
        assert not self.errors, f"errors in the page: {self.errors}"


@pytest.fixture
def console(chromium: Any, live: Live) -> Iterator[Console]:
    _wait_for_keys_js()
    watcher = Console(chromium, live)
    try:
        yield watcher
    finally:
        watcher.close()


# ------------------------------------------------------------------------------ tests


def test_list_and_case_are_decrypted_in_the_browser(console: Console, live: Live) -> None:
    page = console.sign_in(live.reviewers[0])
    page.reload()
    row = page.locator(f'tr.case-row[data-case-id="{live.case_id}"]')
    row.locator(".summary-text").filter(has_text="某机械厂").wait_for()
    summary = row.locator(".summary-text").inner_text()
    assert summary.startswith("事故隐患") and "某机械厂" in summary and "液氨储罐" in summary
    assert row.get_attribute("data-decrypted") == "1"
    # The server's HTML never held the plaintext.
    html = page.request.get("/console/cases").text()
    assert "液氨储罐" not in html
    page.click(f'tr.case-row[data-case-id="{live.case_id}"] a.summary-text')
    page.wait_for_url(f"**/console/cases/{live.case_id}")
    page.locator("#report-description").filter(has_text="两周没有修理").wait_for()
    assert "某机械厂" in page.locator("#report-fields").inner_text()
    # One click copies the report's unit and location into the triage fields; nothing is
    # saved until the reviewer saves.
    page.click("#copy-from-report")
    assert page.input_value("#enterprise") == "某机械厂"
    assert page.input_value("#location") == "三号车间"
    with live.database.write_session() as session:
        assert session.get(Case, live.case_id).enterprise == ""
    # The report gave no answer on "insider": the reward link carries nothing.
    assert "#" not in (page.get_attribute("#reward-link", "href") or "")
    # The attachment is fetched as ciphertext chunks and decrypted into a download here.
    button = page.locator("#files button").filter(has_text="检测记录.bin")
    # A file that was not cleaned says so to the reviewer, who may otherwise pass it on.
    assert "未清除隐藏信息" in page.locator("#files li").filter(has_text="检测记录.bin").inner_text()
    with page.expect_download() as download:
        button.click()
    assert download.value.suggested_filename == "检测记录.bin"
    assert Path(download.value.path()).read_bytes() == EVIDENCE


def test_message_note_and_grant_sealed_in_the_page(console: Console, live: Live) -> None:
    me, colleague = live.reviewers
    page = console.sign_in(me)
    page.goto(f"/console/cases/{live.case_id}")
    page.locator("#message-form").wait_for()
    # A message to the reporter: sealed with the case key here, opened in Python.
    page.fill("#message-text", "请说明储罐编号。")
    page.check("#message-question")
    page.click("#message-form button[type=submit]")
    page.locator("#message-status").filter(has_text="已加密并发送").wait_for()
    with live.database.write_session() as session:
        _, items = open_as(colleague.private_key, session, live.case_id)
    assert items["message"] == [{"v": 1, "text": "请说明储罐编号。", "question": True}]
    # The first internal note creates the internal key for every reviewer and the recovery key.
    page.fill("#note-text", "疑似与上月事故有关。")
    page.click("#note-form button[type=submit]")
    page.locator("#notes").filter(has_text="疑似与上月事故有关").wait_for()
    with live.database.write_session() as session:
        holders = set(session.scalars(select(KeySlot.holder).where(
            KeySlot.case_id == live.case_id, KeySlot.purpose == "internal")))
        count = session.scalar(select(func.count()).select_from(KeySlot).where(
            KeySlot.case_id == live.case_id, KeySlot.purpose == "internal"))
        slot = session.scalar(select(KeySlot).where(
            KeySlot.case_id == live.case_id, KeySlot.purpose == "internal",
            KeySlot.key_id == colleague.user.key_id))
        note = session.scalar(select(SealedItem).where(SealedItem.case_id == live.case_id,
                                                       SealedItem.kind == "note"))
        internal = crypto.open_key(slot.slot, colleague.private_key,
                                   bytes.fromhex(live.case_id), "internal")
        assert crypto.open_item(internal, bytes.fromhex(live.case_id), bytes.fromhex(note.id),
                                "note", note.blob)["text"] == "疑似与上月事故有关。"
    assert holders == {"reviewer", "recovery"} and count == 4  # 3 recipients + recovery
    # The newcomer joined after the report: a grant from this page lets their key open it.
    page.reload()
    page.locator("#grant-form").wait_for()
    page.select_option("#grant-user", str(live.newcomer.user.id))
    page.click("#grant-form button[type=submit]")
    page.locator("#grant-status").filter(has_text="newcomer").wait_for()
    with live.database.write_session() as session:
        # (open_as would try the notes with the case key: they need the internal key.)
        slot = session.scalar(select(KeySlot).where(
            KeySlot.case_id == live.case_id, KeySlot.purpose == "case",
            KeySlot.key_id == live.newcomer.user.key_id))
        key = crypto.open_key(slot.slot, live.newcomer.private_key, bytes.fromhex(live.case_id))
        report = session.scalar(select(SealedItem).where(SealedItem.case_id == live.case_id,
                                                         SealedItem.kind == "report"))
        assert crypto.open_item(key, bytes.fromhex(live.case_id), bytes.fromhex(report.id),
                                "report", report.blob) == REPORT
    # And the newcomer's own browser now opens the case and its notes.
    newcomer = Console(console.context.browser, live)
    try:
        other = newcomer.sign_in(live.newcomer)
        other.goto(f"/console/cases/{live.case_id}")
        other.locator("#report-description").filter(has_text="两周没有修理").wait_for()
        other.locator("#notes").filter(has_text="疑似与上月事故有关").wait_for()
    finally:
        newcomer.close()


def test_a_locked_key_store_is_said_plainly(chromium: Any, live: Live) -> None:
    _wait_for_keys_js()
    watcher = Console(chromium, live)
    try:
        with live.database.write_session() as session:
            user = session.get(User, live.reviewers[0].user.id)
            token = auth.start_session(session, live.settings, user)
        watcher.context.add_cookies([{"name": auth.session_cookie(live.settings),
                                      "value": token, "url": live.base_url}])
        page = watcher.context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"/console/cases/{live.case_id}")
        page.locator("#case-error").filter(has_text="私钥尚未").wait_for()
        assert page.locator("#message-form").is_hidden()
    finally:
        watcher.context.close()


def test_identity_is_fetched_on_the_click_and_each_look_is_recorded(console: Console,
                                                                    live: Live) -> None:
    identity = {"v": 1, "name": "王建国", "contact": "13800138000"}
    Client(urllib_transport(live.base_url), language="zh-CN").submit(
        "acme", REPORT, identity=identity)
    with live.database.write_session() as session:
        named = session.scalar(select(SealedItem.case_id).where(
            SealedItem.kind == "report", SealedItem.case_id != live.case_id))
        blob = session.scalar(select(SealedItem.blob).where(
            SealedItem.case_id == named, SealedItem.kind == "identity"))
    page = console.sign_in(live.reviewers[0])

    def looks() -> int:
        with live.database.write_session() as session:
            return int(session.scalar(select(func.count(AuditEntry.id)).where(
                AuditEntry.action == "case.identity_viewed")) or 0)

    for case_id, shown in ((named, "王建国"), (live.case_id, "举报人没有留下姓名或联系方式")):
        page.goto(f"/console/cases/{case_id}")
        page.locator("#report-description").filter(has_text="两周没有修理").wait_for()
        # Nothing of the identity is in the page until asked for.
        html = page.request.get(f"/console/cases/{case_id}").text()
        assert crypto.b64u_encode(blob) not in html and "王建国" not in html
        assert page.locator("#identity").is_hidden()
        before = looks()
        page.click("#show-identity")
        page.locator("#identity").filter(has_text=shown).wait_for()
        assert looks() == before + 1
        if case_id == named:
            assert "13800138000" in page.locator("#identity").inner_text()


def _reporter_replies(live: Live, text: str) -> None:
    """The reporter, with their receipt, replies through the follow-up API as the page does."""
    with live.database.write_session() as session:
        salt = session.scalar(select(Installation.salt))
    keys = crypto.derive_receipt(live.receipt, salt, live.settings.receipt_iterations)
    client = Client(urllib_transport(live.base_url), language="zh-CN")

    def call(method: str, path: str, body: Any, token: str = "") -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        sent = urllib.request.Request(live.base_url + path, method=method, headers=headers,
                                      data=json.dumps(body).encode() if body is not None
                                      else None)
        with urllib.request.urlopen(sent, timeout=30) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read() or b"{}")

    token = call("POST", "/api/v1/followup/session", {
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret), "pow": client.stamp()})["token"]
    feed = call("GET", "/api/v1/followup", None, token)
    key = open_reporter_slot(feed, keys, live.case_id)
    reply = sealing.seal_item_for_case(key, live.case_id, "reply", {"v": 1, "text": text})
    call("POST", "/api/v1/followup/items", reply, token)


def test_a_new_reply_is_marked_and_appears_without_a_reload(console: Console,
                                                            live: Live) -> None:
    page = console.sign_in(live.reviewers[0])
    page.goto(f"/console/cases/{live.case_id}")
    page.locator("#report-description").filter(has_text="两周没有修理").wait_for()
    _reporter_replies(live, "阀门在东侧二号罐")
    # The open page fetches the sealed reply, opens it here and shows it: no reload.
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.locator("#messages li").filter(has_text="阀门在东侧二号罐").wait_for()
    assert page.locator("#new-reply").is_visible()
    # Seen here: the list does not mark it; a further reply is marked.
    page.goto("/console/cases")
    row = page.locator(f'tr.case-row[data-case-id="{live.case_id}"]')
    assert row.get_attribute("data-unread") == "0" and not row.locator(".unread").is_visible()
    _reporter_replies(live, "还有三号罐")
    page.reload()
    row = page.locator(f'tr.case-row[data-case-id="{live.case_id}"]')
    assert row.get_attribute("data-unread") == "1"
    assert row.locator(".unread").inner_text() == "举报人有新回复"
