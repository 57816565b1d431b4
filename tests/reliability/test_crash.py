"""The server killed with SIGKILL in the middle of submissions and uploads, then restarted on
the same data.

What must hold after every kill, checked in the database while the server is down: every
submission whose finish was acknowledged (200) before the kill is present, ready, and opens to
what was sent; no ready case misses a chunk; SQLite passes integrity_check. Clients resume
after the restart as a browser does (GET the draft, send the missing chunks, finish) or start
over when the create's answer was lost; what they abandoned stays an invisible draft and is
purged after expiry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.client import ApiError, Client
from service.domain import intake, sealing
from service.domain.models import Case, FileChunk, StoredFile, utcnow
from tests.reliability.live import (
    RECEIPT_ITERATIONS,
    Deployment,
    Errors,
    LiveServer,
    Sent,
    assert_case_complete,
    assert_no_half_case,
    count_cases,
    deploy,
    describe,
    fetch_files,
    file_content,
    followup_feed,
    make_report,
    plain,
    sqlite_integrity,
    wait_for,
)

THREADS = 3
UPLOADS_PER_THREAD = 7
# Kill after this many more acknowledged submissions, with a little jitter after it.
KILL_AFTER = (2, 4, 4)
DEADLINE_SECONDS = 100
# Chunks per batch in the concurrent run: small, so a kill often lands between batches of
# one file as well as inside one.
UPLOAD_BATCH = 8


@dataclass
class Upload:
    """One reporter's submission, resumable across server restarts."""

    n: int
    report: dict[str, Any]
    files: list[tuple[str, bytes]]
    sealed: sealing.SealedSubmission | None = None
    chunks: dict[str, list[bytes]] = field(default_factory=dict)
    case_id: str = ""
    token: str | None = None
    finish_sent: bool = False
    abandoned: list[str] = field(default_factory=list)  # drafts whose create answer was lost

    def seal(self, deployment: Deployment) -> None:
        self.sealed = sealing.seal_submission(
            deployment.channel, deployment.salt, RECEIPT_ITERATIONS, self.report, None,
            [plain(name, content) for name, content in self.files])
        self.chunks = {spec_id: list(make()) for spec_id, make in self.sealed.chunks.items()}
        self.case_id, self.token, self.finish_sent = self.sealed.envelope["case_id"], None, False

    def sent(self) -> Sent:
        assert self.sealed is not None
        return Sent(self.sealed.receipt, self.report,
                    {name: hashlib.sha256(content).hexdigest() for name, content in self.files},
                    self.case_id)


@dataclass
class Tally:
    acknowledged: list[Sent] = field(default_factory=list)
    confirmed_late: list[Sent] = field(default_factory=list)  # finish answer lost, case there
    abandoned: list[str] = field(default_factory=list)
    disconnects: int = 0
    server_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def upload(client: Client, up: Upload) -> None:
    """Create (if no token yet), send the chunks the server lacks, finish."""
    assert up.sealed is not None
    if up.token is None:
        created = client._call("POST", "/api/v1/submissions",
                               {**up.sealed.envelope, "pow": client.stamp()})
        assert created["case_id"] == up.case_id
        up.token = created["upload_token"]
        if created["ready"]:  # no files: stored whole by the create itself
            return
    path = f"/api/v1/submissions/{up.case_id}"
    status = client._call("GET", path, token=up.token)
    for file in status["files"]:
        # In batches, as the browser and chuishao submit send them (docs/API.md 4.3).
        chunks = up.chunks[file["id"]]
        client.upload(f"{path}/files/{file['id']}", lambda chunks=chunks: iter(chunks),
                      set(file["received"]), up.token, UPLOAD_BATCH)
    up.finish_sent = True
    client._call("POST", f"{path}/finish", {}, token=up.token)


