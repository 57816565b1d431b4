"""One large attachment, click to receipt, against a bare upload of the same bytes.

Starts the real server (`chuishao serve`, SQLite, `synchronous=FULL`) and, beside it, a bare
Starlette app whose one endpoint streams a PUT body to a file and fsyncs it. In one Chromium
(the browser tests' flags) it then measures, for a file of --mb MiB of random bytes:
- the report page: fill the form, choose the file, click, until the receipt is on screen
  (`intake.js` seals it in 64 KiB STREAM chunks and sends them in batches, docs/API.md 4.3);
- the floor: the same file sent by `fetch` as one PUT to the bare endpoint, until its answer;
- their ratio against the goal (at most 2x), each --repeats times, median;
- the same with the CPU slowed x4 (CDP Emulation.setCPUThrottlingRate), unless --no-throttle;
- the server's resident memory before, after, and at its peak (VmHWM): it must stay flat;
- `chuishao submit`'s Python client on the same server, for comparison.

Usage: python bench/upload.py [--mb 100] [--repeats 3] [--no-throttle]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import CHROMIUM, CHROMIUM_ARGS, OBSERVER, make_file, watched  # noqa: E402
from common import Http, free_port, prepare_installation, server_env, server_process  # noqa: E402

from service.client import Client  # noqa: E402
from service.domain.sealing import PlainFile  # noqa: E402

GOAL = 2.0
PIECE = 1 << 20

# The bare endpoint's page: a file input, nothing else; the upload is one fetch.
FLOOR_PAGE = b"<!doctype html><title>floor</title><input type=file id=f>"
FLOOR_UPLOAD = """
async () => {
  const file = document.getElementById('f').files[0];
  const start = performance.now();
  const response = await fetch('/upload', { method: 'PUT', body: file });
  await response.text();
  return { ms: performance.now() - start, status: response.status, size: file.size };
}
"""
CLICK = """
() => {
  window.__bench.receipt = null;
  const start = performance.now();
  document.getElementById('submit-report').click();
  return start;
}
"""


def floor_app(target: Path) -> Any:
    """Starlette with one route: the body streamed to ``target``, fsynced, then 204."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def page(request: Request) -> Response:
        return Response(FLOOR_PAGE, media_type="text/html")

    async def upload(request: Request) -> Response:
        with target.open("wb") as out:
            async for piece in request.stream():
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/", page), Route("/healthz", health),
                             Route("/upload", upload, methods=["PUT"])])


def serve_floor(port: int, target: Path) -> None:
    import uvicorn

    uvicorn.run(floor_app(target), host="127.0.0.1", port=port, log_level="warning")


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found")


def server_pid(port: int) -> int:
    """The process listening on ``port`` (the server's uvicorn), from /proc/net/tcp."""
    hexport = f"{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(":" + hexport) and fields[3] == "0A":
            inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    raise RuntimeError(f"no process listens on {port}")


def new_page(chromium: Any, base: str, rate: int, errors: list[str]) -> tuple[Any, Any]:
    context = chromium.new_context(base_url=base, locale="zh-CN")
    context.add_init_script(OBSERVER)
    page = watched(context, errors, base)
    page.set_default_timeout(900_000)
    if rate > 1:
        context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": rate})
    return context, page


def report_page(chromium: Any, base: str, path: Path, rate: int,
                errors: list[str]) -> tuple[float, int]:
    """Click -> receipt on screen, in ms, and the number of batch requests."""
    context, page = new_page(chromium, base, rate, errors)
    # Counted by the browser, not the page's resource timing: the batches go from a worker.
    batches: list[str] = []
    context.on("request", lambda r: batches.append(r.url) if "/batch/" in r.url else None)
    try:
        page.goto("/")
        page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
        page.fill("#f-unit", "某机械厂")
        page.select_option("#f-category", "hazard")
        page.fill("#f-description", "液氨储罐阀门泄漏，已经两周没有修理。附现场录像。")
        page.set_input_files("#f-files", str(path))
        # The file is random bytes: it cannot be cleaned, the reporter sends it as it is.
        page.check("#file-report input[value=send]")
        start = page.evaluate(CLICK)
        page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
        page.wait_for_function("window.__bench.receipt !== null", timeout=10_000)
        return page.evaluate("window.__bench.receipt") - start, len(batches)
    finally:
        context.close()


def bare_upload(chromium: Any, base: str, path: Path, rate: int, errors: list[str]) -> float:
    context, page = new_page(chromium, base, rate, errors)
    try:
        page.goto("/")
        page.set_input_files("#f", str(path))
        result = page.evaluate(FLOOR_UPLOAD)
        if result["status"] != 204 or result["size"] != path.stat().st_size:
            errors.append(f"floor upload: {result}")
        return float(result["ms"])
    finally:
        context.close()


