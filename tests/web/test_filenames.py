"""File names and formats that identify (issue 10, section 7), on the server's path: neutral
names by default, types judged by their bytes, files that cannot be cleaned named to the
reporter before anything is sealed."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.client import plain_file
from service.domain import filetypes
from service.domain.models import Case, FileChunk, SealedItem, StoredFile
from tests.factories import api_client, make_world, open_as, with_token

CAMERA_NAME = "IMG_20261130_221503.jpg"


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def gps_jpeg() -> bytes:
    image = Image.new("RGB", (16, 16), (10, 10, 200))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (31.0, 14.0, 5.0), 3: "E", 4: (121.0, 28.0, 7.0)}
    exif[0x9003] = "2026:11:30 22:15:03"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def iso_file(major: bytes, *compatible: bytes, body: bytes = b"") -> bytes:
    brands = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands + body


# A HEIC still as an iPhone writes it: ftyp heic, then boxes holding EXIF with the position.
HEIC = iso_file(b"heic", b"mif1", b"heic", body=b"\x00\x00\x00\x30meta" + b"Exif\x00\x00MM\x00*"
                + b"GPSLatitude 31/1 14/1 5/1" + b"\x00" * 8)
MP4 = iso_file(b"isom", b"isom", b"iso2", b"avc1", b"mp41", body=b"\x00\x00\x00\x08free")
MOV = iso_file(b"qt  ", b"qt  ", body=b"\x00\x00\x00\x08wide")
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64 + b"This program"


@pytest.mark.parametrize(("data", "name", "kind", "mime", "ext", "cleanable"), [
    (gps_jpeg(), "x.pdf", "jpeg", "image/jpeg", "jpg", True),
    (HEIC, "IMG_1234.HEIC", "heif", "image/heic", "heic", False),
    (iso_file(b"mif1", b"mif1", b"heic"), "a", "heif", "image/heic", "heic", False),
    (iso_file(b"avif", b"mif1", b"avif"), "a", "avif", "image/avif", "avif", False),
    (MP4, "VID_20261130.mp4", "mp4", "video/mp4", "mp4", False),
    (MOV, "IMG_0001.MOV", "mov", "video/quicktime", "mov", False),
    (EXE, "photo.jpg", "exe", "application/x-msdownload", "exe", False),
    (b"%PDF-1.7\n%\xe2\xe3", "scan.jpg", "pdf", "application/pdf", "pdf", False),
    ("值班记录：\n22:00 无人巡检".encode(), "notes.jpg", "text", "text/plain", "txt", False),
    (b"\x00\x01\x02\x03garbage", "x.png", "other", "application/octet-stream", "bin", False),
    (b"PK\x03\x04" + b"\x00" * 26 + b"word/document.xml", "a.zip", "docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", False),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "old.xls", "ole",
     "application/x-ole-storage", "xls", False),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "old.jpg", "ole",
     "application/x-ole-storage", "doc", False),
])
def test_type_comes_from_the_bytes(data: bytes, name: str, kind: str, mime: str, ext: str,
                                   cleanable: bool) -> None:
    found = filetypes.detect(data, name)
    assert (found.kind, found.mime, found.ext, found.cleanable) == (kind, mime, ext, cleanable)


def test_text_cut_inside_a_character_is_still_text() -> None:
    data = "安全".encode() * (filetypes.HEAD_BYTES // 6 + 10)
    assert filetypes.HEAD_BYTES % 3  # so the head ends inside a three-byte character
    assert filetypes.detect(data).kind == "text"
    # A whole file that ends inside a character is not text.
    assert filetypes.detect(data[: filetypes.HEAD_BYTES]).kind == "other"


def _form(**extra: str) -> dict[str, str]:
    data = {"channel": "acme", "unit": "某厂", "location": "", "category": "hazard",
            "description": "冲压机光电保护被拆除。", "seen_at": "", "insider": "",
            "sealing": "noscript"}
    data.update(extra)
    return data


def _metas(world, session) -> dict[str, dict]:  # type: ignore[no-untyped-def,type-arg]
    case = session.scalar(select(Case))
    _, items = open_as(world.reviewers[0].private_key, session, case.id)
    return {m["name"]: m for m in items.get("file-meta", [])}


def _content(session, case_id: str, meta: dict) -> bytes:  # type: ignore[no-untyped-def,type-arg]
    for file in session.scalars(select(StoredFile).where(StoredFile.case_id == case_id)):
        chunks = [c.data for c in session.scalars(select(FileChunk).where(
            FileChunk.file_id == file.id).order_by(FileChunk.index))]
        try:
            return b"".join(crypto.open_file(
                crypto.b64u_decode(meta["key"]), crypto.b64u_decode(meta["prefix"]),
                bytes.fromhex(case_id), bytes.fromhex(file.id), chunks, meta["size"]))
        except crypto.OpenError:
            continue
    raise AssertionError("no stored file opens with this description")


def test_camera_names_do_not_reach_reviewers(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/report", data=with_token(client, _form()), files=[
        ("files", (CAMERA_NAME, gps_jpeg(), "image/jpeg")),
        ("files", ("IMG_20261130_221509.jpg", gps_jpeg(), "image/jpeg"))])
    assert response.status_code == 200, response.text
    metas = _metas(world, session)
    assert sorted(metas) == ["照片-1.jpg", "照片-2.jpg"]
    assert all(m["type"] == "image/jpeg" and m["cleaned"] for m in metas.values())
    # Nowhere in what reviewers can open: not the description, not the report.
    case = session.scalar(select(Case))
    _, items = open_as(world.reviewers[0].private_key, session, case.id)
    assert "20261130" not in repr(items)


def test_an_english_page_names_in_english(client: TestClient,  # type: ignore[no-untyped-def]
                                                                     world, session) -> None:
    client.post("/report", data=with_token(client, _form()), headers={"Accept-Language": "en"},
                files=[("files", (CAMERA_NAME, gps_jpeg(), "image/jpeg"))])
    assert list(_metas(world, session)) == ["photo-1.jpg"]


def test_the_reporter_may_keep_the_original_name(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/report", data=with_token(client, _form(keep_names="1")),
                           files=[("files", (CAMERA_NAME, gps_jpeg(), "image/jpeg"))])
    assert response.status_code == 200
    assert list(_metas(world, session)) == [CAMERA_NAME]


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("IMG_1234.HEIC", HEIC, "HEIC/HEIF 照片保留拍摄地点和时间"),
    ("VID_20261130.mp4", MP4, "视频保留拍摄地点"),
    ("IMG_0001.MOV", MOV, "视频保留拍摄地点"),
    ("holiday.jpg", EXE, ""),
])
def test_uncleanable_files_are_named_before_anything_is_sealed(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                               session, name, data,
                                                               reason) -> None:
    refused = client.post("/report", data=with_token(client, _form()),
                          files=[("files", (name, data, "image/jpeg"))])
    assert refused.status_code == 400
    assert name in refused.text and "以下文件无法清除隐藏信息" in refused.text
    assert reason in refused.text
    assert "冲压机光电保护被拆除。" in refused.text  # the text comes back, nothing is lost
    assert session.scalar(select(func.count()).select_from(Case)) == 0
    assert session.scalar(select(func.count()).select_from(SealedItem)) == 0


def test_uncleanable_file_left_out_at_the_reporters_choice(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                           session) -> None:
    response = client.post("/report", data=with_token(client, _form(unclean="drop")), files=[
        ("files", ("IMG_1234.HEIC", HEIC, "image/heic")),
        ("files", (CAMERA_NAME, gps_jpeg(), "image/jpeg"))])
    assert response.status_code == 200
    left = re.search(r'<ul id="left-out">(.*?)</ul>', response.text, re.S)
    assert left and "IMG_1234.HEIC" in left.group(1)
    assert list(_metas(world, session)) == ["照片-1.jpg"]
    assert session.scalar(select(func.count()).select_from(StoredFile)) == 1


def test_uncleanable_file_sent_as_it_is_is_flagged(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/report", data=with_token(client, _form(unclean="send")), files=[
        ("files", ("IMG_1234.HEIC", HEIC, "image/jpeg")),
        ("files", ("holiday.jpg", EXE, "image/jpeg"))])
    assert response.status_code == 200
    assert "IMG_1234.HEIC" in response.text and "holiday.jpg" in response.text  # named as unclean
    metas = _metas(world, session)
    assert sorted(metas) == ["文件-2.exe", "照片-1.heic"]
    heic, exe = metas["照片-1.heic"], metas["文件-2.exe"]
    # The browser said image/jpeg for both; the bytes say otherwise, and nothing claims cleaning.
    assert heic["type"] == "image/heic" and heic["cleaned"] is False and heic["removed"] == []
    assert exe["type"] == "application/x-msdownload" and exe["cleaned"] is False
    case = session.scalar(select(Case))
    assert _content(session, case.id, heic) == HEIC


def test_followup_evidence_is_numbered_after_what_the_case_holds(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                                 session) -> None:
    receipt = re.search(r'id="receipt-code">([\d ]+)<', client.post("/report", data=with_token(client, _form()), files=[("files", (CAMERA_NAME, gps_jpeg(), "image/jpeg"))],
    ).text).group(1)
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"}).text
    case = session.scalar(select(Case))
    capability = re.search(r'name="capability" value="([^"]+)"', page).group(1)
    form = {"case": case.id, "capability": capability, "sealing": "noscript", "text": "补充"}
    refused = client.post("/followup/reply", data=form,
                          files=[("files", ("VID_20261201.mp4", MP4, "video/mp4"))])
    assert refused.status_code == 400 and "VID_20261201.mp4" in refused.text
    assert ">补充</textarea>" in refused.text  # the reply comes back, not sent
    _, items = open_as(world.reviewers[0].private_key, session, case.id)
    assert "reply" not in items
    done = client.post("/followup/reply", data={**form, "unclean": "send"},
                       files=[("files", ("IMG_20261201_080000.jpg", gps_jpeg(), "image/jpeg")),
                              ("files", ("VID_20261201.mp4", MP4, "video/mp4"))])
    assert done.status_code == 200
    assert sorted(_metas(world, session)) == ["照片-1.jpg", "照片-2.jpg", "视频-3.mp4"]


def test_the_python_client_names_neutrally(tmp_path: Path, client: TestClient, world,  # type: ignore[no-untyped-def]
                                           session) -> None:
    path = tmp_path / CAMERA_NAME
    path.write_bytes(gps_jpeg())
    renamed = tmp_path / "report.jpg"
    renamed.write_bytes(EXE)
    photo, program = plain_file(path, 1), plain_file(renamed, 2)
    assert (photo.name, photo.type, photo.cleaned) == ("photo-1.jpg", "image/jpeg", True)
    assert (program.name, program.type, program.cleaned) == (
        "file-2.exe", "application/x-msdownload", False)
    assert plain_file(path, 1, keep_name=True).name == CAMERA_NAME
    api_client(client).submit("acme", {
        "v": 1, "unit": "u", "location": "", "category": "hazard", "description": "d",
        "seen_at": "", "insider": "", "language": "zh_CN"}, files=[photo])
    assert list(_metas(world, session)) == ["photo-1.jpg"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.text(max_size=20))
def test_detection_never_fails_and_only_pictures_count_as_cleanable(data: bytes,
                                                                    name: str) -> None:
    found = filetypes.detect(data, name)
    assert found.cleanable == (data[:2] == b"\xff\xd8" or data[:4] == b"\x89PNG")
    assert found.ext and found.ext.isascii() and found.ext.isalnum()
    assert found.family in filetypes.FAMILY_NAMES
