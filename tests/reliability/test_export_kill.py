"""Exports killed with SIGKILL half-way: no half file under an export's name, no export left
"started" for ever, and the console says it failed.

Before: the command line wrote straight to its output name (a killed export left a file
looking like a real one beside them) and the row stayed ``started``. Now the command line
writes to ``.NAME.partial`` and renames it when complete; a running export holds a lock that
the kernel drops when its process dies, and housekeeping (at start-up, and on every round)
marks failed the started exports nobody holds.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reviewer import auth
from service.domain import exports, reward_policies
from service.domain.models import AuditEntry, Case, Channel, User
from service.domain.models.rewards import RewardExport, RewardRecord
from service.domain.rewards import RewardInputs, calculate, load_policy
from service.platform import tokens
from service.platform.db import Database
from service.platform.settings import Settings
from tests.factories import make_reviewer
from tests.reliability.live import Deployment, deploy, running, wait_for
from tests.serverproc import ROOT, run_cli

T = TypeVar("T")


def seed_ledger(deployment: Deployment, records: int) -> None:
    """Paid reward records in bulk, as bench/export.py seeds them: volume for the export."""
    calc = calculate(load_policy("national-2018"), RewardInputs(
        case_type="hazard", grade="major", fine_fen=123_456_789, insider=True))
    text = calc.to_json()
    database = deployment.database()
    try:
        with database.session() as session:
            reward_policies.ensure_shipped(session)
            row_id = next(r.id for r in reward_policies.policy_rows(session)
                          if r.policy_id == "national-2018")
            user = session.scalar(select(User).where(User.username == "reviewer0"))
            assert user is not None
            channel_id = session.scalar(select(Channel.id).where(Channel.slug == "acme"))
            ids = [os.urandom(16).hex() for _ in range(records)]
            when = session.scalar(select(User.created_at).where(User.id == user.id))
            session.execute(insert(Case), [{
                "id": case_id, "channel_id": channel_id, "created_at": when,
                "updated_at": when, "status": "closed",
                "lookup_hash": hashlib.sha256(case_id.encode()).hexdigest(), "ready": True,
                "verification_result": "true", "grade": "major", "first_valid": True}
                for case_id in ids])
            session.execute(insert(RewardRecord), [{
                "id": os.urandom(16).hex(), "case_id": case_id, "channel_id": channel_id,
                "policy_row_id": row_id, "policy_id": calc.policy_id,
                "policy_version": calc.policy_version, "policy_digest": calc.policy_digest,
                "amount_fen": calc.amount_fen, "calculation": text, "status": "paid",
                "version": 4, "proposed_by": user.id, "proposed_at": when,
                "decided_by": user.id, "decided_at": when, "rejection_reason": "",
                "claim_due_at": when, "claimed_at": when, "claim_sealed_on_server": False,
                "paid_by": user.id, "paid_at": when, "payment_reference": f"转账-{i:06d}"}
                for i, case_id in enumerate(ids)])
    finally:
        database.dispose()


def _read(deployment: Deployment, query: Callable[[Session], T]) -> T:
    # A server starting up beside this reader may hold SQLite's lock for a moment (its
    # housekeeping round writes at once); a reader waits and asks again.
    for attempt in range(20):
        database = deployment.database()
        try:
            with database.session() as session:
                return query(session)
        except OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.25)
        finally:
            database.dispose()
    raise AssertionError("unreachable")


def export_states(deployment: Deployment) -> list[str]:
    return _read(deployment, lambda session: list(session.scalars(select(RewardExport.state))))


def failed_entries(deployment: Deployment) -> list[dict[str, object]]:
    return _read(deployment, lambda session: [entry.details for entry in session.scalars(
        select(AuditEntry).where(AuditEntry.action == "export.failed"))])


def test_command_line_export_killed_half_way(tmp_path: Path,
                                            server_database: str | None) -> None:
    deployment = deploy(tmp_path, server_database)
    seed_ledger(deployment, 15_000)
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    out = out_dir / "rewards.csv"
    partial = exports.partial_path(out)
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "export", "rewards",
                             "--out", str(out)], env=deployment.env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: partial.exists() and partial.stat().st_size > 0,
                        60, 0.002), "the export never started writing"
        assert proc.poll() is None, "the export finished before it could be killed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # Nothing carries an export's name: only the hidden partial file is left.
    assert sorted(p.name for p in out_dir.iterdir()) == [".rewards.csv.partial"]
    assert export_states(deployment) == ["started"]
    done = run_cli(deployment.env, "purge")
    assert done.returncode == 0, done.stderr
    assert export_states(deployment) == ["failed"]
    assert failed_entries(deployment) == [{"reason": "abandoned"}]
    assert not list((deployment.data_dir / "exports-running").iterdir())
    # SIGTERM instead: the command unwinds, removes its partial file and marks its export
    # failed at once.
    again = out_dir / "again.csv"
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "export", "rewards",
                             "--out", str(again)], env=deployment.env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: exports.partial_path(again).exists()
                        and exports.partial_path(again).stat().st_size > 0, 60, 0.002)
        assert proc.poll() is None, "the export finished before it could be stopped"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not again.exists() and not exports.partial_path(again).exists()
    assert sorted(export_states(deployment)) == ["failed", "failed"]
    assert failed_entries(deployment)[-1] == {"reason": "interrupted"}
    # A second housekeeping round changes nothing; a new export completes beside the debris.
    assert run_cli(deployment.env, "purge").returncode == 0
    assert len(failed_entries(deployment)) == 2
    small = out_dir / "small.csv"
    done = run_cli(deployment.env, "export", "rewards", "--out", str(small), "--status",
                   "rejected")
    assert done.returncode == 0, done.stderr
    assert small.exists() and not exports.partial_path(small).exists()
    done = run_cli(deployment.env, "export", "verify", str(small), f"{small}.manifest.json",
                   "--key-file", str(deployment.data_dir / "signing.pub"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_console_export_killed_half_way_is_listed_as_failed(
        tmp_path: Path, server_database: str | None) -> None:
    deployment = deploy(tmp_path, server_database)
    seed_ledger(deployment, 5_000)
    settings = Settings.from_environ(deployment.env)
    database: Database = deployment.database()
    try:
        with database.write_session() as session:
            auditor = make_reviewer(session, "sun.li", roles="auditor").user
            token = auth.start_session(session, settings, auditor)
        cookie = f"{auth.session_cookie(settings)}={token}"
        csrf = auth.csrf_token_for(str(settings.secret_key), "session:" + tokens.digest(token))
    finally:
        database.dispose()
    server = deployment.server()
    port = int(deployment.env["CHUISHAO_PORT"])
    with running(server):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = urllib.parse.urlencode({"csrf_token": csrf, "format": "csv"})
        conn.request("POST", "/console/rewards/export", body=body, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded",
            "Origin": server.base, "Accept-Language": "en"})
        response = conn.getresponse()
        assert response.status == 200, response.read()[:500]
        export_id = response.getheader("X-Chuishao-Export")
        assert export_id and len(response.read(64 * 1024)) == 64 * 1024
        # The server streams the rest as the client reads; it is killed half-way.
        assert export_states(deployment) == ["started"]
        server.kill9()
        conn.close()
        assert export_states(deployment) == ["started"]
        # Back up: housekeeping runs at start-up and finds nobody holding the export's lock.
        server.start()
        assert wait_for(lambda: export_states(deployment) == ["failed"], 30), \
            server.log_tail()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/console/rewards", headers={"Cookie": cookie,
                                                         "Accept-Language": "en"})
        page = conn.getresponse().read().decode()
        conn.close()
    assert 'class="export-failed"' in page
    assert "failed: it did not finish, its file is incomplete and has no manifest" in page
    assert failed_entries(deployment) == [{"reason": "abandoned"}]
