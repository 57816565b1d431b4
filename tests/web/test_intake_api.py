"""The reporter's JSON API end to end, with the real crypto on both sides."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.client import ApiError
from service.domain import intake
from service.domain.models import Case, FileChunk, KeySlot, SealedItem, StoredFile
from service.domain.sealing import PlainFile, seal_submission
from tests.factories import api_client, make_reviewer, make_world, open_as

REPORT = {"v": 1, "unit": "某机械制造有限公司", "location": "三号车间", "category": "hazard",
          "description": "冲压机光电保护装置被拆除。", "seen_at": "昨天", "insider": "yes",
          "language": "zh_CN"}


def plain(data: bytes, name: str = "a.bin") -> PlainFile:
    return PlainFile(name=name, type="application/octet-stream", size=len(data),
                     read=lambda: [data])


def counts(session) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(session.scalar(select(func.count()).select_from(model))
                 for model in (Case, KeySlot, SealedItem, StoredFile, FileChunk))


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def test_channels_publish_keys_and_fingerprint(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    data = client.get("/api/v1/channels").json()
    channel = data["channels"][0]
    assert channel["id"] == "acme"
    holders = [r["holder"] for r in channel["recipients"]]
    assert holders == ["reviewer", "reviewer", "recovery"]
    # The fingerprint covers the key ids of both kinds (PROTOCOL 17.5).
    key_ids = [bytes.fromhex(r[field]) for r in channel["recipients"]
               for field in ("key_id", "xwing_key_id") if field in r]
    assert len(key_ids) == 4
    assert channel["fingerprint"] == crypto.keyset_fingerprint(key_ids).hex()
    recovery = channel["recipients"][-1]
    xwing = crypto.b64u_decode(recovery["xwing_public_key"])
    assert len(xwing) == 1216 and crypto.key_id(xwing).hex() == recovery["xwing_key_id"]
    assert "xwing_key_id" not in channel["recipients"][0]  # reviewers: X25519 only, for now
    assert data["suites"] == [crypto.SUITE, crypto.SUITE_V2]
    assert data["installation"]["receipt_iterations"] == world.settings.receipt_iterations


def test_submit_and_open_as_reviewer_and_recovery(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    receipt = api_client(client).submit("acme", REPORT, {"v": 1, "name": "张三", "contact": ""})
    assert len(receipt) == 21 and receipt.isdigit() and crypto.damm_check_digit(receipt) == "0"
    case = session.scalar(select(Case))
    assert case.ready and not case.sealed_on_server and case.status == "new"
    # Coarsened to the hour, shared by every object of the submission.
    assert case.created_at.minute == 0 and case.created_at.second == 0
    assert {i.created_at for i in session.scalars(select(SealedItem))} == {case.created_at}
    for private in [r.private_key for r in world.reviewers]:
        _, items = open_as(private, session, case.id)
        assert items["report"] == [REPORT]
        assert items["identity"][0]["name"] == "张三"
    # The recovery key has an X-Wing part: its slot is v2.
    _, items = open_as(world.recovery_private, session, case.id,
                       xwing_seed=world.recovery_xwing_seed)
    assert items["report"] == [REPORT]
    slots = {slot.holder: slot.suite for slot in session.scalars(select(KeySlot))}
    assert slots == {"reviewer": crypto.SUITE, "recovery": crypto.SUITE_V2,
                     "reporter": crypto.SUITE_V2}
    assert case.classical_only  # the reviewers' keys are X25519 only
    # The reporter's own slot opens with the X-Wing key derived from the receipt.
    keys = crypto.derive_receipt(receipt, world_salt(session), world.settings.receipt_iterations)
    assert case.lookup_hash == keys.lookup_hash.hex()
    _, items = open_as(keys, session, case.id)
    assert items["report"] == [REPORT]


def world_salt(session) -> bytes:  # type: ignore[no-untyped-def]
    from service.domain.installation import get_installation

    return get_installation(session).salt


def test_files_upload_in_chunks_and_decrypt(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    big = os.urandom(3 * 65536 + 123)
    small = b"evidence"
    receipt = api_client(client).submit("acme", REPORT, None, [plain(big, "big.bin"),
                                                               plain(small, "s.txt")])
    assert receipt
    case = session.scalar(select(Case))
    assert case.ready
    case_key, items = open_as(world.reviewers[0].private_key, session, case.id)
    for stored in session.scalars(select(StoredFile)):
        assert stored.complete
        chunks = [c.data for c in session.scalars(select(FileChunk).where(
            FileChunk.file_id == stored.id).order_by(FileChunk.index))]
        for candidate in items["file-meta"]:
            try:
                content = b"".join(crypto.open_file(
                    crypto.b64u_decode(candidate["key"]), crypto.b64u_decode(candidate["prefix"]),
                    bytes.fromhex(case.id), bytes.fromhex(stored.id), chunks, candidate["size"]))
            except crypto.OpenError:
                continue
            assert content == (big if candidate["name"] == "big.bin" else small)
            break
        else:
            pytest.fail("no file-meta opens this file")


def _draft(client: TestClient, world, data: bytes):  # type: ignore[no-untyped-def]
    api = api_client(client)
    info = api.channels()
    sealed = seal_submission(info["channels"][0], crypto.b64u_decode(info["installation"]["salt"]),
                             world.settings.receipt_iterations, REPORT, None, [plain(data)])
    created = api._call("POST", "/api/v1/submissions", {**sealed.envelope, "pow": api.stamp()})
    return api, sealed, created


def test_interrupted_upload_resumes(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api, sealed, created = _draft(client, world, os.urandom(5 * 65536))
    case_id, token = created["case_id"], created["upload_token"]
    assert created["ready"] is False
    spec = sealed.envelope["files"][0]
    chunks = list(sealed.chunks[spec["id"]]())
    base = f"/api/v1/submissions/{case_id}"
    for index in (0, 2):
        api._call("PUT", f"{base}/files/{spec['id']}/chunks/{index}", raw=chunks[index], token=token)
    # Not visible to anyone yet; finishing now is refused.
    assert not session.get(Case, case_id).ready
    with pytest.raises(ApiError) as refused:
        api._call("POST", f"{base}/finish", {}, token=token)
    assert refused.value.code == "upload_incomplete"
    status = api._call("GET", base, token=token)
    assert status["files"][0]["received"] == [0, 2]
    for index in range(len(chunks)):
        if index not in status["files"][0]["received"]:
            api._call("PUT", f"{base}/files/{spec['id']}/chunks/{index}", raw=chunks[index],
                      token=token)
    api._call("POST", f"{base}/finish", {}, token=token)
    session.expire_all()
    assert session.get(Case, case_id).ready
    # The upload token dies with the finish.
    with pytest.raises(ApiError) as gone:
        api._call("GET", base, token=token)
    assert gone.value.status == 404


def test_discard_removes_everything(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    before = counts(session)
    api, sealed, created = _draft(client, world, os.urandom(70000))
    spec = sealed.envelope["files"][0]
    first = next(sealed.chunks[spec["id"]]())
    base = f"/api/v1/submissions/{created['case_id']}"
    api._call("PUT", f"{base}/files/{spec['id']}/chunks/0", raw=first,
              token=created["upload_token"])
    api._call("DELETE", base, token=created["upload_token"])
    session.expire_all()
    assert counts(session) == before


def test_expired_drafts_are_purged_whole(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    before = counts(session)
    _draft(client, world, os.urandom(1000))
    assert counts(session) != before
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=world.settings.draft_hours + 1)
    assert intake.purge_expired(session, later) == 1
    assert counts(session) == before


def _envelope(client: TestClient, world):  # type: ignore[no-untyped-def]
    api = api_client(client)
    info = api.channels()
    sealed = seal_submission(info["channels"][0], crypto.b64u_decode(info["installation"]["salt"]),
                             world.settings.receipt_iterations, REPORT, None, [])
    return api, sealed.envelope


@pytest.mark.parametrize("mutate, status, code", [
    (lambda e: e.update(channel="nope"), 400, "unknown_channel"),
    (lambda e: e["slots"].pop(0), 409, "keys_changed"),
    (lambda e: e.update(case_id="XYZ"), 400, "invalid"),
    (lambda e: e.update(lookup_hash="00"), 400, "invalid"),
    (lambda e: e["items"][0].update(blob=e["items"][0]["blob"][:-8]), 400, "invalid"),
    (lambda e: e["items"][0].update(kind="note"), 400, "invalid"),
    (lambda e: e["slots"][0].update(slot="!!"), 400, "invalid"),
    (lambda e: e["slots"][0].update(suite="rsa"), 400, "invalid"),
    (lambda e: e.update(files=[{"id": "a" * 32, "meta_item_id": "b" * 32,
                                "stored_size": 10**12, "chunk_count": 1}]), 413, "too_large"),
    (lambda e: e.update(items=[]), 400, "invalid"),
    (lambda e: e.update(channel="维权\u0000"), 400, "unknown_channel"),
])
def test_bad_envelopes_refused_and_change_nothing(client: TestClient, world, session,  # type: ignore[no-untyped-def]
                                                  mutate, status, code) -> None:
    api, envelope = _envelope(client, world)
    mutate(envelope)
    before = counts(session)
    response = client.post("/api/v1/submissions", json={**envelope, "pow": api.stamp()},
                           headers={"Accept-Language": "en"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert counts(session) == before


def test_pow_missing_or_replayed(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api, envelope = _envelope(client, world)
    missing = client.post("/api/v1/submissions", json=envelope)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "pow_invalid"
    stamp = api.stamp()
    assert client.post("/api/v1/submissions", json={**envelope, "pow": stamp}).status_code == 201
    _, second = _envelope(client, world)
    replay = client.post("/api/v1/submissions", json={**second, "pow": stamp})
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "pow_invalid"
    assert session.scalar(select(func.count()).select_from(Case)) == 1


def test_replayed_envelope_refused(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api, envelope = _envelope(client, world)
    assert client.post("/api/v1/submissions", json={**envelope, "pow": api.stamp()}).status_code == 201
    again = client.post("/api/v1/submissions", json={**envelope, "pow": api.stamp()})
    assert again.status_code == 400 and again.json()["error"]["code"] == "duplicate_submission"


def test_wrong_content_type_and_malformed_json(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    wrong = client.post("/api/v1/submissions", content=b"a=b",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 415 and wrong.json()["error"]["code"] == "wrong_content_type"
    for body in (b"{", b"\xff\xfe", b"[]", b'"x"', b"[" * 5000):
        response = client.post("/api/v1/submissions", content=body,
                               headers={"Content-Type": "application/json"})
        assert response.status_code in (400, 415), body
        assert "error" in response.json()


def test_oversize_body_refused(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/submissions", content=b"x" * (world.settings.max_form_bytes + 10),
                           headers={"Content-Type": "application/json", "Accept-Language": "en"})
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "What you sent is larger than the limit of 2 MB."


def test_chunk_errors(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api, sealed, created = _draft(client, world, os.urandom(70000))
    spec = sealed.envelope["files"][0]
    first = next(sealed.chunks[spec["id"]]())
    base = f"/api/v1/submissions/{created['case_id']}/files/{spec['id']}/chunks"
    token = {"Authorization": f"Bearer {created['upload_token']}"}
    assert client.put(f"{base}/0", content=first[:-1], headers=token).status_code == 400
    assert client.put(f"{base}/9", content=first, headers=token).status_code == 400
    assert client.put(f"{base}/x", content=first, headers=token).status_code == 400
    wrong = client.put(f"{base}/0", content=first, headers={"Authorization": "Bearer nope"})
    unknown = client.put(f"/api/v1/submissions/{'0' * 32}/files/{spec['id']}/chunks/0",
                         content=first, headers=token)
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()
    too_big = client.put(f"{base}/0", content=b"x" * (world.settings.max_chunk_bytes + 1),
                         headers=token)
    assert too_big.status_code == 413
    assert session.scalar(select(func.count()).select_from(FileChunk)) == 0


def test_keys_changed_when_reviewer_added(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api, envelope = _envelope(client, world)
    make_reviewer(session, "latecomer", world.channel)
    session.commit()
    response = client.post("/api/v1/submissions", json={**envelope, "pow": api.stamp()})
    assert response.status_code == 409 and response.json()["error"]["code"] == "keys_changed"


def test_reused_item_id_is_refused_not_a_crash(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api, first = _envelope(client, world)
    assert client.post("/api/v1/submissions", json={**first, "pow": api.stamp()}).status_code == 201
    _, second = _envelope(client, world)
    second["items"][0]["id"] = first["items"][0]["id"]
    response = client.post("/api/v1/submissions", json={**second, "pow": api.stamp()})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "duplicate_submission"


def test_small_files_travel_inside_the_submission(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api = api_client(client)
    info = api.channels()
    data = os.urandom(70000)
    sealed = seal_submission(info["channels"][0], crypto.b64u_decode(info["installation"]["salt"]),
                             world.settings.receipt_iterations, REPORT, None, [plain(data)],
                             inline_limit=info["limits"]["inline_bytes"])
    assert len(sealed.envelope["files"][0]["chunks"]) == 2
    created = client.post("/api/v1/submissions", json={**sealed.envelope, "pow": api.stamp()})
    assert created.status_code == 201 and created.json()["ready"] is True
    case = session.get(Case, created.json()["case_id"])
    assert case.ready and session.scalar(select(func.count()).select_from(FileChunk)) == 2
    stored = session.scalar(select(StoredFile))
    assert stored.complete and stored.upload_expires_at is None


@pytest.mark.parametrize("mutate, status", [
    (lambda f: f["chunks"].pop(), 400),
    (lambda f: f["chunks"].__setitem__(0, f["chunks"][0][:-4]), 400),
    (lambda f: f["chunks"].__setitem__(0, "!!"), 400),
])
def test_bad_inline_chunks_refused(client: TestClient, world, session, mutate, status) -> None:  # type: ignore[no-untyped-def]
    api = api_client(client)
    info = api.channels()
    sealed = seal_submission(info["channels"][0], crypto.b64u_decode(info["installation"]["salt"]),
                             world.settings.receipt_iterations, REPORT, None,
                             [plain(os.urandom(70000))], inline_limit=10**6)
    mutate(sealed.envelope["files"][0])
    before = counts(session)
    response = client.post("/api/v1/submissions", json={**sealed.envelope, "pow": api.stamp()})
    assert response.status_code == status
    assert counts(session) == before


def test_inline_over_the_limit_refused(client: TestClient, world, session, settings) -> None:  # type: ignore[no-untyped-def]
    api = api_client(client)
    info = api.channels()
    sealed = seal_submission(info["channels"][0], crypto.b64u_decode(info["installation"]["salt"]),
                             world.settings.receipt_iterations, REPORT, None,
                             [plain(os.urandom(settings.max_inline_bytes + 10))],
                             inline_limit=10**9)
    response = client.post("/api/v1/submissions", json={**sealed.envelope, "pow": api.stamp()})
    assert response.status_code == 413
