"""The reporter's pages end to end: real Chromium against the real app on a real database.

Every stored result is checked from Python with the real crypto, opening the case as a
reviewer would. Every test also checks that the page talked to nobody but the live server.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

import crypto
from service.client import Client, plain_file, urllib_transport
from service.domain import intake, sealing
from service.domain.followup import RECEIPT_FORMAT, ReceiptUnknown
from service.domain.installation import get_installation
from service.domain.intake import coarse_time
from service.domain.models import Case, CaseEvent, FileChunk, KeySlot, SealedItem, StoredFile
from service.platform import localtime
from service.platform.i18n import Catalogs
from service.web import jsmessages
from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.factories import open_as, open_reporter_slot

pytestmark = pytest.mark.browser

GPS_IFD = 0x8825
RECEIPT_RE = re.compile(r"\d{3}( \d{3}){6}")
DESCRIPTION = "三号车间的液氨储罐阀门泄漏，已经两周没有修理。\n夜班时气味很重。"
CATALOGS = Catalogs.load()


def tr(language: str, message: str, **params: object) -> str:
    return CATALOGS.gettext(language)(message, **params)


def fill(template: str, **params: object) -> str:
    for name, value in params.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def gps_jpeg() -> bytes:
    image = Image.new("RGB", (48, 32), (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "ACME"
    exif[0x0110] = "Phone 9"
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (39.0, 54.0, 27.5)
    gps[3] = "E"
    gps[4] = (116.0, 23.0, 1.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD), "fixture must carry GPS"
    return data


def has_gps(data: bytes) -> bool:
    return bool(Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD))


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def live(live_factory: Callable[..., LiveServer]) -> LiveServer:  # noqa: F811
    return live_factory()


@pytest.fixture
def chunked(live_factory: Callable[..., LiveServer]) -> LiveServer:  # noqa: F811
    """A server that takes every file in chunks (nothing inside the submission)."""
    return live_factory(max_inline_bytes=0)


class Browser:
    """One context per test; records every request so the test can check where they went."""

    def __init__(self, chromium: Any, base_url: str) -> None:
        self.chromium = chromium
        self.base_url = base_url
        self.contexts: list[Any] = []
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def page(self, *, javascript: bool = True, locale: str = "zh-CN") -> Any:
        context = self.chromium.new_context(base_url=self.base_url, java_script_enabled=javascript,
                                            locale=locale, accept_downloads=True)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("request", lambda r: self.requests.append((r.method, r.url)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)
        return page

    def _console(self, message: Any) -> None:
        # The browser asks for /favicon.ico on its own; the app has none.
        if message.type == "error" and not message.location.get("url", "").endswith(
                "/favicon.ico"):
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def api_calls(self, method: str, fragment: str) -> list[str]:
        return [url for m, url in self.requests if m == method and fragment in url]

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        elsewhere = [url for _, url in self.requests if not url.startswith(self.base_url + "/")]
        assert not elsewhere, f"requests to other origins: {elsewhere}"


@pytest.fixture
def browser(chromium: Any, live: LiveServer) -> Iterator[Browser]:
    watcher = Browser(chromium, live.base_url)
    try:
        yield watcher
    finally:
        watcher.close()


@pytest.fixture
def browser_chunked(chromium: Any, chunked: LiveServer) -> Iterator[Browser]:
    watcher = Browser(chromium, chunked.base_url)
    try:
        yield watcher
    finally:
        watcher.close()


def open_form(page: Any, javascript: bool = True) -> None:
    page.goto("/")
    if javascript:
        page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")


def fill_report(page: Any, files: list[Path] | None = None) -> None:
    page.fill("#f-unit", "某机械厂")
    page.fill("#f-location", "三号车间 液氨储罐区")
    page.select_option("#f-category", "hazard")
    page.fill("#f-description", DESCRIPTION)
    page.fill("#f-seen", "11月20日 夜班")
    if files:
        page.set_input_files("#f-files", [str(f) for f in files])


def stored_case(live: LiveServer) -> Case:
    with live.session() as session:
        return session.scalars(select(Case)).one()


def open_stored_file(live: LiveServer, session: Any, case_id: str, meta: dict[str, Any],
                     file: StoredFile) -> bytes:
    chunks = [session.get(FileChunk, (file.id, i)).data for i in range(file.chunk_count)]
    return b"".join(crypto.open_file(
        crypto.b64u_decode(meta["key"]), crypto.b64u_decode(meta["prefix"]),
        bytes.fromhex(case_id), bytes.fromhex(file.id), chunks, meta["size"]))


def the_one_file_opens_as(live: LiveServer, content: bytes) -> StoredFile:
    """The one ready case's one file, opened as its reviewer would: it must be ``content``."""
    case = stored_case(live)
    assert case.ready
    with live.session() as session:
        [stored] = session.scalars(select(StoredFile)).all()
        _, items = open_as(live.reviewer_keys[0], session, case.id)
        [meta] = items["file-meta"]
        assert open_stored_file(live, session, case.id, meta, stored) == content
    return stored