def run_until_done(deployment: Deployment, server: LiveServer, up: Upload, tally: Tally,
                   errors: Errors, deadline: float) -> None:
    client = deployment.client(server.base)
    up.seal(deployment)
    while time.monotonic() < deadline and not errors.stop.is_set():
        try:
            upload(client, up)
        except OSError:
            # The server went away mid-request: wait for it, then resume.
            with tally.lock:
                tally.disconnects += 1
            wait_for(server.healthy, timeout=30, step=0.1)
            continue
        except ApiError as exc:
            if exc.status >= 500:
                with tally.lock:
                    tally.server_errors += 1
                time.sleep(0.2)
                continue
            lost_create = exc.code == "duplicate_submission" and up.token is None
            lost_finish = exc.code == "submission_not_found" and up.finish_sent
            if lost_create or lost_finish:
                # Stored, but the answer died with the server. The receipt tells whether the
                # case is complete (a create without files, or the finish); if not, the
                # upload token is lost with the answer: seal again and start over, and the
                # draft left behind expires.
                try:
                    followup_feed(client, deployment, up.sealed.receipt)  # type: ignore[union-attr]
                except ApiError as again:
                    if again.status >= 500 or not lost_create:
                        errors.add(f"upload {up.n}: {describe(exc)}, then {describe(again)}")
                        return
                    with tally.lock:
                        tally.abandoned.append(up.case_id)
                    up.seal(deployment)
                    continue
                except OSError:
                    continue
                with tally.lock:
                    tally.confirmed_late.append(up.sent())
                return
            errors.add(f"upload {up.n}: {describe(exc)}")
            return
        with tally.lock:
            tally.acknowledged.append(up.sent())
        return
    errors.add(f"upload {up.n}: not done before the deadline")


def check_down(deployment: Deployment, acknowledged: list[Sent]) -> None:
    """With the server dead: the database is sound and holds every acknowledged case."""
    if deployment.database_url.startswith("sqlite"):
        assert sqlite_integrity(deployment.database_url) == []
    database = deployment.database()
    try:
        with database.session() as session:
            for sent in acknowledged:
                assert_case_complete(session, deployment, sent)
            assert_no_half_case(session)
    finally:
        database.dispose()


def test_kill_during_concurrent_submissions(tmp_path: Path, server_database: str | None) -> None:
    deployment = deploy(tmp_path, server_database, CHUISHAO_PURGE_MINUTES="0")
    server = deployment.server()
    errors, tally = Errors(), Tally()
    rng = random.Random(20261128)
    deadline = time.monotonic() + DEADLINE_SECONDS
    uploads = [[Upload(t * 100 + i, make_report(t * 100 + i),
                       [(f"f{t}-{i}.bin", file_content(t * 100 + i, 100_000 + 90_000 * (i % 3)))]
                       if i % 4 != 3 else [])
                for i in range(UPLOADS_PER_THREAD)] for t in range(THREADS)]

    def worker(mine: list[Upload]) -> None:
        for up in mine:
            if errors.stop.is_set():
                return
            run_until_done(deployment, server, up, tally, errors, deadline)

    server.start()
    try:
        deployment.learn_channel(server.base)
        threads = [threading.Thread(target=worker, args=(mine,)) for mine in uploads]
        for thread in threads:
            thread.start()
        target = 0
        for round_, more in enumerate(KILL_AFTER):
            target += more
            assert wait_for(lambda t=target: len(tally.acknowledged) >= t or errors.stop.is_set(),
                            timeout=60), f"round {round_}: too few acknowledgements"
            time.sleep(rng.uniform(0, 0.15))
            server.kill9()
            with tally.lock:
                acknowledged = list(tally.acknowledged)
            check_down(deployment, acknowledged)
            server.start()
        for thread in threads:
            thread.join(timeout=DEADLINE_SECONDS + 30)
    finally:
        server.stop()
    print(f"kills {len(KILL_AFTER)}, acknowledged {len(tally.acknowledged)}, confirmed late "
          f"{len(tally.confirmed_late)}, abandoned drafts {len(tally.abandoned)}, cut off "
          f"{tally.disconnects}, retried after 5xx {tally.server_errors}")
    assert not errors.items, errors.items
    assert server.starts == len(KILL_AFTER) + 1
    assert tally.disconnects > 0, "no request was ever cut off by a kill"
    finished = tally.acknowledged + tally.confirmed_late
    assert len(finished) == THREADS * UPLOADS_PER_THREAD
    check_down(deployment, finished)

    # What clients abandoned (and only that) is an invisible draft; purging after expiry
    # removes it whole.
    database = deployment.database()
    try:
        with database.session() as session:
            drafts = set(session.scalars(select(Case.id).where(Case.ready.is_(False))))
            assert drafts <= set(tally.abandoned)
            later = utcnow() + dt.timedelta(days=2)
            assert intake.purge_expired(session, now=later) == len(drafts)
        with database.session() as session:
            assert count_cases(session, ready=False) == 0
            assert count_cases(session, ready=True) == len(finished)
            unready_files = session.scalar(select(func.count()).select_from(StoredFile)
                                           .where(StoredFile.complete.is_(False)))
            assert unready_files == 0
            orphan_chunks = session.scalar(select(func.count()).select_from(FileChunk).where(
                FileChunk.file_id.not_in(select(StoredFile.id))))
            assert orphan_chunks == 0
            assert_no_half_case(session)
    finally:
        database.dispose()
    if deployment.database_url.startswith("sqlite"):
        assert sqlite_integrity(deployment.database_url) == []


