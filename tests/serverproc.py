"""The servers tests run, in one place: a free port, the real app under uvicorn in a thread,
and the real `chuishao serve` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, port: int, *, lifespan: str = "on",
                    name: str = "live-chuishao") -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1:port in a thread until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan=lifespan,
                                           access_log=False))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def cli_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "CHUISHAO_DATA_DIR": str(data_dir),
           "CHUISHAO_PORT": str(port), "CHUISHAO_SECRET_KEY": "server-test"}
    env.update(extra)
    return env


# The command line as the checkout runs it; the wheel test passes an installed `chuishao`.
CHECKOUT_CLI = (sys.executable, "-m", "service.cli")


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None,
            command: tuple[str, ...] = CHECKOUT_CLI, cwd: Path = ROOT,
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120)


@contextmanager
def serving(env: dict[str, str], log_path: Path, *, command: tuple[str, ...] = CHECKOUT_CLI,
            cwd: Path = ROOT) -> Iterator[str]:
    base = f"http://127.0.0.1:{env['CHUISHAO_PORT']}"
    with log_path.open("wb") as log:
        server = subprocess.Popen([*command, "serve"], env=env, cwd=cwd, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
