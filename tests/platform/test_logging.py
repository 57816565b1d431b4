"""Run the real server and read its logs: no client address may appear in any line."""

from __future__ import annotations

import contextlib
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.platform.logs import scrub
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

    from service.platform import logs

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


def test_public_records_wait_for_their_period_and_stay_bounded() -> None:
    """Lines of public requests are written only once their period has ended, stamped with
    its start, summed; a flood of them is held in bounded memory."""
    import io
    import logging

    from service.platform import logs

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        logs.configure("INFO", stream, granularity_seconds=3600)
        access = logging.getLogger(logs.ACCESS_LOGGER)
        with logs.serving_the_public():
            for _ in range(3):
                access.info("%s %s %d %.1fms", "POST", "/api/v1/submissions", 201, 30.0)
            for number in range(3 * logs.MAX_ROUTES):
                access.info("%s %s %d %.1fms", "GET", f"/x{number}", 404, 1.5)
            for number in range(2 * logs.MAX_RECORDS):
                logging.getLogger("chuishao.test").warning("odd request %d", number)
        logging.getLogger("chuishao.test").info("a console line, written at once")
        assert stream.getvalue().count("\n") == 1
        # Nothing of the running period is written before it ends.
        assert logs.release_held() == 0 and stream.getvalue().count("\n") == 1
        written = logs.release_held(now=9e9)
        lines = stream.getvalue().splitlines()[1:]
    finally:
        logs.release_held(everything=True)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = False
    assert written == len(lines) == logs.MAX_ROUTES + 1 + logs.MAX_RECORDS + 1
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:00:00,000 ", line) for line in lines)
    assert any("POST /api/v1/submissions 201 ×3 (slowest 30.0ms" in line for line in lines)
    assert any("(other routes) ×" in line for line in lines)
    assert any(f"{logs.MAX_RECORDS} further records" in line for line in lines)