def test_kill_during_one_large_upload_then_resume(tmp_path: Path,
                                                   server_database: str | None) -> None:
    deployment = deploy(tmp_path, server_database)
    server = deployment.server()
    content = file_content(7, 3_000_000)  # 46 stored chunks
    up = Upload(7, make_report(7), [("site-video.mp4", content)])
    acked: list[int] = []
    outcome: list[BaseException] = []

    def sender() -> None:
        client = deployment.client(server.base)
        assert up.sealed is not None
        try:
            created = client._call("POST", "/api/v1/submissions",
                                   {**up.sealed.envelope, "pow": client.stamp()})
            up.token = created["upload_token"]
            (file_id, chunks), = up.chunks.items()
            for index, chunk in enumerate(chunks):
                client._call("PUT", f"/api/v1/submissions/{up.case_id}/files/{file_id}"
                             f"/chunks/{index}", raw=chunk, token=up.token)
                acked.append(index)
        except BaseException as exc:  # the kill cuts it off: expected
            outcome.append(exc)

    server.start()
    try:
        deployment.learn_channel(server.base)
        up.seal(deployment)
        (file_id, chunks), = up.chunks.items()
        assert len(chunks) == 46
        thread = threading.Thread(target=sender)
        thread.start()
        assert wait_for(lambda: len(acked) >= 12 or bool(outcome), timeout=60)
        server.kill9()
        thread.join(timeout=60)
        assert outcome and isinstance(outcome[0], OSError), outcome
        assert up.token is not None and 12 <= len(acked) < len(chunks)

        # Down: a draft with the acknowledged chunks, invisible, sound.
        check_down(deployment, [])
        database = deployment.database()
        try:
            with database.session() as session:
                case = session.get(Case, up.case_id)
                assert case is not None and not case.ready
                stored = set(session.scalars(select(FileChunk.index)
                                             .where(FileChunk.file_id == file_id)))
                assert set(acked) <= stored
        finally:
            database.dispose()

        server.start()
        client = deployment.client(server.base)
        # Not visible to anyone before it is finished, not even with its receipt.
        with pytest.raises(ApiError) as refused:
            followup_feed(client, deployment, up.sealed.receipt)  # type: ignore[union-attr]
        assert refused.value.code == "receipt_unknown"
        # Finishing early is refused and changes nothing.
        path = f"/api/v1/submissions/{up.case_id}"
        with pytest.raises(ApiError) as early:
            client._call("POST", f"{path}/finish", {}, token=up.token)
        assert early.value.code == "upload_incomplete"
        # Resume as the browser does: ask what arrived, send the rest, finish.
        status = client._call("GET", path, token=up.token)
        (listed,) = status["files"]
        assert listed["id"] == file_id and listed["chunk_count"] == len(chunks)
        assert set(acked) <= set(listed["received"])
        missing = [i for i in range(len(chunks)) if i not in set(listed["received"])]
        assert missing, "the kill came after the last chunk"
        for index in missing:
            client._call("PUT", f"{path}/files/{file_id}/chunks/{index}", raw=chunks[index],
                         token=up.token)
        assert client._call("POST", f"{path}/finish", {}, token=up.token)["ready"] is True
        feed = followup_feed(client, deployment, up.sealed.receipt)  # type: ignore[union-attr]
        assert fetch_files(deployment, server.base, feed) == {
            "site-video.mp4": hashlib.sha256(content).hexdigest()}
    finally:
        server.stop()
    check_down(deployment, [up.sent()])


