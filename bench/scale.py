"""Growth on one machine: intake throughput and console list latency with 1, 2 and 4 worker
processes (`chuishao serve --workers N`) on PostgreSQL, as ratios to one worker; and what the
database costs per case at 10 000 cases (or --cases).

Intake: for each N, a fresh PostgreSQL database set up with the real command line (migrate,
init, channel add with two reviewers), `chuishao serve --workers N`, then the submissions of
bench/intake.py (a report and a small attachment, sealed ahead of time, proof of work at
difficulty 0, stamps fetched before the clock starts) sent by K client threads over
keep-alive HTTP/1.1. No submission starts after the time budget, so the run is bounded.

Console: one database seeded in bulk as bench/console.py does (cases over two years, three
key slots and a sealed report each), then for each N a server is started on it and K threads
of one signed-in reviewer ask for the first page of /console/cases R times each.

Cost per case: pg_database_size and each table's pg_total_relation_size (rows, indexes and
TOAST) before and after seeding, divided by the cases seeded; files are not seeded (see
bench/sizing.py for attachments: about 1.08 MiB stored per MiB attached on PostgreSQL).

The floor is one worker: every figure is printed with its ratio to N = 1 in the same run.
The client threads run on the same machine and take CPU from the server: on 2 cores the
ratios are what this machine can show, not what more cores would.

Usage: python bench/scale.py --postgres URL [--workers 1,2,4] [--count 300] [--cases 10000]
       [--concurrency 8] [--requests 30] [--budget 30]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Http,
    free_port,
    percentile,
    prepare_installation,
    server_env,
    server_process,
    temporary_pg_database,
)
from bench.console import seed, sign_in  # noqa: E402
from bench.intake import count_ready, drive, prepare, stamp_all, submit_ours  # noqa: E402

WARMUP = 10
CHEAP = {"CHUISHAO_POW_DIFFICULTY": "0", "CHUISHAO_RECEIPT_ITERATIONS": "1000",
         "CHUISHAO_PASSWORD_ITERATIONS": "1000", "CHUISHAO_PURGE_MINUTES": "0",
         # Global ceilings off the measured path (the no-JavaScript form is not used here).
         "CHUISHAO_LOG_LEVEL": "WARNING"}


def serve_argv(workers: int) -> list[str]:
    return [sys.executable, "-m", "service.cli", "serve", "--workers", str(workers)]


# ---------------------------------------------------------------------------- intake


@dataclass
class IntakeFigure:
    workers: int
    ok: int
    errors: list[str]
    wall: float
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.ok / self.wall if self.wall else 0.0


def intake(server: str, work: Path, workers: int, count: int, concurrency: int,
           budget: float) -> IntakeFigure:
    with temporary_pg_database(server) as url:
        port = free_port()
        env = server_env(work / f"intake-{workers}", port, url, **CHEAP)
        prepare_installation(env)
        with server_process(serve_argv(workers), env, port,
                            work / f"intake-{workers}.log", timeout=60) as base:
            items = prepare(base, WARMUP + count)
            stamp_all(base, items)
            warm = drive("warmup", base, items[:WARMUP], concurrency, submit_ours, budget=15)
            result = drive(f"N={workers}", base, items[WARMUP:], concurrency, submit_ours,
                           budget=budget)
        errors = list(result.errors)
        stored = count_ready(url)
        if stored != len(warm.latencies) + len(result.latencies):
            errors.append(f"{stored} ready, {len(warm.latencies) + len(result.latencies)} "
                          "acknowledged")
    return IntakeFigure(workers, len(result.latencies), errors, result.wall,
                        percentile(result.latencies, 0.5), percentile(result.latencies, 0.99))


# ---------------------------------------------------------------------------- console


@dataclass
class ListFigure:
    workers: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def console_list(url: str, env: dict[str, str], work: Path, workers: int, reviewer_id: int,
                 concurrency: int, requests: int, budget: float) -> ListFigure:
    from reviewer import auth
    from service.platform.settings import Settings

    settings = Settings.from_environ(env)
    token = sign_in(url, settings, reviewer_id)
    headers = {"Cookie": f"{auth.session_cookie(settings)}={token}", "Accept": "text/html"}
    figure = ListFigure(workers)
    lock = threading.Lock()
    port = int(env["CHUISHAO_PORT"])
    with server_process(serve_argv(workers), env, port, work / f"console-{workers}.log",
                        timeout=60) as base:
        warm = Http(base)
        for _ in range(5):
            warm.request("GET", "/console/cases", headers=headers)
        warm.close()
        stop_at = time.monotonic() + budget

        def worker() -> None:
            http = Http(base)
            try:
                for _ in range(requests):
                    if time.monotonic() > stop_at:
                        return
                    started = time.perf_counter()
                    status, body = http.request("GET", "/console/cases", headers=headers)
                    elapsed = time.perf_counter() - started
                    with lock:
                        if status == 200 and b"case-row" in body:
                            figure.latencies.append(elapsed)
                        else:
                            figure.errors.append(f"{status}")
            finally:
                http.close()

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        figure.wall = time.perf_counter() - started
    return figure


# ---------------------------------------------------------------------------- cost per case


def sizes(url: str) -> tuple[int, dict[str, int]]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        total = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        tables = {name: int(size) for name, size in conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = 'public'").fetchall()}
    return total, tables


def vacuum_analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------------------- report


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", metavar="URL", required=True,
                        help="PostgreSQL server; fresh temporary databases are made on it")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (1,2,4)")
    parser.add_argument("--count", type=int, default=300, help="timed submissions per N (300)")
    parser.add_argument("--cases", type=int, default=10_000, help="cases seeded (10000)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (8)")
    parser.add_argument("--requests", type=int, default=30,
                        help="list requests per thread per N (30)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds of timed work per measurement at most (30)")
    parser.add_argument("--skip-intake", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    print(f"machine: {os.cpu_count()} CPUs; client threads {args.concurrency}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)

        if not args.skip_intake:
            figures = []
            for workers in counts:
                figure = intake(args.postgres, work, workers, args.count, args.concurrency,
                                args.budget)
                figures.append(figure)
                print(f"intake  N={workers}: {figure.ok:>4} ok {len(figure.errors):>3} errors "
                      f"{figure.rate:7.1f} submissions/s  p50 {figure.p50 * 1000:6.1f} ms  "
                      f"p99 {figure.p99 * 1000:6.1f} ms  ratio to N=1 "
                      f"{ratio(figure.rate, figures[0].rate)}", flush=True)
                for error in sorted(set(figure.errors))[:5]:
                    print(f"    error: {error}")

        with temporary_pg_database(args.postgres) as url:
            port = free_port()
            env = server_env(work / "console", port, url, **CHEAP)
            prepare_installation(env)
            from service.platform.settings import Settings

            vacuum_analyze(url)
            before_total, before = sizes(url)
            seeded = seed(url, args.cases, Settings.from_environ(env), random.Random(16))
            vacuum_analyze(url)
            after_total, after = sizes(url)
            per_case = (after_total - before_total) / args.cases
            print(f"cost per case at {args.cases} cases (seeded in {seeded.seconds:.1f} s): "
                  f"database {per_case:,.0f} bytes", flush=True)
            grown = sorted(((after[t] - before.get(t, 0), t) for t in after), reverse=True)
            for delta, table in [g for g in grown if g[0] > 0][:4]:
                print(f"    {table:<16} {delta / args.cases:8,.0f} bytes per case")
            lists: list[ListFigure] = []
            for workers in counts:
                env = {**env, "CHUISHAO_PORT": str(free_port())}
                figure = console_list(url, env, work, workers, seeded.reviewer_id,
                                      args.concurrency, args.requests, args.budget)
                lists.append(figure)
                print(f"console N={workers}: {len(figure.latencies):>4} pages "
                      f"{len(figure.errors):>3} errors {figure.rate:7.1f} pages/s  "
                      f"p50 {percentile(figure.latencies, 0.5) * 1000:6.1f} ms  "
                      f"p95 {percentile(figure.latencies, 0.95) * 1000:6.1f} ms  "
                      f"ratio to N=1 {ratio(figure.rate, lists[0].rate)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
