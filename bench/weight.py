"""Page weight of the intake page in real Chromium: bytes transferred on a first visit and on
a second visit in the same browser profile, from CDP Network events (encodedDataLength of
every loadingFinished, headers included), with the number of requests and of error answers.

Goals (absolute, issue 13): first visit <= 45 KB, second <= 12 KB, no 404 (the favicon).
The server is the real app (`chuishao serve` settings) under uvicorn on a fresh SQLite.

Usage: python bench/weight.py [--path /] [--visits 2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from bench.common import free_port, prepare_installation, server_env, server_process  # noqa: E402

FIRST_GOAL_KB = 45.0
SECOND_GOAL_KB = 12.0
VERBOSE = False


def visit(context: Any, url: str) -> tuple[int, int, list[str]]:
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes: dict[str, int] = {}
    failed: list[str] = []
    urls: dict[str, str] = {}
    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"],
                                                                   e["request"]["url"]))
    cdp.on("Network.loadingFinished",
           lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])))
    cdp.on("Network.responseReceived", lambda e: failed.append(
        f"{e['response']['status']} {e['response']['url']}")
        if e["response"]["status"] >= 400 else None)
    page.goto(url, wait_until="networkidle")
    page.wait_for_function("document.body.dataset.ready === 'true' || true")
    page.wait_for_timeout(500)  # the favicon is fetched after load
    page.close()
    if VERBOSE:
        for rid, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
            print(f"    {size:7d} {urls.get(rid, '?')}")
    return sum(sizes.values()), len(sizes), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/")
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="list every response's size")
    args = parser.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    from playwright.sync_api import sync_playwright

    ok = True
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chuishao-bench-")))
        port = free_port()
        env = server_env(work / "data", port)
        prepare_installation(env, reviewers=1)
        argv_ = [sys.executable, "-m", "service.cli", "serve"]
        base = stack.enter_context(server_process(argv_, env, port, work / "server.log"))
        playwright = stack.enter_context(sync_playwright())
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(chromium.close)
        context = chromium.new_context(viewport={"width": 390, "height": 844},
                                       locale="zh-CN", has_touch=True, is_mobile=True)
        for n in range(1, args.visits + 1):
            total, requests, failed = visit(context, base + args.path)
            goal = FIRST_GOAL_KB if n == 1 else SECOND_GOAL_KB
            met = total / 1000 <= goal and not failed
            ok = ok and met
            print(f"visit {n}: {total / 1000:.1f} KB over {requests} requests "
                  f"(goal <= {goal:.0f} KB: {'met' if met else 'NOT met'})"
                  + (f"; errors: {', '.join(failed)}" if failed else ""), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
