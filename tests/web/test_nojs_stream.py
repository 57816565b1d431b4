"""The no-JavaScript form streams its files: the same per-file limit as the JavaScript path,
photos (cleaned whole) bounded on their own, and every size refusal names its limit.

The limits are made small here (the defaults are 200 MB per file, 50 MB of photos, 1 GiB
per form) so that crossing them costs the test little; tests/browser/test_nojs_upload.py
sends a 60 MB video with the defaults."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.domain.models import Case, FileChunk, StoredFile
from service.platform.settings import Settings
from service.platform.spool import Spool
from tests.conftest import fast_settings
from tests.factories import make_world, with_token

MB = 1024 * 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "var", max_file_bytes=6 * MB, max_nojs_held_bytes=1 * MB,
                         max_nojs_bytes=16 * MB, body_idle_seconds=1)


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _form(**extra: str) -> dict[str, str]:
    data = {"channel": "acme", "unit": "某机械厂", "location": "冲压线", "category": "hazard",
            "description": "光电保护被拆除，录像为证", "seen_at": "周一", "insider": "yes",
            "sealing": "noscript"}
    data.update(extra)
    return data


def _video(size: int) -> bytes:
    # An MP4 by its first bytes (filetypes.detect), then bytes that do not compress.
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(size - 24)


def _jpeg(noise: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((noise, noise), 80).convert("RGB").save(out, "JPEG", quality=100)
    return out.getvalue()


def _receipt(page: str) -> str:
    match = re.search(r'id="receipt-code">([\d ]+)<', page)
    assert match, page
    return match.group(1).replace(" ", "")


def _counts(session) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(Case)) or 0,
            session.scalar(select(func.count()).select_from(StoredFile)) or 0,
            session.scalar(select(func.count()).select_from(FileChunk)) or 0)


def test_a_video_larger_than_the_photo_bound_streams_to_one_case(
        client: TestClient, world, settings, session) -> None:  # type: ignore[no-untyped-def]
    video = _video(5 * MB)  # five times what photos may hold in memory; below the file limit
    sent = client.post("/report", data=with_token(client, _form(unclean="send")),
                       files=[("files", ("clip.mp4", video, "video/mp4"))])
    assert sent.status_code == 200 and sent.url.path == "/report/sent"
    receipt = _receipt(sent.text)
    cases, files, _ = _counts(session)
    assert (cases, files) == (1, 1)
    # The reporter reads it back, byte for byte, through the no-JavaScript follow-up.
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"})
    capability = re.search(r'name="capability" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    stored = session.scalar(select(StoredFile))
    case = session.scalar(select(Case))
    back = client.post("/followup/file", data={"case": case.id, "capability": capability,
                                               "file": stored.id})
    assert back.status_code == 200 and back.content == video
    # A reply streams the same way (the follow-up page has the same limit).
    more = _video(3 * MB)
    reply = client.post("/followup/reply", data={"case": case.id, "capability": capability,
                                                  "text": "", "unclean": "send",
                                                  "sealing": "noscript"},
                        files=[("files", ("more.mp4", more, "video/mp4"))])
    assert reply.status_code == 200, reply.text
    assert _counts(session)[:2] == (1, 2)
    # Nothing waits on disk once the requests are over.
    assert os.listdir(settings.data_dir / "spool") == []


def test_a_file_over_the_limit_is_refused_by_name_with_the_form_filled(
        client: TestClient, world, settings, session) -> None:  # type: ignore[no-untyped-def]
    video = _video(settings.max_file_bytes + 1)
    refused = client.post("/report", data=with_token(client, _form(unclean="send")),
                          files=[("files", ("small.mp4", _video(MB), "video/mp4")),
                                 ("files", ("clip.mp4", video, "video/mp4"))],
                          headers={"Accept-Language": "en"})
    assert refused.status_code == 413
    assert "A file is larger than the limit of 6 MB." in refused.text
    assert "光电保护被拆除，录像为证" in refused.text  # what was typed comes back
    zh = client.post("/report", data=with_token(client, _form(unclean="send")),
                     files=[("files", ("clip.mp4", video, "video/mp4"))])
    assert zh.status_code == 413 and "有文件超过了 6 MB 的大小限制" in zh.text
    # No half-case: no case, no file, no chunk, nothing on disk.
    assert _counts(session) == (0, 0, 0)
    assert os.listdir(settings.data_dir / "spool") == []
    # The form token was not spent: the same form, without the large file, goes through.
    token = re.search(r'name="form_token" value="([^"]+)"', zh.text).group(1)  # type: ignore[union-attr]
    sent = client.post("/report", data={**_form(unclean="send"), "form_token": token},
                       files=[("files", ("small.mp4", _video(MB), "video/mp4"))])
    assert sent.url.path == "/report/sent"
    assert _counts(session)[:2] == (1, 1)


def test_photos_over_their_bound_are_refused_naming_it(
        client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    photo = _jpeg(400)
    count = MB // len(photo) + 1  # together just over the 1 MB photos may hold
    refused = client.post("/report", data=with_token(client, _form()),
                          files=[("files", (f"p{n}.jpg", photo, "image/jpeg"))
                                 for n in range(count)],
                          headers={"Accept-Language": "en"})
    assert refused.status_code == 413
    assert "the photos of one report may be 1 MB together at most" in refused.text
    assert "光电保护被拆除，录像为证" in refused.text
    zh = client.post("/report", data=with_token(client, _form()),
                     files=[("files", (f"p{n}.jpg", photo, "image/jpeg")) for n in range(count)])
    assert "一次提交的照片合计最多 1 MB" in zh.text
    assert _counts(session) == (0, 0, 0)
    # One photo under the bound is cleaned and sent.
    sent = client.post("/report", data=with_token(client, _form()),
                       files=[("files", ("p.jpg", photo, "image/jpeg"))])
    assert sent.url.path == "/report/sent"
    assert _counts(session)[:2] == (1, 1)


def test_a_form_over_the_whole_limit_is_refused_naming_it(
        client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    big = _video(17 * MB)  # over the 16 MB form (and the 6 MB file)
    refused = client.post("/report", data=with_token(client, _form(unclean="send")),
                          files=[("files", ("big.mp4", big, "video/mp4"))])
    assert refused.status_code == 413 and "您提交的内容超过了 16 MB 的上限" in refused.text
    assert _counts(session) == (0, 0, 0)


def test_the_spool_keeps_no_plaintext_on_disk(tmp_path: Path) -> None:
    marker = b"GPS 31.2304N 121.4737E " * 10_000
    spool = Spool(tmp_path)
    for start in range(0, len(marker), 1000):
        spool.write(marker[start:start + 1000])
    spool.finish()
    raw = spool._file
    assert raw is not None
    raw.seek(0)
    on_disk = raw.read()
    assert b"GPS 31.2304N" not in on_disk and len(on_disk) > len(marker)
    assert b"".join(spool.read()) == marker
    # A piece changed on disk is refused, not returned.
    raw.seek(100)
    raw.write(b"\x00" if on_disk[100:101] != b"\x00" else b"\x01")
    with pytest.raises(crypto.OpenError):
        b"".join(spool.read())
    spool.close()
    assert os.listdir(tmp_path) == []


def _open_spools(settings: Settings) -> list[str]:
    """Spool files this process holds open (unnamed: only a descriptor shows one)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(settings.data_dir / "spool")):
            found.append(target)
    return found