def test_kill_during_a_batched_upload_then_resume(tmp_path: Path,
                                                  server_database: str | None) -> None:
    """SIGKILL while 64-chunk batches are in flight: every acknowledged batch survives, the
    one cut off is stored whole or not at all, and the upload resumes from what is there."""
    deployment = deploy(tmp_path, server_database)
    server = deployment.server()
    content = file_content(8, 24 * 1024 * 1024)
    up = Upload(8, make_report(8), [("site-video.mp4", content)])
    acked: list[tuple[int, int]] = []
    outcome: list[BaseException] = []

    def sender() -> None:
        client = deployment.client(server.base)
        assert up.sealed is not None
        try:
            created = client._call("POST", "/api/v1/submissions",
                                   {**up.sealed.envelope, "pow": client.stamp(
                                       up.sealed.envelope["files"][0]["stored_size"])})
            up.token = created["upload_token"]
            (file_id, chunks), = up.chunks.items()
            path = f"/api/v1/submissions/{up.case_id}/files/{file_id}"
            for first in range(0, len(chunks), intake.BATCH_CHUNKS):
                run = chunks[first:first + intake.BATCH_CHUNKS]
                answer = client._call("PUT", f"{path}/batch/{first}/{len(run)}",
                                      raw=b"".join(run), token=up.token)
                acked.append((answer["first"], answer["count"]))
        except BaseException as exc:  # the kill cuts it off: expected
            outcome.append(exc)

    server.start()
    try:
        deployment.learn_channel(server.base)
        up.seal(deployment)
        (file_id, chunks), = up.chunks.items()
        batches = -(-len(chunks) // intake.BATCH_CHUNKS)
        assert batches >= 6
        thread = threading.Thread(target=sender)
        thread.start()
        assert wait_for(lambda: len(acked) >= 2 or bool(outcome), timeout=120)
        server.kill9()
        thread.join(timeout=60)
        assert outcome and isinstance(outcome[0], OSError), outcome
        assert 2 <= len(acked) < batches
        acknowledged = {i for first, count in acked for i in range(first, first + count)}

        # Down: every acknowledged chunk is there; the batch cut off is whole or absent.
        check_down(deployment, [])
        database = deployment.database()
        try:
            with database.session() as session:
                stored = set(session.scalars(select(FileChunk.index)
                                             .where(FileChunk.file_id == file_id)))
                assert acknowledged <= stored
                for first in range(0, len(chunks), intake.BATCH_CHUNKS):
                    run = set(range(first, min(first + intake.BATCH_CHUNKS, len(chunks))))
                    assert run <= stored or not run & stored, f"half a batch at {first}"
                for index in stored:
                    assert session.get(FileChunk, (file_id, index)).data == chunks[index]
        finally:
            database.dispose()

        server.start()
        client = deployment.client(server.base)
        path = f"/api/v1/submissions/{up.case_id}"
        status = client._call("GET", path, token=up.token)
        (listed,) = status["files"]
        have = set(listed["received"])
        assert acknowledged <= have and len(have) < len(chunks)
        # Resume as chuishao submit does: only what is missing, in batches.
        sent: list[str] = []
        transport = client.transport

        def counting(method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
            if method == "PUT":
                sent.append(url.rsplit("/batch/", 1)[1])
            return transport(method, url, **kwargs)

        resumed = Client(counting, language="en")
        resumed.upload(f"{path}/files/{file_id}", lambda: iter(chunks), have, up.token,
                       intake.BATCH_CHUNKS)
        assert all(int(s.split("/")[0]) not in acknowledged for s in sent)
        assert resumed._call("POST", f"{path}/finish", {}, token=up.token)["ready"] is True
        feed = followup_feed(client, deployment, up.sealed.receipt)  # type: ignore[union-attr]
        assert fetch_files(deployment, server.base, feed) == {
            "site-video.mp4": hashlib.sha256(content).hexdigest()}
    finally:
        server.stop()
    check_down(deployment, [up.sent()])
