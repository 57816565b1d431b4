"""Chunk batches (docs/API.md 4.3, 6.6): many STREAM chunks per request, one commit each,
stored whole or not at all, resumable, refused with nothing stored when wrong."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.client import ApiError, Client, runs
from service.domain import cases, intake, sealing
from service.domain.installation import get_installation
from service.domain.models import Case, FileChunk, StoredFile
from tests import factories
from tests.domain.test_followup import _session_token
from tests.factories import make_world, open_as, open_reporter_slot
from tests.web.test_intake_api import REPORT, _draft, plain

BATCH = intake.BATCH_CHUNKS
STORED = intake.STORED_CHUNK


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


class Recorder:
    """The in-process transport, counting requests and able to cut one off before it is sent."""

    def __init__(self, client: TestClient, fail_on: int | None = None) -> None:
        self.send = factories.testclient_transport(client)
        self.calls: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def __call__(self, method: str, path: str, *, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        self.calls.append((method, path))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise ConnectionResetError("connection cut")
        return self.send(method, path, body=body, headers=headers)

    def puts(self) -> list[str]:
        return [path for method, path in self.calls if method == "PUT"]


def chunk_count(session, file_id: str) -> int:  # type: ignore[no-untyped-def]
    return int(session.scalar(select(func.count()).select_from(FileChunk)
                              .where(FileChunk.file_id == file_id)))


def reviewer_opens(session, world, case: Case) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Every file of the case as a reviewer gets it: the console's chunk reads, then open."""
    _, items = open_as(world.reviewers[0].private_key, session, case.id)
    opened = {}
    for stored in session.scalars(select(StoredFile).where(StoredFile.case_id == case.id)):
        chunks = [cases.file_chunk(session, case, stored.id, i) for i in range(stored.chunk_count)]
        for meta in items["file-meta"]:
            try:
                content = b"".join(crypto.open_file(
                    crypto.b64u_decode(meta["key"]), crypto.b64u_decode(meta["prefix"]),
                    bytes.fromhex(case.id), bytes.fromhex(stored.id), chunks, meta["size"]))
            except crypto.OpenError:
                continue
            opened[meta["name"]] = content
    return opened


def test_batched_round_trip_is_byte_exact_in_few_requests(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                           session) -> None:
    big = os.urandom((BATCH + 6) * 65536 + 777)  # two batches
    other = os.urandom(3 * 65536)
    transport = Recorder(client)
    receipt = Client(transport, language="en").submit(
        "acme", REPORT, None, [plain(big, "big.bin"), plain(other, "other.bin")])
    assert len(receipt) == 21
    puts = transport.puts()
    assert len(puts) == 3 and all("/batch/" in path for path in puts), puts
    assert puts[0].endswith(f"/batch/0/{BATCH}") and puts[1].endswith(f"/batch/{BATCH}/8")
    case = session.scalar(select(Case))
    assert case.ready
    assert reviewer_opens(session, world, case) == {"big.bin": big, "other.bin": other}


def test_runs_skip_what_the_server_holds() -> None:
    chunks = [bytes([i]) for i in range(10)]
    assert [(first, len(run)) for first, run in runs(chunks, {2, 3, 7}, 3)] == [
        (0, 2), (4, 3), (8, 2)]
    assert [(first, len(run)) for first, run in runs(chunks, set(), 64)] == [(0, 10)]
    assert list(runs(chunks, set(range(10)), 4)) == []


def test_interrupted_batch_resumes_from_what_the_server_holds(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                              session) -> None:
    data = os.urandom((2 * BATCH + 3) * 65536)
    # Calls: channels, pow, create, batch 0, batch 1 (cut off), ...
    transport = Recorder(client, fail_on=5)
    api = Client(transport, language="en", resume_pause=0)
    receipt = api.submit("acme", REPORT, None, [plain(data, "v.mp4")])
    assert len(receipt) == 21
    after_cut = transport.calls[5:]
    assert after_cut[0][0] == "GET" and after_cut[0][1].startswith("/api/v1/submissions/")
    # Only what was missing is sent again: batch 1 and batch 2, then finish.
    resent = [path.rsplit("/batch/", 1)[1] for method, path in after_cut if method == "PUT"]
    assert resent == [f"{BATCH}/{BATCH}", f"{2 * BATCH}/4"]
    case = session.scalar(select(Case))
    assert reviewer_opens(session, world, case) == {"v.mp4": data}