def check_receipt_matches(live: LiveServer, receipt: str, case: Case) -> None:
    with live.session() as session:
        salt = get_installation(session).salt
    keys = crypto.derive_receipt(receipt, salt, live.settings.receipt_iterations)
    assert keys.lookup_hash.hex() == case.lookup_hash


def submit_from_python(live: LiveServer, files: list[sealing.PlainFile] = ()) -> tuple[str, str]:
    """A case made through the JSON API by the Python client; returns (receipt, case id)."""
    client = Client(urllib_transport(live.base_url), language="zh-CN")
    receipt = client.submit(live.channel_slug, {
        "v": 1, "unit": "某机械厂", "location": "", "category": "hazard",
        "description": DESCRIPTION, "seen_at": "", "insider": "", "language": "zh_CN",
    }, files=list(files))
    return receipt, stored_case(live).id


def add_reviewer_message(live: LiveServer, case_id: str, text: str) -> str:
    with live.session() as session:
        case_key, _ = open_as(live.reviewer_keys[0], session, case_id)
        item_id = crypto.new_id()
        blob = crypto.seal_item(case_key, bytes.fromhex(case_id), item_id, "message",
                                {"v": 1, "text": text, "question": True})
        # Stored times are coarsened; the reviewer wrote in an earlier period than the reply.
        now = coarse_time(live.settings) - dt.timedelta(seconds=live.settings.time_granularity_seconds)
        session.add(SealedItem(id=item_id.hex(), case_id=case_id, kind="message",
                               author="reviewer", blob=blob, created_at=now))
        session.add(CaseEvent(case_id=case_id, kind="message", visible_to_reporter=True,
                              data={}, created_at=now))
    return item_id.hex()


def counts(live: LiveServer) -> dict[str, int]:
    with live.session() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model))
                for model in (Case, SealedItem, StoredFile, FileChunk)}


# ------------------------------------------------------------------------------ intake


def test_submit_with_javascript_seals_in_the_browser(live: LiveServer, browser: Browser,
                                                     tmp_path: Path) -> None:
    photo = tmp_path / "现场照片.jpg"
    photo.write_bytes(gps_jpeg())
    page = browser.page()
    open_form(page)
    start_url = page.url
    start_history = page.evaluate("history.length")
    fill_report(page, [photo])
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    receipt = page.text_content("#receipt-code").strip()
    assert RECEIPT_RE.fullmatch(receipt)
    assert page.url == start_url
    assert page.evaluate("history.length") == start_history
    assert page.is_hidden("#report-form")
    # What was removed is on the receipt screen, in plain words; the list shown during the
    # upload went with the form.
    removed = fill(tr("zh_CN", "{name}: hidden data removed: {what}"), name="现场照片.jpg",
                   what="拍摄地点（GPS）、相机型号、拍摄时间")
    assert removed == "现场照片.jpg：已删除拍摄地点（GPS）、相机型号、拍摄时间"
    assert removed in page.inner_text("#removed-summary")
    assert page.inner_text("#file-report") == ""
    # Only ciphertext went out: no form post; a small photo travels inside the envelope,
    # so one request stores the whole case.
    assert not browser.api_calls("POST", "/report")
    assert len(browser.api_calls("POST", "/api/v1/submissions")) == 1
    assert not browser.api_calls("PUT", "/chunks/") and not browser.api_calls("PUT", "/batch/")

    case = stored_case(live)
    assert case.ready and not case.sealed_on_server
    check_receipt_matches(live, receipt, case)
    with live.session() as session:
        for key in live.reviewer_keys:
            open_as(key, session, case.id)
        _, items = open_as(live.recovery_private, session, case.id,
                           xwing_seed=live.world.recovery_xwing_seed)
        report = items["report"][0]
        assert report == {"v": 1, "unit": "某机械厂", "location": "三号车间 液氨储罐区",
                          "category": "hazard", "description": DESCRIPTION,
                          "seen_at": "11月20日 夜班", "insider": "", "language": "zh_CN"}
        assert "identity" not in items
        [meta] = items["file-meta"]
        # A neutral name (the reporter did not ask to keep theirs), the type from the bytes.
        assert meta["name"] == "照片-1.jpg" and meta["type"] == "image/jpeg"
        assert meta["cleaned"] is True and "EXIF (incl. GPS)" in meta["removed"]
        [stored] = session.scalars(select(StoredFile)).all()
        assert stored.complete
        content = open_stored_file(live, session, case.id, meta, stored)
    assert len(content) == meta["size"]
    assert not has_gps(content)
    assert Image.open(io.BytesIO(content)).size == (48, 32)
    assert not browser.errors


