"""Run the real server and read its logs: no client address may appear in any line."""

from __future__ import annotations

import contextlib
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.logs import scrub
from tests.serverproc import cli_env, free_port, run_cli, serving


def test_scrub_blanks_addresses() -> None:
    assert "203.0.113.9" not in scrub("client 203.0.113.9:5123 said hi")
    assert "2001:db8::1" not in scrub("from 2001:db8::1 port 80")
    assert scrub("GET /static/css/app.css 200 1.2ms") == "GET /static/css/app.css 200 1.2ms"


@pytest.mark.sqlite_only
def test_server_logs_hold_no_client_address(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path / "var", port, CHUISHAO_LOG_LEVEL="DEBUG")
    assert run_cli(env, "migrate").returncode == 0
    log_path = tmp_path / "server.log"
    with serving(env, log_path) as base:
        forwarded = {"X-Forwarded-For": "198.51.100.23", "X-Real-IP": "198.51.100.24",
                     "Forwarded": "for=198.51.100.25"}
        for path in ("/", "/no-such-page", "/static/css/app.css", "/console/invite/x",
                     "/api/v1/channels", "/followup"):
            request = urllib.request.Request(base + path, headers=forwarded)
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(request, timeout=5).read()  # noqa: S310
        # A malformed request, which servers like to log with the peer's address.
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            sock.recv(1000)
    text = log_path.read_text()
    assert "GET / 200" in text  # our own access log did run
    assert "GET /no-such-page 404" in text
    for needle in ("127.0.0.1", "198.51.100.", "localhost:"):
        assert needle not in text, f"{needle!r} in server log:\n{text}"


def test_log_time_stamps_stay_readable(tmp_path: Path) -> None:
    import io
    import logging

    from service import logs

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("INFO")
        handler = root.handlers[0]
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("chuishao.test").info("from 198.51.100.7 at noon")
        line = stream.getvalue()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = False
    assert "[address]" in line and "198.51.100.7" not in line
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO", line), line
