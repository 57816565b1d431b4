"""Faults as an operator and a reporter see them: a commit that fails, a full disk.

Each test reproduces the fault for real: a tmpfs of a few MB filled to the last byte (SQLite)
or a backend ended by the server under a commit (PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

import crypto
from service import migrate, sealing
from service.app import create_app
from service.client import Client, solve_pow
from service.db import Database
from service.settings import Settings
from tests import factories, serverproc
from tests.conftest import BASE_URL, fast_settings
from tests.faults import FailingCommit, Filler, small_filesystem

REPORT = {"v": 1, "unit": "某机械厂", "location": "三车间", "category": "hazard",
          "description": "冲床光栅被短接", "seen_at": "", "insider": "", "language": "zh_CN"}


@dataclass
class Site:
    settings: Settings
    filler: Filler
    database_url: str


@pytest.fixture
def site(tmp_path: Path, server_database: str | None) -> Iterator[Site]:
    with small_filesystem(tmp_path / "data", size_mb=8) as data_dir:
        settings = fast_settings(data_dir, purge_minutes=0,
                                 database_url=server_database or "")
        migrate.upgrade(settings.database)
        database = Database.from_url(settings.database)
        try:
            with database.sessionmaker() as session:
                factories.make_world(session, settings)
        finally:
            database.dispose()
        yield Site(settings, Filler(data_dir), settings.database)


def _envelope(client: Client) -> dict[str, Any]:
    info = client.channels()
    channel = next(c for c in info["channels"] if c["id"] == "acme")
    sealed = sealing.seal_submission(channel, crypto.b64u_decode(info["installation"]["salt"]),
                                     info["installation"]["receipt_iterations"], REPORT, None, [])
    return dict(sealed.envelope)


def _stamp(client: TestClient) -> str:
    challenge = client.get("/api/v1/pow").json()
    return solve_pow(challenge["challenge"], challenge["difficulty"])


def _engine(client: TestClient) -> Engine:
    bind = client.app.state.database.bind  # type: ignore[attr-defined]
    assert isinstance(bind, Engine)
    return bind


def test_deferred_writes_survive_a_failed_commit(site: Site, db_backend: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The request's commit fails; the stamp it spent is still recorded, in a fresh
    transaction, so it cannot be replayed once the fault is gone."""


    app = create_app(site.settings)
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        api = Client(factories.testclient_transport(client), language="en")
        failing = FailingCommit(
            _engine(client), filler=site.filler if db_backend == "sqlite" else None,
            server_url=os.environ.get("CHUISHAO_TEST_POSTGRES_URL") and site.database_url)
        stamp = _stamp(client)
        envelope = _envelope(api)
        failing.arm()
        with caplog.at_level(logging.INFO):
            refused = client.post("/api/v1/submissions", json={**envelope, "pow": stamp})
        failing.remove()
        assert failing.fired == 1
        assert refused.status_code >= 500, refused.text
        assert "prepared" not in caplog.text
        assert "a deferred write failed" not in caplog.text
        # The fault is gone; the same stamp must not buy a second submission.
        replay = client.post("/api/v1/submissions", json={**_envelope(api), "pow": stamp})
        assert replay.status_code == 400, replay.text
        assert replay.json()["error"]["code"] == "pow_invalid"
        # A fresh stamp is accepted: the service is back by itself.
        fresh = client.post("/api/v1/submissions", json={**_envelope(api), "pow": _stamp(client)})
        assert fresh.status_code == 201, fresh.text


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_zero_after_a_clean_signalled_shutdown(tmp_path: Path, stop: int) -> None:
    env = serverproc.cli_env(tmp_path / "var", serverproc.free_port())
    assert serverproc.run_cli(env, "migrate").returncode == 0
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], env=env,
                                  cwd=serverproc.ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{env['CHUISHAO_PORT']}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    assert time.monotonic() < deadline and server.poll() is None, \
                        log_path.read_text()
                    time.sleep(0.2)
            server.send_signal(stop)
            status = server.wait(timeout=20)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    text = log_path.read_text()
    assert "Application shutdown complete" in text
    assert status == 0, text
