"""Cheap anonymous requests must not make the server keep much (issue: one stamp, 256 MiB).

Each test replays one attack against the real app (loopback TestClient, real crypto) and
checks the figure it must hold: bytes a stamp buys, replies one follow-up session can add.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.client import solve_pow
from service.domain import pow, sealing
from service.domain.installation import get_installation
from service.domain.models import Case, FollowupQuota, SealedItem, StoredFile
from service.domain.sealing import PlainFile
from tests.conftest import fast_settings
from tests.domain.test_followup import _form, _receipt_from
from tests.factories import api_client, make_world, open_reporter_slot, with_token

MIB = 1024 * 1024
REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨管道泄漏无人处理。", "seen_at": "", "insider": "",
          "language": "zh_CN"}


@pytest.fixture
def settings(tmp_path):  # type: ignore[no-untyped-def]
    return fast_settings(tmp_path / "var", case_quota_items=45)


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _declared(client: TestClient, world, sizes: list[int]) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """An envelope declaring files of ``sizes`` bytes; their content is never read."""
    info = api_client(client).channels()
    files = [PlainFile(name=f"{i}.mp4", type="video/mp4", size=size, read=lambda: iter(()))
             for i, size in enumerate(sizes)]
    sealed = sealing.seal_submission(info["channels"][0],
                                     crypto.b64u_decode(info["installation"]["salt"]),
                                     world.settings.receipt_iterations, REPORT, None, files)
    return sealed.envelope


def _stamp_for(client: TestClient, declared: int) -> tuple[str, int]:
    challenge = client.get(f"/api/v1/pow?bytes={declared}").json()
    return solve_pow(challenge["challenge"], challenge["difficulty"]), challenge["difficulty"]


def test_one_stamp_cannot_open_a_20_by_200_mib_draft(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    envelope = _declared(client, world, [200 * MIB] * 20)
    stamp = api_client(client).stamp()
    answer = client.post("/api/v1/submissions", json={**envelope, "pow": stamp},
                         headers={"Accept-Language": "en"})
    # Before: 201, a draft that would accept 4000 MiB of chunks for one 4-bit stamp.
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "quota_exceeded" and "1024 MB" in error["message"]
    zh = client.post("/api/v1/submissions", json={**envelope, "pow": api_client(client).stamp()},
                     headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 413 and zh.json()["error"]["message"] != error["message"]
    assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_upload_stamp_work_grows_with_declared_size(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    base = world.settings.pow_difficulty
    envelope = _declared(client, world, [200 * MIB, 200 * MIB])
    declared = sum(f["stored_size"] for f in envelope["files"])
    # About 400 MiB is 25 times the 16 MiB allowance: five doublings, five more bits.
    assert pow.upload_difficulty(base, world.settings.pow_free_bytes, declared) == base + 5
    cheap = client.post("/api/v1/submissions", json={**envelope, "pow": api_client(client).stamp()})
    assert cheap.status_code == 400 and cheap.json()["error"]["code"] == "pow_invalid"
    assert session.scalar(select(func.count()).select_from(Case)) == 0
    stamp, difficulty = _stamp_for(client, declared)
    assert difficulty == base + 5
    created = client.post("/api/v1/submissions", json={**envelope, "pow": stamp})
    assert created.status_code == 201, created.text
    assert session.scalar(select(func.sum(StoredFile.stored_size))) == declared
    # Small uploads pay the base price only.
    assert client.get(f"/api/v1/pow?bytes={MIB}").json()["difficulty"] == base
    assert client.get("/api/v1/pow?bytes=-1").status_code == 400


def _session(client: TestClient, world, session):  # type: ignore[no-untyped-def]
    receipt = api_client(client).submit("acme", REPORT)
    keys = crypto.derive_receipt(receipt, get_installation(session).salt,
                                 world.settings.receipt_iterations)
    case = session.scalar(select(Case))

    def open_session() -> tuple[dict[str, str], bytes]:
        token = client.post("/api/v1/followup/session", json={
            "lookup_secret": crypto.b64u_encode(keys.lookup_secret),
            "pow": api_client(client).stamp()}).json()["token"]
        auth = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
        feed = client.get("/api/v1/followup", headers=auth).json()
        key = open_reporter_slot(feed, keys, case.id)
        return auth, key

    return case, open_session


def _big_reply(key: bytes, case_id: str) -> dict[str, str]:
    # About the largest reply the protocol allows (items are padded to at most 256 KiB).
    return sealing.seal_item_for_case(key, case_id, "reply", {"v": 1, "text": "x" * 250_000})


def _reply(key: bytes, case_id: str) -> dict[str, str]:
    return sealing.seal_item_for_case(key, case_id, "reply", {"v": 1, "text": "还在漏"})


def test_one_session_cannot_flood_the_case_with_replies(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                        session) -> None:
    case, open_session = _session(client, world, session)
    # What the submission itself stored counts too: the report and the identity item (a
    # stand-in when none was given, so every case has one).
    submitted = _reporter_items(session, case.id)
    assert submitted == 2
    auth, key = open_session()
    statuses = []
    for _ in range(30):
        statuses.append(client.post("/api/v1/followup/items", json=_big_reply(key, case.id),
                                    headers=auth))
    # Before: 30 of 30 accepted, 7.3 MiB (the review sent 200 in 4.4 s: 66.7 MiB of page).
    accepted = [r for r in statuses if r.status_code == 201]
    assert len(accepted) == world.settings.followup_quota_items == 20
    refused = statuses[20]
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert "20" in refused.json()["error"]["message"]
    replies = session.scalar(select(func.count()).select_from(SealedItem)
                             .where(SealedItem.kind == "reply"))
    assert replies == 20
    # The quota row names no case and dates nothing finer than the granularity.
    row = session.scalar(select(FollowupQuota))
    assert row.items == 20 and row.expires_at.timestamp() % 3600 == 0
    # A new session (a new stamp) may go on, until the case's own limit (45 items here).
    auth2, key2 = open_session()
    more = [client.post("/api/v1/followup/items", json=_reply(key2, case.id),
                        headers=auth2).status_code for _ in range(20)]
    assert more == [201] * 20
    auth3, key3 = open_session()
    last = [client.post("/api/v1/followup/items", json=_reply(key3, case.id),
                        headers=auth3) for _ in range(6)]
    room = 45 - submitted - 40
    assert [r.status_code for r in last] == [201] * room + [413] * (6 - room)
    assert "45" in last[room].json()["error"]["message"]
    assert _reporter_items(session, case.id) == 45


def _reporter_items(session, case_id: str) -> int:  # type: ignore[no-untyped-def]
    return int(session.scalar(select(func.count()).select_from(SealedItem)
                              .where(SealedItem.case_id == case_id,
                                     SealedItem.author == "reporter")))


def test_case_message_bytes_are_bounded(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    case, open_session = _session(client, world, session)
    app_settings = client.app.state.settings  # type: ignore[attr-defined]
    client.app.state.settings = replace(app_settings, case_quota_message_bytes=MIB)  # type: ignore[attr-defined]
    auth, key = open_session()
    codes = [client.post("/api/v1/followup/items", json=_big_reply(key, case.id),
                         headers=auth) for _ in range(6)]
    statuses = [r.status_code for r in codes]
    first_refused = statuses.index(413)
    assert statuses[first_refused:] == [413] * (len(statuses) - first_refused)
    assert "1 MB" in codes[first_refused].json()["error"]["message"]
    stored = session.scalar(select(func.sum(func.length(SealedItem.blob)))
                            .where(SealedItem.case_id == case.id))
    blob = len(crypto.b64u_decode(_big_reply(key, case.id)["blob"]))
    assert stored <= MIB < stored + blob


def _file_body(key: bytes, case_id: str, size: int) -> dict:  # type: ignore[type-arg]
    file_id, meta_id = crypto.new_id(), crypto.new_id()
    meta = {"name": "v.mp4", "type": "video/mp4", "size": size,
            "key": crypto.b64u_encode(crypto.new_key()),
            "prefix": crypto.b64u_encode(crypto.new_key()[:7]), "removed": [], "cleaned": False}
    stored, count = sealing.stored_layout(size)
    return {"file": {"id": file_id.hex(), "meta_item_id": meta_id.hex(), "stored_size": stored,
                     "chunk_count": count},
            "meta": {"id": meta_id.hex(), "blob": crypto.b64u_encode(crypto.seal_item(
                key, bytes.fromhex(case_id), meta_id, "file-meta", meta))}}


def test_a_big_follow_up_file_pays_for_its_size(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    case, open_session = _session(client, world, session)
    auth, key = open_session()
    small = _file_body(key, case.id, 100_000)
    assert client.post("/api/v1/followup/files", json=small, headers=auth).status_code == 201
    big = _file_body(key, case.id, 150 * MIB)
    # Before: 201 with no work at all, the session could then upload 150 MiB.
    refused = client.post("/api/v1/followup/files", json=big, headers=auth)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "pow_invalid"
    cheap = client.post("/api/v1/followup/files", headers=auth,
                        json={**big, "pow": api_client(client).stamp()})
    assert cheap.status_code == 400
    stamp, difficulty = _stamp_for(client, big["file"]["stored_size"])
    assert difficulty == world.settings.pow_difficulty + 4  # 150 MiB / 16 MiB: four doublings
    accepted = client.post("/api/v1/followup/files", json={**big, "pow": stamp}, headers=auth)
    assert accepted.status_code == 201, accepted.text
    # The session's byte quota (256 MiB) counts declared sizes: a second one is refused.
    again = _file_body(key, case.id, 150 * MIB)
    stamp, _ = _stamp_for(client, again["file"]["stored_size"])
    over = client.post("/api/v1/followup/files", json={**again, "pow": stamp}, headers=auth)
    assert over.status_code == 413 and "256 MB" in over.json()["error"]["message"]
    assert session.scalar(select(func.count()).select_from(StoredFile)) == 2


def test_upload_price_is_one_bit_per_doubling() -> None:
    free = 16 * MIB
    prices = [pow.upload_difficulty(18, free, n) for n in
              (0, free, free + 1, 2 * free, 2 * free + 1, 4 * free, 64 * free, 2**80)]
    assert prices == [18, 18, 19, 19, 20, 20, 24, pow.MAX_DIFFICULTY]


def test_the_no_javascript_reply_path_keeps_the_case_quota(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                           session) -> None:
    receipt = _receipt_from(client.post("/report", data=with_token(client, _form())).text)
    # Every no-JavaScript post carries the marker its form holds inside <noscript>.
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"})
    capability = re.search(r'name="capability" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    case = session.scalar(select(Case))
    # Room for two replies beside what the submission stored (report and identity item).
    limit = _reporter_items(session, case.id) + 2
    client.app.state.settings = replace(client.app.state.settings, case_quota_items=limit)  # type: ignore[attr-defined]
    answers = [client.post("/followup/reply", data={"case": case.id, "capability": capability,
                                                    "text": f"补充 {n}", "sealing": "noscript"})
               for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 413]
    assert f"已达上限（{limit} 项）" in answers[2].text and "<html" in answers[2].text
    replies = session.scalar(select(func.count()).select_from(SealedItem)
                             .where(SealedItem.kind == "reply"))
    assert replies == 2


def test_a_full_case_refuses_a_no_javascript_file_before_parsing_it(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                                   session) -> None:
    """The quota is checked before the stripper runs: a case with no room left costs the
    server no parsing, whatever the file. Before, the file was stripped first (a picture
    built of many tiny parts was walked, then refused as too complex) and only then counted."""
    receipt = _receipt_from(client.post("/report", data=with_token(client, _form())).text)
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"})
    capability = re.search(r'name="capability" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    case = session.scalar(select(Case))
    full = _reporter_items(session, case.id)
    client.app.state.settings = replace(client.app.state.settings, case_quota_items=full)  # type: ignore[attr-defined]
    # A "JPEG" of empty 4-byte comment segments: far more parts than the stripper walks.
    parts = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 20_000 + b"\xff\xd9"
    answer = client.post("/followup/reply", data={"case": case.id, "capability": capability,
                                                  "sealing": "noscript"},
                         files=[("files", ("photo.jpg", parts, "image/jpeg"))])
    assert answer.status_code == 413, answer.text[:300]
    assert f"已达上限（{full} 项）" in answer.text and "<html" in answer.text
    # Room for one more item, but not for the file's bytes: refused before parsing too.
    client.app.state.settings = replace(client.app.state.settings,  # type: ignore[attr-defined]
                                        case_quota_items=full + 5, case_quota_bytes=1024)
    answer = client.post("/followup/reply", data={"case": case.id, "capability": capability,
                                                  "sealing": "noscript"},
                         files=[("files", ("photo.jpg", parts, "image/jpeg"))])
    assert answer.status_code == 413, answer.text[:300]
    assert _reporter_items(session, case.id) == full
