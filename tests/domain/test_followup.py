"""The reporter's way back: JSON follow-up and the no-JavaScript pages."""

from __future__ import annotations

import io
import os
import re

import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.domain import sealing
from service.domain.installation import get_installation
from service.domain.models import Case, CaseEvent, SealedItem, StoredFile
from tests.factories import api_client, make_world, open_as, open_reporter_slot, with_token

REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨管道泄漏无人处理。", "seen_at": "", "insider": "",
          "language": "zh_CN"}


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _message(session, case_key: bytes, case: Case, text: str, question: bool = False) -> str:  # type: ignore[no-untyped-def]
    item = sealing.seal_item_for_case(case_key, case.id, "message", {"v": 1, "text": text,
                                                                      "question": question})
    session.add(SealedItem(id=item["id"], case_id=case.id, kind="message", author="reviewer",
                           blob=crypto.b64u_decode(item["blob"]), created_at=case.created_at))
    session.commit()
    return item["id"]


def _session_token(client: TestClient, lookup_secret: bytes) -> str:
    api = api_client(client)
    response = client.post("/api/v1/followup/session",
                           json={"lookup_secret": crypto.b64u_encode(lookup_secret),
                                 "pow": api.stamp()})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_json_followup_feed_reply_and_files(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    receipt = api_client(client).submit("acme", REPORT)
    salt = get_installation(session).salt
    keys = crypto.derive_receipt(receipt, salt, world.settings.receipt_iterations)
    case = session.scalar(select(Case))
    case_key, _ = open_as(world.reviewers[0].private_key, session, case.id)
    question = _message(session, case_key, case, "罐区具体在哪个位置？", question=True)
    token = _session_token(client, keys.lookup_secret)
    auth = {"Authorization": f"Bearer {token}"}
    feed = client.get("/api/v1/followup", headers=auth).json()
    assert feed["status"] == "new" and [e["kind"] for e in feed["events"]] == ["received"]
    key = open_reporter_slot(feed, keys, case.id)
    opened = {i["kind"]: crypto.open_item(key, bytes.fromhex(case.id), bytes.fromhex(i["id"]),
                                          i["kind"], crypto.b64u_decode(i["blob"]))
              for i in feed["items"]}
    assert opened["report"] == REPORT and opened["message"]["question"] is True
    # Reply, then add evidence in chunks.
    reply = sealing.seal_item_for_case(key, case.id, "reply",
                                       {"v": 1, "text": "东侧二号罐", "in_reply_to": question})
    assert client.post("/api/v1/followup/items", json=reply, headers=auth).status_code == 201
    again = client.post("/api/v1/followup/items", json=reply, headers=auth)
    assert again.status_code == 400
    data = b"photo" * 30000
    file_id, meta_id = crypto.new_id(), crypto.new_id()
    file_key, prefix = crypto.new_key(), crypto.new_key()[:7]
    meta = {"name": "p.bin", "type": "application/octet-stream", "size": len(data),
            "key": crypto.b64u_encode(file_key), "prefix": crypto.b64u_encode(prefix),
            "removed": [], "cleaned": False}
    stored, count = sealing.stored_layout(len(data))
    created = client.post("/api/v1/followup/files", headers=auth, json={
        "file": {"id": file_id.hex(), "meta_item_id": meta_id.hex(), "stored_size": stored,
                 "chunk_count": count},
        "meta": {"id": meta_id.hex(), "blob": crypto.b64u_encode(crypto.seal_item(
            key, bytes.fromhex(case.id), meta_id, "file-meta", meta))}})
    assert created.status_code == 201
    # Hidden until complete.
    assert not [f for f in client.get("/api/v1/followup", headers=auth).json()["files"]]
    chunks = list(crypto.seal_file(file_key, prefix, bytes.fromhex(case.id), file_id, [data],
                                   len(data)))
    base = f"/api/v1/followup/files/{file_id.hex()}"
    early = client.post(f"{base}/finish", headers=auth)
    assert early.status_code == 409
    for index, chunk in enumerate(chunks):
        assert client.put(f"{base}/chunks/{index}", content=chunk, headers=auth).status_code == 204
    assert client.post(f"{base}/finish", headers=auth).status_code == 200
    feed = client.get("/api/v1/followup", headers=auth).json()
    assert [f["id"] for f in feed["files"]] == [file_id.hex()]
    fetched = [client.get(f"{base}/chunks/{i}", headers=auth).content for i in range(count)]
    assert b"".join(crypto.open_file(file_key, prefix, bytes.fromhex(case.id), file_id, fetched,
                                     len(data))) == data
    # The reviewer reads the reply.
    _, items = open_as(world.reviewers[1].private_key, session, case.id)
    assert items["reply"][0]["text"] == "东侧二号罐"


def test_wrong_receipt_and_unknown_case_are_indistinguishable(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    api = api_client(client)
    api.submit("acme", REPORT)
    wrong = client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(b"\x00" * 32), "pow": api.stamp()})
    garbage = client.post("/api/v1/followup/session", json={
        "lookup_secret": "***", "pow": api.stamp()})
    assert wrong.status_code == garbage.status_code == 404
    assert wrong.json() == garbage.json()


