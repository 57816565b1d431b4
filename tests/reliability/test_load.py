"""A bounded load on loopback against the real server: concurrent reporters and readers.

8 reporter threads submit 40 sealed cases (some with multi-chunk files, some with two files,
some with none) while 4 follow-up readers come back with receipts already given, open their
feed and download and decrypt their files. Afterwards every acknowledged receipt's case is in
the database, ready, complete, and opens to exactly what was sent; no draft is left behind.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from pathlib import Path

from service.client import urllib_transport
from service.domain import sealing
from tests.reliability.live import (
    RECEIPT_ITERATIONS,
    Errors,
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
    running,
)

REPORTERS = 8
CASES = 40
READERS = 4
DEADLINE_SECONDS = 90

def files_for(n: int) -> list[tuple[str, bytes]]:
    if n % 4 == 0:  # three stored chunks
        return [(f"video{n}.bin", file_content(n, 150_000 + n))]
    if n % 4 == 1:  # two files, the second spanning two chunks
        return [(f"photo{n}.jpg", file_content(n, 2_000)), (f"scan{n}.pdf",
                                                             file_content(n + 1000, 70_000))]
    if n % 4 == 2:
        return [(f"photo{n}.jpg", file_content(n, 5_000 + n))]
    return []


def test_concurrent_reporters_and_followup_readers(
        tmp_path: Path, server_database: str | None) -> None:
    deployment = deploy(tmp_path, server_database)
    server = deployment.server()
    errors = Errors()
    acknowledged: list[Sent] = []
    lock = threading.Lock()
    numbers = iter(range(CASES))
    reads = [0]
    reporters_done = threading.Event()
    deadline = time.monotonic() + DEADLINE_SECONDS

    def reporter() -> None:
        client = deployment.client(server.base)
        while not errors.stop.is_set() and time.monotonic() < deadline:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            files = files_for(n)
            report = make_report(n)
            try:
                receipt = client.submit("acme", report, None,
                                        [plain(name, content) for name, content in files])
            except Exception as exc:  # every failure counts, whatever its kind
                errors.add(f"reporter, case {n}: {describe(exc)}")
                return
            sent = Sent(receipt, report,
                        {name: hashlib.sha256(content).hexdigest() for name, content in files})
            with lock:
                acknowledged.append(sent)

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        client = deployment.client(server.base)
        done = 0
        # Keep reading while reporters write; at least two reads each, at most 30.
        while (not errors.stop.is_set() and time.monotonic() < deadline and done < 30
               and (not reporters_done.is_set() or done < 2)):
            with lock:
                choice = rng.choice(acknowledged) if acknowledged else None
            if choice is None:
                time.sleep(0.05)
                continue
            try:
                feed = followup_feed(client, deployment, choice.receipt)
                reports = [obj for kind, obj in feed["opened"].values() if kind == "report"]
                assert reports == [choice.report], "feed shows another report"
                assert fetch_files(deployment, server.base, feed) == choice.files
            except Exception as exc:
                errors.add(f"reader: {describe(exc)}")
                return
            done += 1
            with lock:
                reads[0] += 1

    with running(server):
        deployment.learn_channel(server.base)
        writers = [threading.Thread(target=reporter) for _ in range(REPORTERS)]
        readers = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
        for thread in writers + readers:
            thread.start()
        for thread in writers:
            thread.join(timeout=DEADLINE_SECONDS + 30)
        reporters_done.set()
        for thread in readers:
            thread.join(timeout=DEADLINE_SECONDS + 30)
    assert not errors.items, f"{len(errors.items)} errors, first: {errors.items[:5]}"
    assert len(acknowledged) == CASES
    assert reads[0] >= READERS * 2
    assert not server.errors_in_log(), server.errors_in_log()[:5]

    database = deployment.database()
    try:
        with database.session() as session:
            for sent in acknowledged:
                assert_case_complete(session, deployment, sent)
            assert_no_half_case(session)
            assert count_cases(session, ready=True) == CASES
            assert count_cases(session, ready=False) == 0, "a draft was left behind"
    finally:
        database.dispose()


SIMULTANEOUS = 60
# Once a stall: SQLite writers waited for the lock inside the thread pool the lock holder
# needed to commit, and PostgreSQL requests checked connections out on the event loop. Both
# now wait at an async gate in front of the database (service/platform/db.py, Database.gate).


def test_sixty_simultaneous_submissions(tmp_path: Path, server_database: str | None) -> None:
    """60 reports without files, each one POST, released at the same moment: all stored."""
    deployment = deploy(tmp_path, server_database)
    server = deployment.server()
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(SIMULTANEOUS, timeout=60)
    with running(server):
        deployment.learn_channel(server.base)
        client = deployment.client(server.base)
        bodies = []
        for n in range(SIMULTANEOUS):
            sealed = sealing.seal_submission(deployment.channel, deployment.salt,
                                             RECEIPT_ITERATIONS, make_report(n), None, [])
            bodies.append(json.dumps({**sealed.envelope, "pow": client.stamp()}).encode())

        def send(body: bytes) -> None:
            transport = urllib_transport(server.base, timeout=25)
            start.wait()
            try:
                status, _ = transport("POST", "/api/v1/submissions", body=body,
                                      headers={"Content-Type": "application/json"})
            except OSError:  # no answer in time
                status = 0
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert statuses.count(201) == SIMULTANEOUS, sorted(set(statuses))