def test_submit_without_javascript_is_sealed_on_the_server(live: LiveServer, browser: Browser,
                                                           tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(gps_jpeg())
    page = browser.page(javascript=False)
    open_form(page, javascript=False)
    fill_report(page, [photo])
    page.fill("#f-name", "张三")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-code")
    receipt = page.text_content("#receipt-code").strip()
    assert RECEIPT_RE.fullmatch(receipt)
    assert browser.api_calls("POST", "/report")

    case = stored_case(live)
    assert case.ready and case.sealed_on_server
    check_receipt_matches(live, receipt, case)
    # v2 wherever there is an X-Wing key: the recovery key's and the receipt's.
    assert slot_suites(live, case.id) == {"reviewer": {crypto.SUITE},
                                          "recovery": {crypto.SUITE_V2},
                                          "reporter": {crypto.SUITE_V2}}
    with live.session() as session:
        _, items = open_as(live.reviewer_keys[1], session, case.id)
        assert items["report"][0]["description"] == DESCRIPTION
        assert items["identity"][0]["name"] == "张三"
        [meta] = items["file-meta"]
        [stored] = session.scalars(select(StoredFile)).all()
        content = open_stored_file(live, session, case.id, meta, stored)
    assert not has_gps(content)


def test_changed_keys_are_fetched_again_and_resealed(live: LiveServer, browser: Browser) -> None:
    """The channel's recipients change between fetching them and sending: seal again, once."""
    page = browser.page()
    stale: list[str] = []

    def drop_a_reviewer(route: Any) -> None:
        response = route.fetch()
        data = response.json()
        if not stale:  # only the first answer is stale
            stale.append(data["channels"][0]["recipients"].pop(0)["key_id"])
        route.fulfill(response=response, json=data)

    page.route("**/api/v1/channels", drop_a_reviewer)
    open_form(page)
    fill_report(page)
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    assert stale
    assert len(browser.api_calls("GET", "/api/v1/channels")) == 2
    assert len(browser.api_calls("POST", "/api/v1/submissions")) == 2  # refused, then stored
    case = stored_case(live)
    with live.session() as session:
        for key in live.reviewer_keys:
            _, items = open_as(key, session, case.id)
            assert items["report"][0]["description"] == DESCRIPTION
        _, items = open_as(live.recovery_private, session, case.id,
                           xwing_seed=live.world.recovery_xwing_seed)
        assert items["report"][0]["description"] == DESCRIPTION


def test_without_x25519_the_form_posts_to_the_server(live: LiveServer, browser: Browser) -> None:
    page = browser.page()
    # A browser whose WebCrypto lacks X25519 (older Safari, some privacy browsers).
    page.add_init_script("""
      const original = crypto.subtle.generateKey.bind(crypto.subtle);
      crypto.subtle.generateKey = (algorithm, ...rest) =>
        (algorithm && algorithm.name === "X25519")
          ? Promise.reject(new DOMException("no", "NotSupportedError"))
          : original(algorithm, ...rest);
    """)
    page.goto("/")
    # The true reason (not "JavaScript is off"), the weaker guarantee, the better way.
    expected = tr("zh_CN", jsmessages.MESSAGES["no_crypto"])
    assert "X25519" in expected and "手机自带的浏览器" in expected
    page.wait_for_function(
        "t => document.getElementById('form-error').textContent === t", arg=expected)
    fill_report(page)
    # Only with the reporter's say-so: the box is required before the form can go.
    page.click("#submit-report")
    assert not browser.api_calls("POST", "/report")
    page.check("#f-server-seal")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-code")
    assert browser.api_calls("POST", "/report")
    assert tr("zh_CN", "Your report was encrypted by the server on arrival, as you chose, because "
                       "this browser cannot encrypt on your device; the plaintext was discarded "
                       "at once.") in page.inner_text("main")
    assert "JavaScript" not in page.inner_text("main")
    case = stored_case(live)
    assert case.ready and case.sealed_on_server
    # Reload of the receipt page: the same receipt, no second case.
    receipt = page.text_content("#receipt-code")
    page.reload()
    assert page.text_content("#receipt-code") == receipt
    assert counts(live)["Case"] == 1


# ------------------------------------------------------------------------------ follow-up


def reported_week(live: LiveServer, case_id: str) -> str:
    """The line both follow-up pages show: the week the report came in, never its day."""
    with live.session() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return tr("zh_CN", "Reported in the week of {date}.",
                  date=localtime.show(case.created_at, "date"))


def test_follow_up_with_javascript_reads_and_replies(live: LiveServer, browser: Browser,
                                                     tmp_path: Path) -> None:
    receipt, case_id = submit_from_python(live)
    question = "请问泄漏的是哪一个阀门？"
    message_id = add_reviewer_message(live, case_id, question)
    page = browser.page()
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#case-panel:not([hidden]) #messages li")
    assert page.is_hidden("#followup-form")
    # The page is the report now, as without JavaScript: no call to type a receipt above it.
    assert page.inner_text("h1") == tr("zh_CN", "Your report")
    assert page.is_hidden("#followup-intro")
    assert page.text_content("#case-status") == tr("zh_CN", "Received, waiting to be accepted")
    assert page.locator("#case-panel p.hint").first.inner_text() == reported_week(live, case_id)
    events = page.locator("#events li").all_inner_texts()
    assert any(tr("zh_CN", "Your report was received and sealed.") in e for e in events)
    assert any(tr("zh_CN", "The reviewers sent you a message.") in e for e in events)
    messages = page.locator("#messages li").all_inner_texts()
    assert len(messages) == 1
    assert question in messages[0]
    assert tr("zh_CN", "Question for you") in messages[0]
    assert tr("zh_CN", "Reviewers") in messages[0]
    assert DESCRIPTION.split("\n")[0] in page.inner_text("#report-copy")

    evidence = tmp_path / "阀门.txt"
    evidence.write_bytes("第二个阀门，编号 V-12。".encode())
    page.fill("#reply-text", "是 V-12 号阀门。")
    page.set_input_files("#reply-files", str(evidence))
    # A text file cannot be cleaned: the reporter says to send it as it is.
    page.check("#reply-file-report input[value=send]")
    page.click("#reply-send")
    page.wait_for_selector("#case-notice")
    assert page.text_content("#case-notice") == tr("zh_CN", "Your reply was sealed and sent.")
    messages = page.locator("#messages li").all_inner_texts()
    assert len(messages) == 2 and "是 V-12 号阀门。" in messages[1]
    assert "文件-1.txt" in page.inner_text("#files")

    with live.session() as session:
        _, items = open_as(live.reviewer_keys[0], session, case_id)
        [reply] = items["reply"]
        assert reply == {"v": 1, "text": "是 V-12 号阀门。", "in_reply_to": message_id}
        [meta] = items["file-meta"]
        [stored] = session.scalars(select(StoredFile)).all()
        assert stored.complete and stored.author == "reporter"
        assert meta["name"] == "文件-1.txt" and meta["cleaned"] is False
        assert meta["type"] == "text/plain"
        assert open_stored_file(live, session, case_id, meta, stored) == evidence.read_bytes()
        reply_row = session.scalars(select(SealedItem).where(SealedItem.kind == "reply")).one()
        assert reply_row.author == "reporter"

    # The reporter downloads the file again and gets the same bytes.
    with page.expect_download() as info:
        page.click("#files button")
    assert Path(info.value.path()).read_bytes() == evidence.read_bytes()
    assert not browser.errors


def test_follow_up_says_what_was_removed_from_a_photo(live: LiveServer, browser: Browser,
                                                      tmp_path: Path) -> None:
    # The removed data was shown only during the upload and on the receipt; the follow-up
    # page now says it beside the file, in the receipt's plain words.
    photo = tmp_path / "IMG_0001.jpg"
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (31.0, 14.0, 5.0)}
    Image.new("RGB", (16, 16), (10, 200, 10)).save(photo, "JPEG", exif=exif)
    receipt, _ = submit_from_python(live, [plain_file(photo)])
    page = browser.page()
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#files li")
    expected = tr("zh_CN", "{name}: hidden data removed: {what}", name="photo-1.jpg",
                  what=tr("zh_CN", "where it was taken (GPS), the camera model, "
                                   "when it was taken"))
    assert page.inner_text("#files .removed") == expected
    assert not browser.errors