def _cut_off_post(client: TestClient, app: Any, settings: Settings,
                  end: str) -> tuple[list[dict[str, Any]], list[str]]:
    """A no-JavaScript post whose video stops half-way: the client goes (``disconnect``) or
    goes quiet (``stall``). The messages answered, and the spools open at the cut."""
    token = with_token(client, {})["form_token"]
    boundary = "----cut"
    fields = {**_form(unclean="send"), "form_token": token}
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                   f"{v}\r\n" for k, v in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
             'filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n')
    video = _video(4 * MB)
    pieces = [head.encode()] + [video[i:i + 65536] for i in range(0, 2 * MB, 65536)]
    sent: list[dict[str, Any]] = []
    at_cut: list[str] = []

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            if pieces:
                return {"type": "http.request", "body": pieces.pop(0), "more_body": True}
            at_cut.extend(_open_spools(settings))
            if end == "stall":
                await anyio.sleep(30)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        length = len(head) + len(video) + 64
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                   "method": "POST", "scheme": "https", "path": "/report",
                   "raw_path": b"/report", "root_path": "", "query_string": b"",
                   "server": ("testserver", 443), "client": None, "app": app,
                   "headers": [(b"host", b"testserver"),
                               (b"content-type", f"multipart/form-data; boundary={boundary}"
                                .encode()),
                               (b"content-length", str(length).encode())]}, receive, send)

    client.portal.call(run)  # type: ignore[union-attr]
    return sent, at_cut


@pytest.mark.parametrize("end", ["disconnect", "stall"])
def test_a_post_cut_off_mid_file_leaves_nothing_behind(
        client: TestClient, app, world, settings, session, end: str) -> None:  # type: ignore[no-untyped-def]
    sent, at_cut = _cut_off_post(client, app, settings, end)
    assert len(at_cut) == 1  # the video was waiting on disk, sealed, when the client went
    if end == "stall":
        # Cut off after body_idle_seconds, in words; nothing was stored.
        assert sent[0]["status"] == 408
        body = b"".join(m.get("body", b"") for m in sent).decode()
        assert "上传太慢或已中断" in body, body[:500]
    else:
        assert sent == []  # nobody left to answer
    assert _counts(session) == (0, 0, 0)
    assert _open_spools(settings) == []


def test_a_form_cut_short_is_refused_and_stores_nothing(
        client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    token = with_token(client, {})["form_token"]
    body = "".join(f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in {**_form(unclean="send"), "form_token": token}.items())
    body += '--b\r\nContent-Disposition: form-data; name="files"; filename="a.mp4"\r\n\r\n'
    cut = body.encode() + _video(MB)  # no closing boundary: the file may be cut anywhere
    refused = client.post("/report", content=cut,
                          headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert refused.status_code == 400 and "无法读取表单" in refused.text
    assert _counts(session) == (0, 0, 0)