def python_client(base: str, size: int) -> float:
    http = Http(base, timeout=300)

    def transport(method: str, path: str, *, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return http.request(method, path, body, headers)

    block = os.urandom(PIECE)

    def content() -> Any:
        left = size
        while left:
            n = min(left, PIECE)
            yield block[:n]
            left -= n

    plain = PlainFile("big.bin", "application/octet-stream", size, content)
    started = time.perf_counter()
    receipt = Client(transport).submit("acme", {"v": 1, "unit": "基准", "description": "大附件"},
                                       None, [plain])
    assert len(receipt) == 21
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-throttle", action="store_true")
    parser.add_argument("--floor", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        serve_floor(int(args.floor[0]), Path(args.floor[1]))
        return 0
    if not (1 <= args.mb <= 190 and 1 <= args.repeats <= 10):
        parser.error("--mb 1..190, --repeats 1..10")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chuishao-upload-") as tmp:
        work = Path(tmp)
        port, floor_port = free_port(), free_port()
        env = server_env(work / "var", port, CHUISHAO_POW_DIFFICULTY="0",
                         CHUISHAO_RECEIPT_ITERATIONS="1000",
                         CHUISHAO_MAX_FILE_BYTES=str(200 * 1024 * 1024),
                         CHUISHAO_LOG_LEVEL="WARNING")
        prepare_installation(env)
        path = make_file(work, args.mb)
        serve = [sys.executable, "-m", "service.cli", "serve"]
        floor = [sys.executable, str(Path(__file__).resolve()), "--floor", str(floor_port),
                 str(work / "floor.bin")]
        floor_env = {"PATH": os.environ.get("PATH", "")}
        with server_process(serve, env, port, work / "server.log") as base, \
                server_process(floor, floor_env, floor_port, work / "floor.log") as floor_base, \
                sync_playwright() as playwright:
            pid = server_pid(port)
            rss_before = memory_kb(pid, "VmRSS")
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            rates = [1] if args.no_throttle else [1, 4]
            results: dict[int, tuple[list[float], list[float], int]] = {}
            rss_runs: list[int] = []
            for rate in rates:
                ours, bare, batches = [], [], 0
                for _ in range(args.repeats):
                    # Alternate, so a busy moment of the machine falls on both.
                    bare.append(bare_upload(chromium, floor_base, path, rate, errors))
                    took, batches = report_page(chromium, base, path, rate, errors)
                    ours.append(took)
                    rss_runs.append(memory_kb(pid, "VmRSS"))
                results[rate] = (ours, bare, batches)
            chromium.close()
            python_ms = python_client(base, args.mb * 1024 * 1024)
            rss_after = memory_kb(pid, "VmRSS")
            rss_peak = memory_kb(pid, "VmHWM")
    mb = args.mb * 1024 * 1024 / 1e6
    print(f"attachment: {args.mb} MiB of random bytes ({mb:.1f} MB), Chromium {CHROMIUM}, "
          f"SQLite, {args.repeats} runs each, medians")
    for rate, (ours, bare, batches) in results.items():
        ratio = statistics.median(ours) / statistics.median(bare)
        label = "normal CPU" if rate == 1 else f"CPU x{rate} throttled"
        print(f"[{label}]")
        print(f"  report page, click -> receipt: {statistics.median(ours):7.0f} ms "
              f"({mb / statistics.median(ours) * 1000:.0f} MB/s; {batches} batch requests) "
              f"[{', '.join(f'{v:.0f}' for v in ours)}]")
        print(f"  floor, one PUT to a bare Starlette endpoint streaming to disk: "
              f"{statistics.median(bare):7.0f} ms "
              f"[{', '.join(f'{v:.0f}' for v in bare)}]")
        print(f"  ratio {ratio:.2f} (goal <= {GOAL:.0f}): {'met' if ratio <= GOAL else 'NOT met'}")
    print(f"chuishao submit (Python client, batches) on the same server: {python_ms:.0f} ms")
    print(f"server RSS: {rss_before / 1024:.0f} MB before, {rss_after / 1024:.0f} MB after "
          f"{sum(len(r[0]) for r in results.values()) + 1} uploads of {args.mb} MiB, peak "
          f"{rss_peak / 1024:.0f} MB (+{(rss_peak - rss_before) / 1024:.0f} MB); after each "
          f"report-page upload: {', '.join(f'{kb / 1024:.0f}' for kb in rss_runs)} MB")
    for error in errors:
        print(f"  error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