def test_follow_up_without_javascript(live: LiveServer, browser: Browser) -> None:
    receipt, case_id = submit_from_python(live)
    add_reviewer_message(live, case_id, "现场有没有照片？")
    page = browser.page(javascript=False)
    page.goto("/followup")
    page.fill("#f-receipt", receipt.replace(" ", "-"))
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#messages")
    assert "现场有没有照片？" in page.inner_text("#messages")
    assert page.locator("main p.hint").first.inner_text() == reported_week(live, case_id)
    page.fill("#f-reply", "没有照片，但可以带人去看。")
    page.click("section.reply button[type=submit]")
    page.wait_for_selector(".notice[role=status]")
    assert "没有照片，但可以带人去看。" in page.inner_text("#messages")
    with live.session() as session:
        _, items = open_as(live.reviewer_keys[1], session, case_id)
        assert [r["text"] for r in items["reply"]] == ["没有照片，但可以带人去看。"]


# ------------------------------------------------------------------------------ interruptions


def two_batch_file(tmp_path: Path) -> tuple[Path, bytes]:
    content = os.urandom((intake.BATCH_CHUNKS + 2) * 65536)
    path = tmp_path / "evidence.bin"
    path.write_bytes(content)
    assert sealing.stored_layout(len(content))[1] > intake.BATCH_CHUNKS
    return path, content


