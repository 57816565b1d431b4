"""Disk growth per report, for the sizing notes in docs/OPERATIONS.md.

Sends N small reports (text only, about 300 characters), then M reports with one attachment
each, through the real `chuishao serve` and the JSON API with real sealing, and measures what
the database grew by: the SQLite file after a checkpoint (the log folded back in), or
pg_database_size on PostgreSQL.

    .venv/bin/python bench/sizing.py [--small 500] [--files 20] [--file-kb 2048] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

from common import (
    free_port,
    prepare_installation,
    server_env,
    server_process,
    temporary_pg_database,
)

from service.client import Client, urllib_transport
from service.domain import sealing

REPORT = {"v": 1, "unit": "某机械有限公司", "location": "三号车间 液氨储罐区东侧",
          "category": "hazard", "seen_at": "上周三夜班", "insider": "yes", "language": "zh_CN",
          "description": "液氨储罐区的泄漏报警器已经拆除两个月，夜班没有人巡检。" * 5}


def database_bytes(url: str) -> int:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0])


def measure(workdir: Path, postgres: str | None, small: int, files: int, file_kb: int) -> None:
    port = free_port()
    env = server_env(workdir / "var", port, postgres, CHUISHAO_POW_DIFFICULTY="0",
                     CHUISHAO_RECEIPT_ITERATIONS="1000", CHUISHAO_PURGE_MINUTES="0")
    install = prepare_installation(env)
    url = install.database_url
    with server_process([sys.executable, "-m", "service.cli", "serve"], env, port,
                        workdir / "serve.log") as base:
        client = Client(urllib_transport(base), language="en")
        start = database_bytes(url)
        for _ in range(small):
            client.submit(install.channel_slug, REPORT)
        after_small = database_bytes(url)
        content = os.urandom(file_kb * 1024)
        for index in range(files):
            plain = sealing.PlainFile(name=f"photo{index}.jpg", type="image/jpeg",
                                      size=len(content), read=lambda: [content])
            client.submit(install.channel_slug, REPORT, files=[plain])
        after_files = database_bytes(url)
    per_case = (after_small - start) / small
    per_file_case = (after_files - after_small) / files
    per_mb = (per_file_case - per_case) / (file_kb / 1024)
    kind = "PostgreSQL" if postgres else "SQLite"
    print(f"{kind}: {small} small reports grew the database by {after_small - start} bytes: "
          f"{per_case:.0f} bytes per report ({1024 * 1024 / per_case:.0f} reports per MiB)")
    print(f"{kind}: {files} reports with a {file_kb} KiB file each: {per_file_case:.0f} bytes "
          f"per report, {per_mb / (1024 * 1024):.3f} MiB stored per MiB attached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--file-kb", type=int, default=2048)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a fresh database is made)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chuishao-sizing-") as tmp:
        if args.postgres:
            with temporary_pg_database(args.postgres) as url:
                measure(Path(tmp), url, args.small, args.files, args.file_kb)
        else:
            measure(Path(tmp), None, args.small, args.files, args.file_kb)


if __name__ == "__main__":
    main()