def test_a_resent_batch_replaces_and_the_file_completes(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                        session) -> None:
    api, sealed, created = _draft(client, world, os.urandom(10 * 65536))
    spec = sealed.envelope["files"][0]
    chunks = list(sealed.chunks[spec["id"]]())
    base = f"/api/v1/submissions/{created['case_id']}"
    token = created["upload_token"]
    path = f"{base}/files/{spec['id']}/batch"
    # Later chunks first, then an overlapping run twice: order is free, a resend is a no-op.
    answer = api._call("PUT", f"{path}/6/5", raw=b"".join(chunks[6:]), token=token)
    assert answer == {"id": spec["id"], "first": 6, "count": 5}
    for _ in range(2):
        api._call("PUT", f"{path}/0/8", raw=b"".join(chunks[:8]), token=token)
    assert chunk_count(session, spec["id"]) == 11
    assert api._call("GET", base, token=token)["files"][0]["received"] == list(range(11))
    assert api._call("POST", f"{base}/finish", {}, token=token)["ready"] is True
    session.expire_all()
    assert [c.data for c in session.scalars(select(FileChunk).where(
        FileChunk.file_id == spec["id"]).order_by(FileChunk.index))] == chunks


def test_batch_refusals_store_nothing(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    api, sealed, created = _draft(client, world, os.urandom((BATCH + 4) * 65536))
    spec = sealed.envelope["files"][0]
    chunks = list(sealed.chunks[spec["id"]]())
    n = len(chunks)
    assert BATCH + 2 < n < 2 * BATCH
    base = f"/api/v1/submissions/{created['case_id']}/files/{spec['id']}/batch"
    auth = {"Authorization": f"Bearer {created['upload_token']}", "Accept-Language": "en"}
    zh = {**auth, "Accept-Language": "zh-CN"}

    def put(path: str, body: bytes, headers: dict[str, str] = auth):  # type: ignore[no-untyped-def]
        return client.put(f"{base}/{path}", content=body, headers=headers)

    # A chunk one byte short (or long) in the middle: the whole batch is refused.
    short = b"".join(chunks[:2]) + chunks[2][:-1] + b"".join(chunks[3:5])
    for body in (short, b"".join(chunks[:5]) + b"x"):
        refused = put("0/5", body)
        assert refused.status_code == 400
        assert refused.json()["error"] == {"code": "invalid", "message": (
            f"The chunks 0 to 4 of this file must be {5 * STORED} bytes together, not "
            f"{len(body)}. Nothing of this request was stored.")}
    assert put("0/5", short, zh).json()["error"]["message"] == (
        f"该文件第 0 至 4 个数据块合计应为 {5 * STORED} 字节，而不是 {5 * STORED - 1} 字节。"
        "此次请求的内容均未保存。")
    # Fewer or more chunks than the path names.
    assert put("0/6", b"".join(chunks[:5])).status_code == 400
    # More than BATCH_CHUNKS in one request, and a body over the route's limit.
    assert put(f"0/{BATCH + 1}", b"".join(chunks[:BATCH + 1])).status_code in (400, 413)
    assert put(f"1/{BATCH}", b"".join(chunks[1:BATCH + 1]) + b"y" * 2000).status_code == 413
    # Beyond the declared size: past the last chunk, or a run that runs over it.
    beyond = put(f"{n}/1", chunks[-1])
    assert beyond.status_code == 400 and beyond.json()["error"]["message"] == (
        f"These chunks go past the end of the file, which has {n} chunks. Nothing of this "
        "request was stored.")
    assert put(f"{n - 2}/3", b"".join(chunks[n - 2:]) + chunks[0]).status_code == 400
    # Not numbers, zero chunks.
    assert put("x/1", chunks[0]).status_code == 400
    assert put("0/0", b"").status_code == 400
    assert put("-1/1", chunks[0]).status_code == 400
    # Without a valid draft: a wrong token and an unknown case get one and the same answer.
    wrong = put("0/1", chunks[0], {"Authorization": "Bearer nope", "Accept-Language": "en"})
    unknown = client.put(f"/api/v1/submissions/{'0' * 32}/files/{spec['id']}/batch/0/1",
                         content=chunks[0], headers=auth)
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "submission_not_found"
    other = client.put(f"/api/v1/submissions/{created['case_id']}/files/{'1' * 32}/batch/0/1",
                       content=chunks[0], headers=auth)
    assert other.status_code == 404
    assert chunk_count(session, spec["id"]) == 0
    # A finished case's upload token is dead: its chunks cannot change.
    token = created["upload_token"]
    api._call("PUT", f"{base}/0/{BATCH}", raw=b"".join(chunks[:BATCH]), token=token)
    api._call("PUT", f"{base}/{BATCH}/{n - BATCH}", raw=b"".join(chunks[BATCH:]), token=token)
    api._call("POST", f"/api/v1/submissions/{created['case_id']}/finish", {}, token=token)
    assert put("0/1", chunks[0]).json()["error"]["code"] == "submission_not_found"


def test_old_single_chunk_clients_still_work(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    # A client that knows nothing of batches (limits without batch_chunks) PUTs chunk by chunk.
    transport = Recorder(client)
    api = Client(transport, language="en")
    data = os.urandom(20 * 65536)  # over the inline limit
    info = api.channels()
    info["limits"].pop("batch_chunks")
    api.channels = lambda: info  # type: ignore[method-assign]
    api.submit("acme", REPORT, None, [plain(data, "a.bin")])
    puts = transport.puts()
    assert len(puts) > 20 and {path.rsplit("/", 2)[1] for path in puts} == {"chunks"}
    case = session.scalar(select(Case))
    assert reviewer_opens(session, world, case) == {"a.bin": data}


def test_follow_up_file_in_batches_with_status(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    receipt = Client(factories.testclient_transport(client), language="en").submit("acme", REPORT)
    keys = crypto.derive_receipt(receipt, get_installation(session).salt,
                                 world.settings.receipt_iterations)
    case = session.scalar(select(Case))
    auth = {"Authorization": f"Bearer {_session_token(client, keys.lookup_secret)}",
            "Accept-Language": "en"}
    key = open_reporter_slot(client.get("/api/v1/followup", headers=auth).json(), keys, case.id)
    data = os.urandom((BATCH + 2) * 65536 + 5)
    file_id, meta_id = crypto.new_id(), crypto.new_id()
    file_key, prefix = crypto.new_key(), crypto.new_key()[:7]
    meta = {"name": "p.bin", "type": "application/octet-stream", "size": len(data),
            "key": crypto.b64u_encode(file_key), "prefix": crypto.b64u_encode(prefix),
            "removed": [], "cleaned": False}
    stored, count = sealing.stored_layout(len(data))
    assert client.post("/api/v1/followup/files", headers=auth, json={
        "file": {"id": file_id.hex(), "meta_item_id": meta_id.hex(), "stored_size": stored,
                 "chunk_count": count},
        "meta": {"id": meta_id.hex(), "blob": crypto.b64u_encode(crypto.seal_item(
            key, bytes.fromhex(case.id), meta_id, "file-meta", meta))}}).status_code == 201
    chunks = list(crypto.seal_file(file_key, prefix, bytes.fromhex(case.id), file_id, [data],
                                   len(data)))
    base = f"/api/v1/followup/files/{file_id.hex()}"
    assert client.get(base, headers=auth).json() == {
        "id": file_id.hex(), "chunk_count": count, "complete": False, "received": []}
    first = client.put(f"{base}/batch/0/{BATCH}", content=b"".join(chunks[:BATCH]),
                       headers=auth)
    assert first.status_code == 200 and first.json()["count"] == BATCH
    bad = client.put(f"{base}/batch/{BATCH}/{count - BATCH}",
                     content=b"".join(chunks[BATCH:])[:-1], headers=auth)
    assert bad.status_code == 400
    assert client.get(base, headers=auth).json()["received"] == list(range(BATCH))
    rest = client.put(f"{base}/batch/{BATCH}/{count - BATCH}",
                      content=b"".join(chunks[BATCH:]), headers=auth)
    assert rest.status_code == 200
    assert client.post(f"{base}/finish", headers=auth).status_code == 200
    assert client.get(base, headers=auth).json()["complete"] is True
    again = client.put(f"{base}/batch/0/1", content=chunks[0], headers=auth)
    assert again.status_code == 409 and again.json()["error"]["code"] == "file_complete"
    fetched = [client.get(f"{base}/chunks/{i}", headers=auth).content for i in range(count)]
    assert b"".join(crypto.open_file(file_key, prefix, bytes.fromhex(case.id), file_id, fetched,
                                     len(data))) == data
    # Without a follow-up token, nothing; a reviewer's file is not the reporter's to fill.
    assert client.put(f"{base}/batch/0/1", content=chunks[0]).status_code == 401
    assert client.get(base).status_code == 401


def test_batch_route_limit_holds_before_the_body_is_read(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    _, sealed, created = _draft(client, world, os.urandom(65536))
    spec = sealed.envelope["files"][0]
    path = f"/api/v1/submissions/{created['case_id']}/files/{spec['id']}/batch/0/2"
    # A declared length over the route's limit is refused before any byte of it is read.
    refused = client.put(path, content=b"z" * (BATCH * STORED + 70_000),
                         headers={"Authorization": f"Bearer {created['upload_token']}"})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"


def test_refused_batch_answers_are_api_errors(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    api, sealed, created = _draft(client, world, os.urandom(65536))
    spec = sealed.envelope["files"][0]
    with pytest.raises(ApiError) as refused:
        api._call("PUT", f"/api/v1/submissions/{created['case_id']}/files/{spec['id']}"
                  "/batch/0/2", raw=b"x" * 10, token=created["upload_token"])
    assert refused.value.status == 400 and refused.value.code == "invalid"