def abort_second_batch(page: Any, times: int) -> list[str]:
    aborted: list[str] = []

    def handler(route: Any) -> None:
        if route.request.method == "PUT" and len(aborted) < times:
            aborted.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r".*/api/v1/submissions/[0-9a-f]{32}/files/[0-9a-f]{32}/batch/"
                          rf"{intake.BATCH_CHUNKS}/\d+$"), handler)
    return aborted


# A browser that cannot start a worker (or a page that refuses one) seals on the page itself.
NO_WORKERS = "Object.defineProperty(window, 'Worker', { value: undefined });"


@pytest.mark.parametrize("sealer", ["worker", "page"])
def test_interrupted_upload_resumes(chunked: LiveServer, browser_chunked: Browser,
        tmp_path: Path, sealer: str) -> None:
    live, browser = chunked, browser_chunked
    path, content = two_batch_file(tmp_path)
    page = browser.page()
    if sealer == "page":
        page.add_init_script(NO_WORKERS)
    workers: list[str] = []
    page.on("worker", lambda worker: workers.append(worker.url))
    open_form(page)
    aborted = abort_second_batch(page, times=1)
    fill_report(page, [path])
    page.check("#file-report input[value=send]")  # random bytes cannot be cleaned
    page.click("#submit-report")
    page.wait_for_selector("#resume-upload:not([hidden])")
    assert page.is_visible("#discard-upload")
    assert page.text_content("#progress-text") == tr(
        "zh_CN", "The upload was interrupted. You can resume it, or discard the report.")
    assert len(aborted) == 1
    assert counts(live)["Case"] == 1 and not stored_case(live).ready
    page.click("#resume-upload")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    receipt = page.text_content("#receipt-code").strip()

    case = stored_case(live)
    assert case.ready
    check_receipt_matches(live, receipt, case)
    with live.session() as session:
        [stored] = session.scalars(select(StoredFile)).all()
        indexes = list(session.scalars(select(FileChunk.index)
                                       .where(FileChunk.file_id == stored.id)
                                       .order_by(FileChunk.index)))
        assert indexes == list(range(stored.chunk_count))
        _, items = open_as(live.reviewer_keys[0], session, case.id)
        [meta] = items["file-meta"]
        assert open_stored_file(live, session, case.id, meta, stored) == content
    # The first batch was sent once; the second once after resuming (plus the aborted try).
    rest = stored.chunk_count - intake.BATCH_CHUNKS
    puts = browser.api_calls("PUT", "/api/v1/submissions/")
    assert sorted(u.split("/batch/", 1)[1] for u in puts) == [
        f"0/{intake.BATCH_CHUNKS}", f"{intake.BATCH_CHUNKS}/{rest}",
        f"{intake.BATCH_CHUNKS}/{rest}"]
    # Sealed in a worker, started once for the upload and once for its resumption; or,
    # without workers, on the page: the same requests and the same bytes either way.
    sealers = [url for url in workers if url.endswith("/js/sealworker.js")]
    assert len(sealers) == (2 if sealer == "worker" else 0)


