"""In real Chromium: files leave the reporter's browser under neutral names, typed by their
bytes, and a file that cannot be cleaned is named with a choice before anything is sent
(issue 10, section 7). The browser's type detection equals the server's."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.domain import filetypes, sealing
from service.domain.models import Case, StoredFile
from tests.browser.live import LiveServer, live_factory  # noqa: F401 - fixture
from tests.browser.test_reporter_flow import (
    Browser,
    counts,
    fill_report,
    gps_jpeg,
    has_gps,
    open_form,
    open_stored_file,
    stored_case,
    submit_from_python,
    tr,
)
from tests.factories import open_as
from tests.web.test_filenames import EXE, HEIC, MOV, MP4, iso_file

pytestmark = pytest.mark.browser

CAMERA_NAME = "IMG_20261130_221503.jpg"


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


def samples() -> dict[str, tuple[bytes, str]]:
    long_text = "安全".encode() * (filetypes.HEAD_BYTES // 6 + 10)
    return {
        "jpeg": (gps_jpeg(), "x.pdf"),
        "png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "a.png"),
        "gif": (b"GIF89a" + b"\x00" * 10, "a.gif"),
        "webp": (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "a.webp"),
        "heic": (HEIC, "IMG_1234.HEIC"),
        "heif-mif1": (iso_file(b"mif1", b"mif1", b"heic"), "a"),
        "heif-plain": (iso_file(b"mif1", b"mif1"), "a"),
        "avif": (iso_file(b"avif", b"mif1", b"avif"), "a"),
        "mp4": (MP4, "VID.mp4"),
        "mov": (MOV, "IMG_0001.MOV"),
        "3gp": (iso_file(b"3gp4", b"3gp4"), "a.3gp"),
        "m4a": (iso_file(b"M4A ", b"M4A "), "a.m4a"),
        "webm": (b"\x1a\x45\xdf\xa3" + b"\x00" * 10, "a.webm"),
        "avi": (b"RIFF\x10\x00\x00\x00AVI LIST", "a.avi"),
        "wav": (b"RIFF\x10\x00\x00\x00WAVEfmt ", "a.wav"),
        "mp3": (b"ID3\x03\x00" + b"\x00" * 10, "a.mp3"),
        "amr": (b"#!AMR\n" + b"\x00" * 10, "a.amr"),
        "exe": (EXE, "holiday.jpg"),
        "elf": (b"\x7fELF\x02\x01\x01" + b"\x00" * 9, "a.jpg"),
        "pdf": (b"%PDF-1.7\n%\xe2\xe3", "scan.jpg"),
        "docx": (b"PK\x03\x04" + b"\x00" * 26 + b"word/document.xml", "a.zip"),
        "xlsx": (b"PK\x03\x04" + b"\x00" * 26 + b"xl/workbook.xml", "a"),
        "odt": (b"PK\x03\x04" + b"\x00" * 26 + b"mimetypeapplication/vnd.oasis.opendocument.text",
                "a.odt"),
        "zip": (b"PK\x03\x04" + b"\x00" * 40, "a.apk"),
        "ole-xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "old.XLS"),
        "ole-renamed": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "old.jpg"),
        "text": ("值班记录：\n22:00 无人巡检".encode(), "notes.jpg"),
        "long-text": (long_text, "notes.txt"),
        "cut-text": (long_text[: filetypes.HEAD_BYTES], "notes.txt"),
        "latin1": ("caf\xe9".encode("latin-1"), "a.txt"),
        "empty": (b"", "empty.txt"),
        "other": (b"\x00\x01\x02\x03garbage", "x.png"),
        "short-ftyp": (b"\x00\x00\x00\x0cftypqt  ", "a"),
    }


DETECT_JS = """
async ({data, name}) => {
  const F = await import('/static/js/filetypes.js');
  const raw = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const t = await F.detectFile(new File([raw], name));
  return [t.kind, t.mime, t.ext, t.family, t.cleanable, t.reason];
}
"""


@pytest.fixture(scope="module")
def static_page(browser_context: Any, static_server: str) -> Iterator[Any]:
    page = browser_context.new_page()
    page.goto(static_server + "/")
    try:
        yield page
    finally:
        page.close()


@pytest.mark.parametrize("sample", sorted(samples()))
def test_browser_detects_what_the_server_detects(static_page: Any, sample: str) -> None:
    data, name = samples()[sample]
    expected = filetypes.detect(data, name)
    got = static_page.evaluate(DETECT_JS, {"data": base64.b64encode(data).decode(),
                                           "name": name})
    assert got == [expected.kind, expected.mime, expected.ext, expected.family,
                   expected.cleanable, expected.reason_key]


def metas(live: LiveServer) -> dict[str, dict[str, Any]]:
    case = stored_case(live)
    with live.session() as session:
        _, items = open_as(live.reviewer_keys[0], session, case.id)
    return {m["name"]: m for m in items.get("file-meta", [])}


def test_camera_name_replaced_unless_kept(live: LiveServer, browser: Browser,
                                          tmp_path: Path) -> None:
    photo = tmp_path / CAMERA_NAME
    photo.write_bytes(gps_jpeg())
    page = browser.page()
    open_form(page)
    fill_report(page, [photo])
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    assert list(metas(live)) == ["照片-1.jpg"]

    page = browser.page(locale="en-US")
    open_form(page)
    fill_report(page, [photo])
    page.check("input[name=keep_names]")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    # Two cases now; the newest kept the camera's name because the reporter asked.
    names = set()
    with live.session() as session:
        for case in session.scalars(select(Case)):
            _, items = open_as(live.reviewer_keys[0], session, case.id)
            names |= {m["name"] for m in items.get("file-meta", [])}
    assert names == {"照片-1.jpg", CAMERA_NAME}
    assert not browser.errors


def test_uncleanable_files_are_named_with_a_choice_before_sending(
        live: LiveServer, browser: Browser, tmp_path: Path) -> None:
    heic = tmp_path / "IMG_1234.HEIC"
    heic.write_bytes(HEIC)
    video = tmp_path / "VID_20261130_221503.mp4"
    video.write_bytes(MP4)
    program = tmp_path / "holiday.jpg"  # a program renamed .jpg
    program.write_bytes(EXE)
    photo = tmp_path / CAMERA_NAME
    photo.write_bytes(gps_jpeg())
    page = browser.page()
    open_form(page)
    fill_report(page, [heic, video, program, photo])
    # Named as soon as they are chosen, each with its reason and a choice; the photo is fine.
    page.wait_for_selector("#file-report li.file-choice >> nth=2")
    lines = page.locator("#file-report li").all_inner_texts()
    assert len(lines) == 4
    unclean = tr("zh_CN", "{name}: this kind of file cannot be cleaned of hidden data "
                          "(only JPEG and PNG pictures can)")
    assert unclean.replace("{name}", "IMG_1234.HEIC") in lines[0]
    assert tr("zh_CN", filetypes.UNCLEAN_REASONS["heif"]) in lines[0]
    assert tr("zh_CN", filetypes.UNCLEAN_REASONS["video"]) in lines[1]
    assert unclean.replace("{name}", "holiday.jpg") in lines[2]
    assert CAMERA_NAME in lines[3] and "file-choice" not in (
        page.locator("#file-report li").nth(3).get_attribute("class") or "")
    # Nothing is chosen for the reporter: sending without a choice is refused, nothing sent.
    page.click("#submit-report")
    page.wait_for_function(
        "t => document.getElementById('form-error').textContent === t",
        arg=tr("zh_CN", "Choose for each file that cannot be cleaned whether to send it "
                        "uncleaned or to leave it out."))
    assert not browser.api_calls("POST", "/api/v1/submissions")
    assert counts(live)["Case"] == 0
    page.check("#file-report input[name=unclean-0][value=drop]")
    page.check("#file-report input[name=unclean-1][value=drop]")
    page.check("#file-report input[name=unclean-2][value=send]")
    page.click("#submit-report")
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
    assert "holiday.jpg" in page.inner_text("#receipt-panel")  # named as sent uncleaned
    found = metas(live)
    assert sorted(found) == ["文件-1.exe", "照片-2.jpg"]
    # The browser called the program image/jpeg; the bytes say what it is.
    assert found["文件-1.exe"]["type"] == "application/x-msdownload"
    assert found["文件-1.exe"]["cleaned"] is False
    assert found["照片-2.jpg"]["cleaned"] is True
    case = stored_case(live)
    with live.session() as session:
        for stored in session.scalars(select(StoredFile)):
            for meta in found.values():
                try:
                    content = open_stored_file(live, session, case.id, meta, stored)
                except Exception:  # noqa: BLE001 - this description belongs to the other file
                    continue
                if meta["name"] == "照片-2.jpg":
                    assert not has_gps(content)
                else:
                    assert content == EXE
    assert not browser.errors


def test_followup_evidence_numbered_after_the_case_files(live: LiveServer, browser: Browser,
                                                         tmp_path: Path) -> None:
    first = sealing.PlainFile(name="照片-1.jpg", type="image/jpeg", size=3,
                              read=lambda: [b"abc"])
    receipt, case_id = submit_from_python(live, [first])
    photo = tmp_path / "IMG_20261201_080000.jpg"
    photo.write_bytes(gps_jpeg())
    page = browser.page()
    page.goto("/followup")
    page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")
    page.wait_for_selector("#reply-form")
    page.set_input_files("#reply-files", str(photo))
    page.wait_for_selector("#reply-file-report li")
    page.click("#reply-send")
    page.wait_for_selector("#case-notice")
    assert sorted(metas(live)) == ["照片-1.jpg", "照片-2.jpg"]
    assert "IMG_20261201" not in page.inner_text("#files")
    assert not browser.errors


def test_without_javascript_uncleanable_files_are_named_then_left_out(
        live: LiveServer, browser: Browser, tmp_path: Path) -> None:
    heic = tmp_path / "IMG_1234.HEIC"
    heic.write_bytes(HEIC)
    photo = tmp_path / CAMERA_NAME
    photo.write_bytes(gps_jpeg())
    page = browser.page(javascript=False, locale="en-US")
    open_form(page, javascript=False)
    fill_report(page, [heic, photo])
    page.click("#submit-report")
    page.wait_for_selector("#refusal")
    refusal = page.text_content("#refusal")
    assert "IMG_1234.HEIC" in refusal and CAMERA_NAME not in refusal
    assert filetypes.UNCLEAN_REASONS["heif"] in refusal
    assert counts(live)["Case"] == 0
    # The text is still there; the reporter chooses, attaches again and sends.
    assert page.input_value("#f-unit") == "某机械厂"
    page.check("input[name=unclean][value=drop]")
    page.set_input_files("#f-files", [str(heic), str(photo)])
    page.click("#submit-report")
    page.wait_for_selector("#receipt-code")
    assert "IMG_1234.HEIC" in page.inner_text("#left-out")
    assert list(metas(live)) == ["photo-1.jpg"]


DETECT_MANY_JS = """
async (cases) => {
  const F = await import('/static/js/filetypes.js');
  const out = [];
  for (const {data, name} of cases) {
    const raw = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const t = await F.detectFile(new File([raw], name));
    out.push([t.kind, t.mime, t.ext, t.family, t.cleanable, t.reason]);
  }
  return out;
}
"""


def test_browser_agrees_on_mutated_heads(static_page: Any) -> None:
    """Every sample's head with bytes flipped or cut: the two detectors never disagree."""
    rng = random.Random(20261130)
    cases = []
    for data, name in samples().values():
        for _ in range(12):
            head = bytearray(data[:64])
            if head and rng.random() < 0.7:
                head[rng.randrange(len(head))] = rng.randrange(256)
            if rng.random() < 0.3:
                head = head[: rng.randrange(len(head) + 1)]
            cases.append((bytes(head), name))
    got = static_page.evaluate(DETECT_MANY_JS, [
        {"data": base64.b64encode(d).decode(), "name": n} for d, n in cases])
    for (data, name), answer in zip(cases, got, strict=True):
        expected = filetypes.detect(data, name)
        assert answer == [expected.kind, expected.mime, expected.ext, expected.family,
                          expected.cleanable, expected.reason_key], (data, name)
