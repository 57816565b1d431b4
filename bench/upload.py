"""What one large attachment costs: client time end to end and the server's memory.

Starts the real server (`chuishao serve`, SQLite), submits one report with an attachment of
--mb megabytes through the public API (sealed locally in 64 KiB STREAM chunks, each PUT on a
keep-alive connection), and prints:
- wall time and throughput of seal + upload + finish;
- the floor: sealing the same bytes locally with no network or database, in the same run;
- the server's resident memory before and at its peak (VmHWM), to show it stays flat.

Usage: python bench/upload.py [--mb 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Http, free_port, prepare_installation, server_env  # noqa: E402

import crypto  # noqa: E402
from service.client import Client  # noqa: E402
from service.domain.sealing import PlainFile  # noqa: E402

PIECE = 1 << 20


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found")


def content(size: int) -> Iterator[bytes]:
    block = os.urandom(PIECE)
    left = size
    while left:
        n = min(left, PIECE)
        yield block[:n]
        left -= n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="chuishao-upload-") as tmp:
        port = free_port()
        env = server_env(Path(tmp) / "var", port, CHUISHAO_POW_DIFFICULTY="0",
                         CHUISHAO_RECEIPT_ITERATIONS="1000",
                         CHUISHAO_MAX_FILE_BYTES=str(size + 1024), CHUISHAO_LOG_LEVEL="WARNING")
        prepare_installation(env)
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], env=env,
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            http = Http(f"http://127.0.0.1:{port}", timeout=120)
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http.request("GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            baseline = memory_kb(server.pid, "VmRSS")

            def transport(method: str, path: str, *, body: bytes | None = None,
                          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
                return http.request(method, path, body, headers)

            client = Client(transport)
            plain = PlainFile("big.bin", "application/octet-stream", size, lambda: content(size))
            started = time.perf_counter()
            receipt = client.submit("acme", {"v": 1, "unit": "基准", "description": "大附件"},
                                    None, [plain])
            elapsed = time.perf_counter() - started
            peak = memory_kb(server.pid, "VmHWM")
            assert len(receipt) == 21
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()
    # Floor: the same sealing with nothing else, in this process.
    key, prefix = crypto.new_key(), os.urandom(7)
    started = time.perf_counter()
    for _chunk in crypto.seal_file(key, prefix, crypto.new_id(), crypto.new_id(), content(size),
                                   size):
        pass
    floor = time.perf_counter() - started
    print(f"attachment: {args.mb} MB")
    print(f"seal + upload + finish: {elapsed:.2f} s ({args.mb / elapsed:.1f} MB/s)")
    print(f"floor (seal only, no network): {floor:.2f} s; ratio {elapsed / floor:.1f}")
    print(f"server memory: {baseline / 1024:.0f} MB before, peak {peak / 1024:.0f} MB "
          f"(+{(peak - baseline) / 1024:.0f} MB for a {args.mb} MB upload)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