def test_a_worker_that_does_not_load_leaves_the_upload_to_the_page(
        chunked: LiveServer, browser_chunked: Browser, tmp_path: Path) -> None:
    live, browser = chunked, browser_chunked
    path, content = two_batch_file(tmp_path)
    page = browser.page()
    refused: list[str] = []

    def missing(route: Any) -> None:
        refused.append(route.request.url)
        route.fulfill(status=404, body="")

    page.route(re.compile(r".*/js/sealworker\.js$"), missing)
    open_form(page)
    fill_report(page, [path])
    page.check("#file-report input[value=send]")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    assert refused
    stored = the_one_file_opens_as(live, content)
    puts = browser.api_calls("PUT", "/api/v1/submissions/")
    assert sorted(u.split("/batch/", 1)[1] for u in puts) == [
        f"0/{intake.BATCH_CHUNKS}", f"{intake.BATCH_CHUNKS}/{stored.chunk_count - intake.BATCH_CHUNKS}"]


def test_a_20_mib_file_goes_in_a_few_requests(chunked: LiveServer, browser_chunked: Browser,
                                              tmp_path: Path) -> None:
    live, browser = chunked, browser_chunked
    content = os.urandom(20 * 1024 * 1024)
    path = tmp_path / "video.bin"
    path.write_bytes(content)
    page = browser.page()
    open_form(page)
    fill_report(page, [path])
    page.check("#file-report input[value=send]")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code", timeout=120_000)
    stored = the_one_file_opens_as(live, content)
    # 64 chunks a request: 6 requests instead of one per chunk.
    puts = browser.api_calls("PUT", "/api/v1/")
    assert stored.chunk_count > 320
    assert len(puts) == -(-stored.chunk_count // intake.BATCH_CHUNKS) == 6
    assert all("/batch/" in url for url in puts)
    assert not browser.errors


def test_follow_up_evidence_goes_in_batches_and_resumes(chunked: LiveServer,
                                                        browser_chunked: Browser,
                                                        tmp_path: Path) -> None:
    live, browser = chunked, browser_chunked
    receipt, case_id = submit_from_python(live)
    page = browser.page()
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#case-panel:not([hidden])")
    path, content = two_batch_file(tmp_path)
    aborted: list[str] = []

    def cut_once(route: Any) -> None:
        if route.request.method == "PUT" and not aborted:
            aborted.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(rf".*/api/v1/followup/files/[0-9a-f]{{32}}/batch/"
                          rf"{intake.BATCH_CHUNKS}/\d+$"), cut_once)
    page.set_input_files("#reply-files", str(path))
    page.check("#reply-file-report input[value=send]")
    page.click("#reply-send")
    page.wait_for_selector("#case-notice", timeout=60_000)
    assert page.text_content("#case-notice") == tr("zh_CN", "Your reply was sealed and sent.")
    assert len(aborted) == 1
    with live.session() as session:
        [stored] = session.scalars(select(StoredFile).where(StoredFile.author == "reporter",
                                                            StoredFile.case_id == case_id)).all()
        assert stored.complete
        _, items = open_as(live.reviewer_keys[0], session, case_id)
        [meta] = items["file-meta"]
        assert open_stored_file(live, session, case_id, meta, stored) == content
    # After the cut it asked what the server holds and sent only the second batch again.
    rest = stored.chunk_count - intake.BATCH_CHUNKS
    puts = browser.api_calls("PUT", "/api/v1/followup/files/")
    assert sorted(u.split("/batch/", 1)[1] for u in puts) == [
        f"0/{intake.BATCH_CHUNKS}", f"{intake.BATCH_CHUNKS}/{rest}",
        f"{intake.BATCH_CHUNKS}/{rest}"]
    assert browser.api_calls("GET", f"/api/v1/followup/files/{stored.id}")
    assert not [e for e in browser.errors if "ERR_FAILED" not in e]


