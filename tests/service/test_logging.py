"""Run the real server and read its logs: no client address may appear in any line."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from service.logs import scrub

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_scrub_blanks_addresses() -> None:
    assert "203.0.113.9" not in scrub("client 203.0.113.9:5123 said hi")
    assert "2001:db8::1" not in scrub("from 2001:db8::1 port 80")
    assert scrub("GET /static/css/app.css 200 1.2ms") == "GET /static/css/app.css 200 1.2ms"


@pytest.mark.sqlite_only
def test_server_logs_hold_no_client_address(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CHUISHAO_DATA_DIR": str(tmp_path / "var"),
        "CHUISHAO_PORT": str(port),
        "CHUISHAO_SECRET_KEY": "log-test",
        "CHUISHAO_LOG_LEVEL": "DEBUG",
    }
    python = sys.executable
    subprocess.run([python, "-m", "service.cli", "migrate"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([python, "-m", "service.cli", "serve"], env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            forwarded = {"X-Forwarded-For": "198.51.100.23", "X-Real-IP": "198.51.100.24",
                         "Forwarded": "for=198.51.100.25"}
            for path in ("/", "/no-such-page", "/static/css/app.css", "/console/invite/x"):
                request = urllib.request.Request(base + path, headers=forwarded)
                with contextlib.suppress(urllib.error.HTTPError):
                    urllib.request.urlopen(request, timeout=5).read()  # noqa: S310
            # A malformed request, which servers like to log with the peer's address.
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"NONSENSE\r\n\r\n")
                sock.recv(1000)
        finally:
            server.terminate()
            server.wait(timeout=10)
    text = log_path.read_text()
    assert "GET / 200" in text  # our own access log did run
    assert "GET /no-such-page 404" in text
    for needle in ("127.0.0.1", "198.51.100.", "localhost:"):
        assert needle not in text, f"{needle!r} in server log:\n{text}"