def test_forged_and_expired_followup_tokens(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    from itsdangerous import URLSafeTimedSerializer

    receipt = api_client(client).submit("acme", REPORT)
    case = session.scalar(select(Case))
    forged = URLSafeTimedSerializer("not-our-key", salt="chuishao.followup").dumps({"case": case.id})
    for token in (forged, "", "x" * 600, "a.b.c"):
        response = client.get("/api/v1/followup", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "followup_expired"
    assert receipt


def _jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (32, 24), (200, 30, 30))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (31.0, 14.0, 5.0), 3: "E", 4: (121.0, 28.0, 7.0)}
    exif[0x010F] = "PhoneMaker"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _receipt_from(page: str) -> str:
    match = re.search(r'id="receipt-code">([\d ]+)<', page)
    assert match, page
    return match.group(1).replace(" ", "")


def _form(channel: str = "acme", **extra: str) -> dict[str, str]:
    data = {"channel": channel, "unit": "某机械厂 Ⅱ车间", "location": "冲压线",
            "category": "hazard", "description": "光电保护被拆除\r\n两周了。\u0000",
            "seen_at": "周一", "insider": "yes", "name": "", "contact": "",
            "sealing": "noscript"}
    data.update(extra)
    return data


def test_nojs_submit_seals_on_server_and_strips_gps(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    jpeg = _jpeg_with_gps()
    response = client.post("/report", data=with_token(client, _form(name="李四", keep_names="1", unclean="send")),
                           files=[("files", ("现场.jpg", jpeg, "image/jpeg")),
                                  ("files", ("notes.pdf", b"%PDF-1.4 fake", "application/pdf"))])
    assert response.status_code == 200, response.text
    receipt = _receipt_from(response.text)
    assert "notes.pdf" in response.text  # named as not cleanable
    assert "no-store" in response.headers["cache-control"]
    case = session.scalar(select(Case))
    assert case.sealed_on_server and case.ready
    case_key, items = open_as(world.reviewers[0].private_key, session, case.id)
    report = items["report"][0]
    assert report["unit"] == "某机械厂 Ⅱ车间"
    assert report["description"] == "光电保护被拆除\n两周了。"  # CRLF folded, NUL dropped
    assert items["identity"][0]["name"] == "李四"
    metas = {m["name"]: m for m in items["file-meta"]}
    assert metas["现场.jpg"]["cleaned"] and "EXIF (incl. GPS)" in metas["现场.jpg"]["removed"]
    assert metas["notes.pdf"]["cleaned"] is False
    jpeg_file = _open_file_by_name(session, case, case_key, items, "现场.jpg")
    image = Image.open(io.BytesIO(jpeg_file))
    assert 0x8825 not in image.getexif() and 0x010F not in image.getexif()
    # The same stored shape as the JavaScript path: the receipt opens the reporter slot.
    keys = crypto.derive_receipt(receipt, get_installation(session).salt,
                                 world.settings.receipt_iterations)
    assert open_as(keys, session, case.id)[1]["report"] == [report]


def _open_file_by_name(session, case, case_key, items, name):  # type: ignore[no-untyped-def]
    from service.domain.models import FileChunk

    meta_by_item = {}
    for item in session.scalars(select(SealedItem).where(SealedItem.kind == "file-meta")):
        meta_by_item[item.id] = crypto.open_item(case_key, bytes.fromhex(case.id),
                                                 bytes.fromhex(item.id), "file-meta", item.blob)
    for stored in session.scalars(select(StoredFile).where(StoredFile.case_id == case.id)):
        meta = meta_by_item[stored.meta_item_id]
        if meta["name"] != name:
            continue
        chunks = [c.data for c in session.scalars(select(FileChunk).where(
            FileChunk.file_id == stored.id).order_by(FileChunk.index))]
        return b"".join(crypto.open_file(crypto.b64u_decode(meta["key"]),
                                         crypto.b64u_decode(meta["prefix"]),
                                         bytes.fromhex(case.id), bytes.fromhex(stored.id),
                                         chunks, meta["size"]))
    raise AssertionError(name)


@pytest.mark.parametrize("form, message", [
    (_form(channel=""), "请选择举报渠道"),
    (_form(channel="no-such"), "该举报渠道不存在或已关闭"),
    (_form(unit=""), "请填写被举报单位"),
    (_form(description="   "), "请描述您看到的情况"),
    (_form(category="arson"), "请选择问题类型"),
    (_form(unit="厂" * 201), "有一项内容过长"),
])
def test_nojs_bad_forms_refused_clearly(client: TestClient, world, session, form, message) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/report", data=with_token(client, form), files=[("files", ("", b"", "application/octet-stream"))])
    assert response.status_code == 400
    assert message in response.text
    assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_nojs_damaged_picture_refused(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    broken = _jpeg_with_gps()[:40]
    response = client.post("/report", data=with_token(client, _form()), files=[("files", ("x.jpg", broken, "image/jpeg"))])
    assert response.status_code == 400 and "已损坏" in response.text
    assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_nojs_rate_limit_is_global_and_translated(client: TestClient, world, session, app) -> None:  # type: ignore[no-untyped-def]
    from service.domain.ratelimit import TokenBucket

    app.state.nojs_submissions = TokenBucket(1, burst=1)
    assert client.post("/report", data=with_token(client, _form())).status_code == 200
    refused = client.post("/report", data=with_token(client, _form()), headers={"Accept-Language": "en"})
    assert refused.status_code == 429
    assert "Too many requests right now" in refused.text
    assert session.scalar(select(func.count()).select_from(Case)) == 1


def test_nojs_followup_read_reply_and_download(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    receipt = _receipt_from(client.post("/report", data=with_token(client, _form())).text)
    case = session.scalar(select(Case))
    case_key, _ = open_as(world.reviewers[0].private_key, session, case.id)
    _message(session, case_key, case, "请补充照片。")
    assert len(receipt) == 21
    # The page's own grouping, and the 20 random digits alone (as a receipt given before the
    # check digit is typed): both open the case.
    legacy = client.post("/followup", data={"receipt": receipt[:20], "sealing": "noscript"})
    assert legacy.status_code == 200 and "请补充照片。" in legacy.text
    spaced = crypto.format_receipt(receipt)
    page = client.post("/followup", data={"receipt": spaced, "sealing": "noscript"})
    assert page.status_code == 200
    assert "请补充照片。" in page.text and "已收到，等待受理" in page.text
    assert receipt not in page.text  # the receipt is not echoed into the page
    capability = re.search(r'name="capability" value="([^"]+)"', page.text).group(1)
    reply = client.post("/followup/reply", data={"case": case.id, "capability": capability,
                                                  "text": "照片见附件", "sealing": "noscript"},
                        files=[("files", ("a.png", _png(), "image/png"))])
    assert reply.status_code == 200 and "您的回复已加密并发送" in reply.text
    _, items = open_as(world.reviewers[0].private_key, session, case.id)
    assert items["reply"][0]["text"] == "照片见附件"
    file_id = session.scalar(select(StoredFile.id).where(StoredFile.case_id == case.id))
    download = client.post("/followup/file", data={"case": case.id, "capability": capability,
                                                   "file": file_id})
    assert download.status_code == 200
    assert download.content.startswith(b"\x89PNG")
    assert "attachment" in download.headers["content-disposition"]
    # A capability for one case does not open another, nor survives tampering.
    bad = client.post("/followup/reply", data={"case": case.id, "capability": _flip(capability, 10),
                                               "text": "x", "sealing": "noscript"})
    assert bad.status_code == 401


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    return out.getvalue()


def test_nojs_wrong_receipt_same_as_unknown(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    client.post("/report", data=with_token(client, _form()))
    wrong = client.post("/followup", data={"receipt": "1234 5678 9012 3456 7890", "sealing": "noscript"})
    assert wrong.status_code == 404 and "没有与此回执码对应的举报" in wrong.text
    malformed = client.post("/followup", data={"receipt": "12345", "sealing": "noscript"})
    assert malformed.status_code == 400 and "回执码由 21 位数字组成" in malformed.text
    assert 'value="12345"' in malformed.text  # what was typed comes back
    typed = "123 456 789 012 345 678 901"  # its check digit is 7
    mistyped = client.post("/followup", data={"receipt": typed, "sealing": "noscript"})
    assert mistyped.status_code == 400 and "回执码中有一位数字输错了" in mistyped.text
    assert f'value="{typed}"' in mistyped.text
    as_json = client.post("/followup", data={"receipt": typed, "sealing": "noscript"},
                          headers={"accept": "application/json"})
    assert as_json.status_code == 400 and as_json.json()["error"]["code"] == "receipt_mistyped"
    fullwidth = client.post("/followup", data={"receipt": "１２３４５６７８９０１２３４５６７８９０", "sealing": "noscript"})
    assert fullwidth.status_code == 404  # normalized, then simply unknown


def test_a_mistyped_receipt_is_refused_before_anything_is_looked_up(client: TestClient) -> None:
    # No installation at all: a receipt that reached a look-up would be told "not set up".
    typed = "123 456 789 012 345 678 901"
    mistyped = client.post("/followup", data={"receipt": typed, "sealing": "noscript"})
    assert mistyped.status_code == 400 and "回执码中有一位数字输错了" in mistyped.text
    claim = client.post("/followup/claim", data={"receipt": typed, "sealing": "noscript",
                                                 "reward": "x"})
    assert claim.status_code == 400 and "回执码中有一位数字输错了" in claim.text
    checked = "123 456 789 012 345 678 907"
    assert client.post("/followup", data={"receipt": checked,
                                          "sealing": "noscript"}).status_code == 503


def test_received_event_shares_the_submission_time(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    client.post("/report", data=with_token(client, _form()))
    case = session.scalar(select(Case))
    event = session.scalar(select(CaseEvent))
    assert event.kind == "received" and event.created_at == case.created_at


def _flip(text: str, at: int) -> str:
    """The same text with one character certainly changed."""
    return text[:at] + ("B" if text[at] == "A" else "A") + text[at + 1:]


def test_a_refused_attempt_still_uses_up_its_stamp(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    api = api_client(client)
    api.submit("acme", REPORT)
    stamp = api.stamp()
    body = {"lookup_secret": crypto.b64u_encode(b"\x01" * 32), "pow": stamp}
    first = client.post("/api/v1/followup/session", json=body)
    assert first.status_code == 404
    again = client.post("/api/v1/followup/session", json=body)
    assert again.status_code == 400 and again.json()["error"]["code"] == "pow_invalid"


def test_nojs_case_page_says_what_was_removed_and_what_cannot_be_read(
        client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    # The page once showed "hidden data removed" only, and an empty line for a message that
    # would not open, where the JavaScript page says it could not be decrypted.
    sent = client.post("/report", data=with_token(client, _form()),
                       files=[("files", ("现场.jpg", _jpeg_with_gps(), "image/jpeg"))])
    receipt = _receipt_from(sent.text)
    case = session.scalar(select(Case))
    _message(session, os.urandom(32), case, "sealed under another key")
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"}).text
    assert "照片-1.jpg：已删除拍摄地点（GPS）、相机型号、拍摄时间" in page
    assert '<p class="text error">此内容无法解密。</p>' in page
    assert "sealed under another key" not in page