def test_interrupted_upload_discarded(chunked: LiveServer, browser_chunked: Browser,
        tmp_path: Path) -> None:
    live, browser = chunked, browser_chunked
    path, _ = two_batch_file(tmp_path)
    page = browser.page()
    open_form(page)
    abort_second_batch(page, times=1000)
    fill_report(page, [path])
    page.check("#file-report input[value=send]")
    page.click("#submit-report")
    page.wait_for_selector("#discard-upload:not([hidden])")
    assert counts(live)["Case"] == 1
    page.click("#discard-upload")
    page.wait_for_function(
        "t => document.getElementById('progress-text').textContent === t",
        arg=tr("zh_CN", "The report was discarded. Nothing was kept."))
    assert browser.api_calls("DELETE", "/api/v1/submissions/")
    assert counts(live) == {"Case": 0, "SealedItem": 0, "StoredFile": 0, "FileChunk": 0}


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("locale", "language"), [("zh-CN", "zh_CN"), ("en-US", "en")])
def test_bad_receipts_are_explained(live: LiveServer, browser: Browser, locale: str,
                                    language: str) -> None:
    submit_from_python(live)
    page = browser.page(locale=locale)
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    page.fill("#f-receipt", "1234 5678 9012 3456 7890")
    page.click("#followup-form button[type=submit]")
    expected = tr(language, ReceiptUnknown.message)
    page.wait_for_function(
        "t => document.getElementById('form-error').textContent === t", arg=expected)
    assert page.is_visible("#form-error")
    assert page.is_visible("#followup-form")

    before = len(browser.requests)
    page.fill("#f-receipt", "1234 5678")
    page.click("#followup-form button[type=submit]")
    expected = tr(language, RECEIPT_FORMAT)
    page.wait_for_function(
        "t => document.getElementById('form-error').textContent === t", arg=expected)
    # The proof-of-work worker may still be fetching its script from the first attempt; a
    # static file carries nothing of the receipt, so only other requests count.
    sent = [(m, u) for m, u in browser.requests[before:] if "/static/" not in u]
    assert sent == [], "a malformed receipt must not reach the server"
    assert page.is_hidden("#case-panel")


def test_file_over_the_limit_is_refused_before_upload(chromium: Any,
                                                      live_factory: Callable[..., LiveServer],  # noqa: F811
                                                      tmp_path: Path) -> None:
    server = live_factory(max_file_bytes=100_000)
    watcher = Browser(chromium, server.base_url)
    try:
        page = watcher.page()
        open_form(page)
        damaged = tmp_path / "broken.jpg"
        damaged.write_bytes(gps_jpeg()[:-400])  # cut off before the end of the image
        fill_report(page, [damaged])
        page.click("#submit-report")
        expected = fill(tr("zh_CN", "{name}: the picture is damaged; its hidden data could not "
                                    "be removed, so it will not be sent"), name="broken.jpg")
        page.wait_for_function(
            "t => document.getElementById('form-error').textContent === t", arg=expected)
        assert expected in page.inner_text("#file-report")

        big = tmp_path / "video.mp4"
        big.write_bytes(os.urandom(120_000))
        page.set_input_files("#f-files", str(big))
        page.click("#submit-report")
        expected = fill(tr("zh_CN", "{name} is larger than the limit of {mb} MB."),
                        name="video.mp4", mb="0.1")
        page.wait_for_function(
            "t => document.getElementById('form-error').textContent === t", arg=expected)
        assert page.is_visible("#report-form")
        assert not watcher.api_calls("POST", "/api/")
        assert not watcher.api_calls("PUT", "/api/")
        assert counts(server) == {"Case": 0, "SealedItem": 0, "StoredFile": 0, "FileChunk": 0}
        assert not watcher.errors
    finally:
        watcher.close()


# ------------------------------------------------------------------------------ suite v2

NO_HYBRID = """
  // A browser without the post-quantum hybrid (X-Wing) in WebCrypto.
  const XWING = "MLKEM768-X25519";
  const name = (a) => (typeof a === "string" ? a : a && a.name);
  if (globalThis.SubtleCrypto && SubtleCrypto.supports) {
    const supports = SubtleCrypto.supports.bind(SubtleCrypto);
    Object.defineProperty(SubtleCrypto, "supports", {
      value: (op, algorithm, ...rest) => name(algorithm) !== XWING && supports(op, algorithm, ...rest),
    });
  }
  const generateKey = crypto.subtle.generateKey.bind(crypto.subtle);
  crypto.subtle.generateKey = (algorithm, ...rest) => name(algorithm) === XWING
    ? Promise.reject(new DOMException("no", "NotSupportedError"))
    : generateKey(algorithm, ...rest);
"""


def slot_suites(live: LiveServer, case_id: str) -> dict[str, set[str]]:
    with live.session() as session:
        suites: dict[str, set[str]] = {}
        for slot in session.scalars(select(KeySlot).where(KeySlot.case_id == case_id,
                                                          KeySlot.purpose == "case")):
            suites.setdefault(slot.holder, set()).add(slot.suite)
        return suites


def submit_in_browser(browser: Browser, *, hybrid: bool = True) -> str:
    page = browser.page()
    if not hybrid:
        page.add_init_script(NO_HYBRID)
    open_form(page)
    fill_report(page)
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    return page.text_content("#receipt-code").strip()


def follow_up_in_browser(browser: Browser, receipt: str, *, hybrid: bool = True) -> Any:
    page = browser.page()
    if not hybrid:
        page.add_init_script(NO_HYBRID)
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    return page


