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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

import crypto
from service.app import create_app
from service.client import Client, solve_pow
from service.domain import sealing
from service.platform import migrate
from service.platform.db import Database
from service.platform.settings import Settings
from tests import factories, serverproc
from tests.conftest import BASE_URL, fast_settings
from tests.console import sign_in
from tests.faults import FailingCommit, Filler, ReadOnlyDatabase, small_filesystem

REPORT = {"v": 1, "unit": "某机械厂", "location": "三车间", "category": "hazard",
          "description": "冲床光栅被短接", "seen_at": "", "insider": "", "language": "zh_CN"}


@dataclass
class Site:
    settings: Settings
    filler: Filler
    database_url: str
    # What "storage full" means here: the data directory's disk filled (SQLite), or the
    # database turned read-only (PostgreSQL keeps its data elsewhere).
    fault: Filler | ReadOnlyDatabase


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
        filler = Filler(data_dir)
        yield Site(settings, filler, settings.database,
                   ReadOnlyDatabase(server_database) if server_database else filler)


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
        # The background storage check has made its first probe write (the next is 30 s
        # away), so the one commit the fault hits is the submission's.
        deadline = time.monotonic() + 10
        while client.app.state.storage.last is None:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline
            time.sleep(0.05)
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
            status = server.wait(timeout=60)  # a loaded machine is slow to stop
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    text = log_path.read_text()
    assert "Application shutdown complete" in text
    assert status == 0, text


def _wait_ready(client: TestClient, ready: bool, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get("/readyz")
        if (answer.status_code == 200) == ready or time.monotonic() > deadline:
            assert answer.status_code == (200 if ready else 503), answer.text
            body: dict[str, Any] = answer.json()
            return body
        time.sleep(0.5)


def test_full_disk_is_visible_truthful_and_reading_still_works(
        site: Site, db_backend: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = replace(site.settings, min_free_mb=1, warn_free_mb=4)
    app = create_app(settings)
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        api = Client(factories.testclient_transport(client), language="en")
        receipt = api.submit("acme", REPORT)
        info = api.channels()
        keys = crypto.derive_receipt(receipt, crypto.b64u_decode(info["installation"]["salt"]),
                                     settings.receipt_iterations)
        assert _wait_ready(client, True)["status"] == "ready"
        with Database.from_url(site.database_url).sessionmaker() as session:
            admin = factories.make_reviewer(session, "root", roles="admin").user
            admin.totp_confirmed = True
            session.commit()
            csrf = sign_in(client, session, settings, admin)
        healthy = client.get("/console/admin")
        assert healthy.status_code == 200 and 'id="storage-free"' in healthy.text
        assert 'id="storage-failing"' not in healthy.text
        envelopes = [_envelope(api) for _ in range(3)]
        stamps = [_stamp(client) for _ in range(4)]

        site.fault.fill()
        with caplog.at_level(logging.INFO):
            # Monitoring sees it: not ready, and why; liveness stays up (a restart frees
            # nothing) but says what it last saw.
            checks = _wait_ready(client, False)["checks"]
            assert checks["database_writable"]["ok"] is False
            cause = "full" if db_backend == "sqlite" else "read-only"
            assert cause in checks["database_writable"]["cause"]
            assert checks["free_space"]["ok"] is (db_backend != "sqlite")
            assert checks["database_readable"]["ok"] is True
            assert checks["migrations_current"]["ok"] is True
            live = client.get("/healthz")
            assert live.status_code == 200 and live.json() == {"status": "ok", "ready": False}

            # Reporters are told the truth, in their language, and nothing is half-stored.
            english = client.post("/api/v1/submissions",
                                  json={**envelopes[0], "pow": stamps[0]},
                                  headers={"Accept-Language": "en"})
            chinese = client.post("/api/v1/submissions",
                                  json={**envelopes[1], "pow": stamps[1]},
                                  headers={"Accept-Language": "zh-CN"})
            for answer in (english, chinese):
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "storage_unavailable"
            assert "cannot store reports right now" in english.json()["error"]["message"]
            assert "无法保存举报" in chinese.json()["error"]["message"]
            page = client.post("/report", data=factories.with_token(client, {
                "channel": "acme", "unit": "某厂", "category": "hazard", "description": "漏气",
                "sealing": "noscript"}),
                               headers={"Accept-Language": "zh-CN"})
            assert page.status_code == 503
            assert "无法保存举报" in page.text and "返回" in page.text
            assert "default-src 'none'" in page.headers["content-security-policy"]
            page = client.post("/report", data=factories.with_token(client, {
                "channel": "acme", "unit": "ACME", "category": "hazard", "description": "leak",
                "sealing": "noscript"}), headers={"Accept-Language": "en"})
            assert page.status_code == 503
            assert "cannot store reports right now" in page.text
            assert "Go back in your browser" in page.text and "another reporting line" in page.text

            # Reading needs no write: the reporter opens the case and reads it.
            body = {"lookup_secret": crypto.b64u_encode(keys.lookup_secret), "pow": stamps[2]}
            opened = client.post("/api/v1/followup/session", json=body)
            assert opened.status_code == 200, opened.text
            feed = client.get("/api/v1/followup",
                              headers={"Authorization": f"Bearer {opened.json()['token']}"})
            assert feed.status_code == 200 and feed.json()["status"] == "new"
            # Without JavaScript too (that path spends no stamp).
            nojs = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"})
            assert nojs.status_code == 200, nojs.text
            assert 'id="messages"' in nojs.text
            # ... but the stamp it spent, held in memory, buys nothing a second time.
            replay = client.post("/api/v1/followup/session", json=body)
            assert replay.status_code == 400 and replay.json()["error"]["code"] == "pow_invalid"

            # Administrators see it in the console.
            console = client.get("/console/admin", headers={"Accept-Language": "en"})
            assert console.status_code == 200, console.text
            assert 'id="storage-failing"' in console.text
            assert "database_writable" in console.text
            write = client.post("/console/admin/invitations", data={
                "csrf_token": csrf, "roles": ["auditor"], "hours": "24"},
                headers={"Accept-Language": "en"})
            assert write.status_code == 503, write.text
            assert "The database cannot be written right now" in write.text

        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "storage cannot be written" in errors[0].getMessage()
        assert cause in errors[0].getMessage()

        site.fault.free()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert _wait_ready(client, True)["status"] == "ready"
        assert "storage works again" in caplog.text
        # The held stamp was written down once storage came back: still spent, after a
        # restart too.
        replay = client.post("/api/v1/followup/session", json=body)
        assert replay.json()["error"]["code"] == "pow_invalid"
        assert len(client.app.state.held_stamps) == 0  # type: ignore[attr-defined]
        again = client.post("/api/v1/submissions", json={**envelopes[2], "pow": stamps[3]})
        assert again.status_code == 201, again.text
