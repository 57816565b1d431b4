"""Intake throughput and latency of the real server against a bare floor, in the same run.

Ours: `chuishao serve` (uvicorn, the full app with every middleware) on a fresh SQLite
database (or a fresh PostgreSQL database with --postgres), initialised, with one channel of two
reviewers. Each submission is a report and one small attachment, sealed ahead of time with
service.domain.sealing.seal_submission (the client's CPU does not count), sent as the browser does:
POST /api/v1/submissions, PUT of the file's chunk, POST .../finish. Proof of work is at
difficulty 0 and its stamps are fetched before the clock starts; spending them is timed.

Floor: a bare Starlette app in this file, under the same uvicorn in a subprocess, with one
endpoint that stores the same bytes (the envelope JSON and the stored chunks) into the same
kind of database (same engine settings: SQLite WAL + synchronous=FULL, or PostgreSQL) with one
INSERT per object in one transaction, committed off the event loop as ours is.

Both are driven by the same K client threads over keep-alive HTTP/1.1 on 127.0.0.1. Latency
is per submission (all its requests); throughput is submissions per second of wall time.

Usage: python bench/intake.py [--count 200] [--concurrency 8] [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Http,
    cpu_seconds,
    free_port,
    percentile,
    prepare_installation,
    server_env,
    server_process,
    temporary_pg_database,
)

ATTACHMENT_BYTES = 3000
THROUGHPUT_GOAL = 0.6

# ---------------------------------------------------------------------------- the floor app


def floor_app(database_url: str):  # type: ignore[no-untyped-def]
    """One endpoint: store the envelope and each chunk, one INSERT each, one transaction."""
    import anyio.to_thread
    from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, insert
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from service.platform.db import make_engine

    engine = make_engine(database_url)
    metadata = MetaData()
    envelopes = Table("envelopes", metadata, Column("id", String(32), primary_key=True),
                      Column("body", LargeBinary))
    chunks = Table("chunks", metadata, Column("envelope_id", String(32), primary_key=True),
                   Column("idx", Integer, primary_key=True), Column("data", LargeBinary))
    metadata.create_all(engine)

    def write(case_id: str, envelope: bytes, parts: list[bytes]) -> None:
        with engine.begin() as conn:
            conn.execute(insert(envelopes).values(id=case_id, body=envelope))
            for index, data in enumerate(parts):
                conn.execute(insert(chunks).values(envelope_id=case_id, idx=index, data=data))

    async def store(request: Request) -> JSONResponse:
        body = await request.body()
        lengths = [int(n) for n in request.headers["x-parts"].split(",")]
        parts, offset = [], 0
        for length in lengths:
            parts.append(body[offset:offset + length])
            offset += length
        await anyio.to_thread.run_sync(write, request.headers["x-id"], parts[0], parts[1:])
        return JSONResponse({"stored": True}, status_code=201)

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/store", store, methods=["POST"]),
                             Route("/healthz", health)])


def serve_floor(port: int, database_url: str) -> None:
    import uvicorn

    uvicorn.run(floor_app(database_url), host="127.0.0.1", port=port, access_log=False,
                proxy_headers=False, server_header=False, log_level="warning")


# ---------------------------------------------------------------------------- workload


@dataclass
class Prepared:
    case_id: str
    envelope: dict[str, object]
    file_id: str
    chunks: list[bytes]
    body: bytes = b""  # the JSON sent to ours (with its stamp), serialised before timing


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    skipped: int = 0  # not attempted: the time budget ran out
    cpu: float = 0.0  # the server process's CPU seconds (all its threads) during the run

    @property
    def cpu_ms(self) -> float:
        """Server CPU per successful submission: steadier than throughput on a shared
        machine, since another process's load takes wall time but not this process's CPU."""
        return 1000 * self.cpu / len(self.latencies) if self.latencies else float("nan")

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def prepare(base: str, count: int) -> list[Prepared]:
    """Seal ``count`` submissions to the channel the server lists (not timed)."""
    import crypto
    from service.domain import sealing

    http = Http(base)
    status, data = http.request("GET", "/api/v1/channels")
    assert status == 200, data
    info = json.loads(data)
    channel = info["channels"][0]
    salt = crypto.b64u_decode(info["installation"]["salt"])
    iterations = info["installation"]["receipt_iterations"]
    prepared = []
    for n in range(count):
        content = os.urandom(ATTACHMENT_BYTES)
        plain = sealing.PlainFile(name=f"photo{n}.jpg", type="image/jpeg", size=len(content),
                                  read=lambda content=content: [content])
        report = {"v": 1, "unit": "某某机械制造有限公司", "location": "三号车间",
                  "category": "hazard", "description": "冲压机光电保护装置被拆除。" * 8,
                  "seen_at": "", "insider": "", "language": "zh_CN"}
        # As the real clients do: a small attachment travels inside the envelope.
        sealed = sealing.seal_submission(channel, salt, iterations, report, None, [plain],
                                         inline_limit=info["limits"].get("inline_bytes", 0))
        spec = sealed.envelope["files"][0]
        chunks = list(sealed.chunks[spec["id"]]())
        prepared.append(Prepared(sealed.envelope["case_id"], sealed.envelope, spec["id"], chunks))
    http.close()
    return prepared


def stamp_all(base: str, prepared: list[Prepared]) -> None:
    """Fetch a proof-of-work challenge per submission (difficulty 0) before timing."""
    from service.client import solve_pow

    http = Http(base)
    for item in prepared:
        status, data = http.request("GET", "/api/v1/pow")
        assert status == 200, data
        challenge = json.loads(data)
        stamp = solve_pow(challenge["challenge"], challenge["difficulty"])
        item.body = json.dumps({**item.envelope, "pow": stamp}).encode()
    http.close()


def refusal(step: str, status: int, data: bytes) -> str:
    try:
        code = json.loads(data)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = data[:80].decode("utf-8", "replace")
    return f"{step} {status} {code}"


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def submit_ours(http: Http, item: Prepared) -> str | None:
    status, data = http.request("POST", "/api/v1/submissions", item.body, JSON_HEADERS)
    if status != 201:
        return refusal("create", status, data)
    created = json.loads(data)
    if created["ready"]:
        return None  # the attachment was inside the envelope: stored in this one request
    auth = {"Authorization": f"Bearer {created['upload_token']}"}
    case = created["case_id"]
    for index, chunk in enumerate(item.chunks):
        status, data = http.request(
            "PUT", f"/api/v1/submissions/{case}/files/{item.file_id}/chunks/{index}", chunk,
            {**auth, "Content-Type": "application/octet-stream"})
        if status != 204:
            return refusal("chunk", status, data)
    status, data = http.request("POST", f"/api/v1/submissions/{case}/finish", b"{}",
                                {**auth, **JSON_HEADERS})
    if status != 200:
        return refusal("finish", status, data)
    return None


def submit_floor(http: Http, item: Prepared) -> str | None:
    # The same bytes: the envelope without inline chunks, then each stored chunk.
    files = [{k: v for k, v in f.items() if k != "chunks"}
             for f in item.envelope.get("files", [])]  # type: ignore[union-attr]
    envelope = json.dumps({**item.envelope, "files": files}).encode()
    parts = [envelope, *item.chunks]
    headers = {"Content-Type": "application/octet-stream", "X-Id": item.case_id,
               "X-Parts": ",".join(str(len(p)) for p in parts)}
    status, data = http.request("POST", "/store", b"".join(parts), headers)
    if status != 201:
        return refusal("store", status, data)
    return None


def drive(name: str, base: str, items: list[Prepared], concurrency: int,
          submit: Callable[[Http, Prepared], str | None], budget: float = 45.0) -> Result:
    """K threads, each with its own keep-alive connection, take the next submission.

    No new submission starts after ``budget`` seconds, so a stalling server cannot make the
    run unbounded; what was not sent is reported as not attempted.
    """
    result = Result(name)
    lock = threading.Lock()
    position = iter(range(len(items)))
    stop_at = time.monotonic() + budget

    def worker() -> None:
        http = Http(base)
        try:
            while True:
                with lock:
                    n = next(position, None) if time.monotonic() < stop_at else None
                if n is None:
                    return
                start = time.perf_counter()
                try:
                    error = submit(http, items[n])
                except OSError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - start
                with lock:
                    if error is None:
                        result.latencies.append(elapsed)
                    else:
                        result.errors.append(error)
        finally:
            http.close()

    threads = [threading.Thread(target=worker, name=f"{name}-{i}") for i in range(concurrency)]
    pid = getattr(base, "pid", None)
    cpu_before = cpu_seconds(pid) if pid else 0.0
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    result.wall = time.perf_counter() - start
    result.cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    result.skipped = len(items) - len(result.latencies) - len(result.errors)
    return result


# ---------------------------------------------------------------------------- runs


def count_ready(database_url: str) -> int:
    from sqlalchemy import func, select

    from service.domain.models import Case
    from service.platform.db import Database

    database = Database.from_url(database_url)
    try:
        with database.session() as session:
            return int(session.scalar(select(func.count()).select_from(Case)
                                      .where(Case.ready.is_(True))) or 0)
    finally:
        database.dispose()


def run_ours(work: Path, database_url: str | None, count: int, warmup: int,
             concurrency: int) -> tuple[Result, list[Prepared]]:
    port = free_port()
    env = server_env(work / "ours", port, database_url, CHUISHAO_POW_DIFFICULTY="0",
                     CHUISHAO_RECEIPT_ITERATIONS="1000", CHUISHAO_PASSWORD_ITERATIONS="1000")
    installation = prepare_installation(env)
    argv = [sys.executable, "-m", "service.cli", "serve"]
    with server_process(argv, env, port, work / "ours.log") as base:
        items = prepare(base, warmup + count)
        stamp_all(base, items)
        warm = drive("warmup", base, items[:warmup], concurrency, submit_ours, budget=15)
        result = drive("ours", base, items[warmup:], concurrency, submit_ours)
    # Every acknowledged submission must be there, ready; nothing else may be.
    stored, acknowledged = count_ready(installation.database_url), len(warm.latencies) + len(
        result.latencies)
    if stored != acknowledged:
        result.errors.append(f"{stored} cases ready, {acknowledged} acknowledged")
    return result, items


def run_floor(work: Path, database_url: str | None, items: list[Prepared], warmup: int,
              concurrency: int) -> Result:
    port = free_port()
    (work / "floor").mkdir()
    url = database_url or f"sqlite:///{work / 'floor' / 'floor.sqlite3'}"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(port), url]
    env = {"PATH": os.environ.get("PATH", "")}
    with server_process(argv, env, port, work / "floor.log") as base:
        drive("warmup", base, items[:warmup], concurrency, submit_floor, budget=15)
        return drive("floor", base, items[warmup:], concurrency, submit_floor)


def describe(result: Result) -> str:
    lat = result.latencies
    return (f"{result.name:<6} {len(lat):>4} ok {len(result.errors):>3} errors "
            f"{result.skipped:>3} not sent  "
            f"{result.wall:7.2f} s  {result.throughput:8.1f} submissions/s  "
            f"p50 {percentile(lat, 0.50) * 1000:7.1f} ms  "
            f"p99 {percentile(lat, 0.99) * 1000:7.1f} ms  "
            f"mean {statistics.fmean(lat) * 1000 if lat else float('nan'):7.1f} ms  "
            f"server CPU {result.cpu_ms:5.2f} ms/submission")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="timed submissions (200)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (8)")
    parser.add_argument("--postgres", metavar="URL",
                        help="PostgreSQL server; fresh temporary databases are made on it")
    parser.add_argument("--workdir", type=Path,
                        help="keep data and server logs here (default: a temporary directory)")
    parser.add_argument("--serve-floor", nargs=2, metavar=("PORT", "DATABASE_URL"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
        return 0
    if args.count < 1 or not 1 <= args.concurrency <= 64:
        parser.error("--count must be positive and --concurrency between 1 and 64")
    warmup = min(2 * args.concurrency, 32)
    backend = "postgresql" if args.postgres else "sqlite (WAL, synchronous=FULL)"
    print(f"intake bench: {args.count} submissions (+{warmup} warm-up), "
          f"{args.concurrency} client threads, {backend}; report + one "
          f"{ATTACHMENT_BYTES}-byte attachment each")
    with contextlib.ExitStack() as stack:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=False)
            work = args.workdir
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chuishao-bench-")))
        if args.postgres:
            ours_url = stack.enter_context(temporary_pg_database(args.postgres))
            floor_url = stack.enter_context(temporary_pg_database(args.postgres))
            ours, items = run_ours(work, ours_url, args.count, warmup, args.concurrency)
            floor = run_floor(work, floor_url, items, warmup, args.concurrency)
        else:
            ours, items = run_ours(work, None, args.count, warmup, args.concurrency)
            floor = run_floor(work, None, items, warmup, args.concurrency)
    print(describe(ours))
    print(describe(floor))
    for result in (ours, floor):
        for error, times in Counter(result.errors).most_common(5):
            print(f"  {result.name} error x{times}: {error}")
    if not ours.latencies or not floor.latencies:
        print("FAILED: nothing succeeded")
        return 1
    ratio = ours.throughput / floor.throughput
    p50 = percentile(ours.latencies, 0.5) / percentile(floor.latencies, 0.5)
    p99 = percentile(ours.latencies, 0.99) / percentile(floor.latencies, 0.99)
    verdict = "meets" if ratio >= THROUGHPUT_GOAL else "BELOW"
    print(f"ratio ours/floor: throughput {ratio:.2f} ({verdict} goal >= {THROUGHPUT_GOAL}), "
          f"latency p50 {p50:.2f}x, p99 {p99:.2f}x, server CPU per submission "
          f"{ours.cpu_ms / floor.cpu_ms:.2f}x (the app process only: PostgreSQL's own "
          f"processes are not counted)")
    if ours.errors or floor.errors or ours.skipped or floor.skipped:
        print("FAILED: some submissions failed or were not sent; the figures above count "
              "successful submissions only")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