def follow_up_from_python(live: LiveServer, receipt: str) -> tuple[dict[str, Any], bytes]:
    """The reporter's feed through the JSON API, and the case key from its slot."""
    client = Client(urllib_transport(live.base_url), language="zh-CN")
    installation = client.channels()["installation"]
    keys = crypto.derive_receipt(receipt, crypto.b64u_decode(installation["salt"]),
                                 installation["receipt_iterations"])
    started = client._call("POST", "/api/v1/followup/session", {
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret), "pow": client.stamp()})
    feed = client._call("GET", "/api/v1/followup", token=started["token"])
    return feed, open_reporter_slot(feed, keys, feed["case_id"])


def report_of(feed: dict[str, Any], case_key: bytes) -> dict[str, Any]:
    [item] = [i for i in feed["items"] if i["kind"] == "report"]
    return crypto.open_item(case_key, bytes.fromhex(feed["case_id"]), bytes.fromhex(item["id"]),
                            "report", crypto.b64u_decode(item["blob"]))


def test_a_browser_with_the_hybrid_seals_v2_wherever_a_key_allows(live: LiveServer,
                                                                  browser: Browser) -> None:
    receipt = submit_in_browser(browser)
    case = stored_case(live)
    # Reviewers have X25519 keys only: their slots stay v1, and the case classical-only.
    assert slot_suites(live, case.id) == {"reviewer": {crypto.SUITE},
                                          "recovery": {crypto.SUITE_V2},
                                          "reporter": {crypto.SUITE_V2}}
    assert case.classical_only
    with live.session() as session:
        for key in live.reviewer_keys:
            assert open_as(key, session, case.id)[1]["report"][0]["description"] == DESCRIPTION
        _, items = open_as(live.recovery_private, session, case.id,
                           xwing_seed=live.world.recovery_xwing_seed)
        assert items["report"][0]["description"] == DESCRIPTION
    # The reporter comes back in the browser (v2 slot, receipt's X-Wing key) ...
    page = follow_up_in_browser(browser, receipt)
    page.wait_for_selector("#case-panel:not([hidden]) #report-copy")
    assert DESCRIPTION.split("\n")[0] in page.inner_text("#report-copy")
    # ... and with the Python client.
    feed, case_key = follow_up_from_python(live, receipt)
    assert feed["slot_suite"] == crypto.SUITE_V2
    assert report_of(feed, case_key)["description"] == DESCRIPTION
    assert not browser.errors


def test_a_browser_without_the_hybrid_seals_v1_everywhere(live: LiveServer,
                                                          browser: Browser) -> None:
    receipt = submit_in_browser(browser, hybrid=False)
    case = stored_case(live)
    assert slot_suites(live, case.id) == {"reviewer": {crypto.SUITE},
                                          "recovery": {crypto.SUITE},
                                          "reporter": {crypto.SUITE}}
    assert case.classical_only
    with live.session() as session:
        _, items = open_as(live.recovery_private, session, case.id)
        assert items["report"][0]["description"] == DESCRIPTION
    page = follow_up_in_browser(browser, receipt, hybrid=False)
    page.wait_for_selector("#case-panel:not([hidden]) #report-copy")
    assert DESCRIPTION.split("\n")[0] in page.inner_text("#report-copy")
    feed, case_key = follow_up_from_python(live, receipt)
    assert feed["slot_suite"] == crypto.SUITE
    assert report_of(feed, case_key)["description"] == DESCRIPTION
    assert not browser.errors


def test_a_v2_slot_in_a_browser_without_the_hybrid_is_opened_by_the_server(
        live: LiveServer, browser: Browser) -> None:
    receipt = submit_in_browser(browser)
    case = stored_case(live)
    add_reviewer_message(live, case.id, "现场有没有照片？")
    page = follow_up_in_browser(browser, receipt, hybrid=False)
    # Said plainly, in the reader's language, with the way out on the same page.
    expected = tr("zh_CN", jsmessages.MESSAGES["no_hybrid"])
    page.wait_for_function(
        "t => document.getElementById('form-error').textContent === t", arg=expected)
    assert page.is_hidden("#case-panel")
    server_opened = lambda: [u for m, u in browser.requests  # noqa: E731
                             if m == "POST" and u.split("?")[0] == live.base_url + "/followup"]
    assert not server_opened()
    page.check("#f-server-seal")
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#messages")
    assert server_opened()
    assert "现场有没有照片？" in page.inner_text("#messages")
    assert not browser.errors
