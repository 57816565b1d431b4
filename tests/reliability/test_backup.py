"""Backup while serving, restore elsewhere, and everything from before the backup is there.

The procedure is the operator's, command for command:

SQLite (online, while `chuishao serve` keeps writing):
    python3 -c "import sqlite3; s = sqlite3.connect('var/chuishao.sqlite3'); \
d = sqlite3.connect('backup/chuishao.sqlite3'); s.backup(d); d.close(); s.close()"
    cp -p var/secret.key var/signing.key backup/
PostgreSQL:
    pg_dump --format=custom --file=backup/chuishao.dump "$CHUISHAO_DATABASE_URL"
    cp -p var/secret.key var/signing.key backup/
Restore: a new data dir with the two keys (and, on SQLite, the database file; on PostgreSQL
`pg_restore --no-owner --exit-on-error --dbname="$NEW_DATABASE_URL" backup/chuishao.dump`
into a new empty database), then `chuishao migrate` and `chuishao serve` there.

Checked on the restored server: every case acknowledged before the backup began is present,
ready, and a reviewer's private key opens its report and file; its reporter can still come
back with the receipt; a follow-up session issued before the backup is still accepted (the
secret key came along); the signing key still matches the installation; new reports are taken.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import crypto
from service.domain.installation import get_installation
from tests.pgutil import temporary_database
from tests.reliability.live import (
    Deployment,
    Errors,
    LiveServer,
    Sent,
    assert_case_complete,
    assert_no_half_case,
    count_cases,
    deploy,
    describe,
    fetch_files,
    file_content,
    followup_feed,
    make_report,
    plain,
    running,
    sqlite_integrity,
    wait_for,
)
from tests.serverproc import ROOT, cli_env, free_port, run_cli

KEY_FILES = ("secret.key", "signing.key")
BEFORE = 5  # cases acknowledged before the backup begins
WRITER_LIMIT = 40  # the writer during the backup stops by itself after this many

SQLITE_BACKUP = ("import sqlite3, sys; s = sqlite3.connect(sys.argv[1]); "
                 "d = sqlite3.connect(sys.argv[2]); s.backup(d); d.close(); s.close()")


def submit(deployment: Deployment, base: str, n: int) -> Sent:
    files = [(f"photo{n}.jpg", file_content(n, 70_000 + n))]
    report = make_report(n)
    receipt = deployment.client(base).submit(
        "acme", report, None, [plain(name, content) for name, content in files])
    return Sent(receipt, report, {name: hashlib.sha256(c).hexdigest() for name, c in files})


def copy_keys(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in KEY_FILES:
        shutil.copy2(source / name, target / name)  # cp -p: mode 0600 kept


def backup_restore_roundtrip(tmp_path: Path, database_url: str | None,
                             backup: Callable[[Deployment, Path], None],
                             restore: Callable[[Path, Path], str | None]) -> None:
    """Serve, write during ``backup``, ``restore`` into a new data dir, check it there."""
    deployment = deploy(tmp_path / "old", database_url, secret_key=False)
    server = deployment.server()
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    errors, written = Errors(), []
    stop_writing = threading.Event()
    with running(server):
        assert (deployment.data_dir / "secret.key").exists(), "no generated secret key"
        deployment.learn_channel(server.base)
        before = [submit(deployment, server.base, n) for n in range(BEFORE)]
        early = followup_feed(deployment.client(server.base), deployment, before[0].receipt)

        def writer() -> None:
            for n in range(100, 100 + WRITER_LIMIT):
                if stop_writing.is_set():
                    return
                try:
                    written.append(submit(deployment, server.base, n))
                except Exception as exc:
                    errors.add(f"writer, case {n}: {describe(exc)}")
                    return

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            # The backup starts while reports keep arriving.
            assert wait_for(lambda: len(written) >= 2 or errors.stop.is_set(), timeout=60)
            backup(deployment, backup_dir)
            copy_keys(deployment.data_dir, backup_dir)
            during = len(written)
            time.sleep(0.3)
        finally:
            stop_writing.set()
            thread.join(timeout=60)
    assert not errors.items, errors.items
    assert len(written) > during or len(written) == WRITER_LIMIT, "no write after the backup"

    new_dir = tmp_path / "new" / "var"
    new_dir.mkdir(parents=True)
    copy_keys(backup_dir, new_dir)
    new_url = restore(backup_dir, new_dir)
    extra = {"CHUISHAO_POW_DIFFICULTY": deployment.env["CHUISHAO_POW_DIFFICULTY"],
             "CHUISHAO_RECEIPT_ITERATIONS": deployment.env["CHUISHAO_RECEIPT_ITERATIONS"]}
    if new_url:
        extra["CHUISHAO_DATABASE_URL"] = new_url
    env = cli_env(new_dir, free_port(), **extra)
    del env["CHUISHAO_SECRET_KEY"]  # it must come from the restored secret.key
    assert run_cli(env, "migrate").returncode == 0
    restored = Deployment(new_dir, env, new_url or f"sqlite:///{new_dir / 'chuishao.sqlite3'}",
                          deployment.reviewer_keys, deployment.recovery_key)
    new_server = LiveServer(env, tmp_path / "new" / "server.log")
    with running(new_server):
        restored.learn_channel(new_server.base)
        assert restored.salt == deployment.salt
        client = restored.client(new_server.base)
        for sent in before:
            feed = followup_feed(client, restored, sent.receipt)
            assert [o for k, o in feed["opened"].values() if k == "report"] == [sent.report]
            assert fetch_files(restored, new_server.base, feed) == sent.files
        # A follow-up session from before the backup is still valid: same secret key.
        status, _ = client.transport("GET", "/api/v1/followup", headers={
            "Authorization": f"Bearer {early['session_token']}"})
        assert status == 200
        after = submit(restored, new_server.base, 999)
    assert not new_server.errors_in_log(), new_server.errors_in_log()[:5]

    database = restored.database()
    try:
        with database.session() as session:
            for sent in [*before, after]:
                assert_case_complete(session, restored, sent)
            assert_no_half_case(session)
            # A consistent snapshot: what it holds of the writer's cases is whole.
            assert BEFORE + 1 <= count_cases(session, ready=True) <= BEFORE + len(written) + 1
            installation = get_installation(session)
            assert installation is not None
            signing_key = (new_dir / "signing.key").read_bytes()
            assert crypto.verify_signature(installation.signing_public_key, b"export",
                                           crypto.sign(signing_key, b"export"))
    finally:
        database.dispose()


@pytest.mark.sqlite_only
def test_sqlite_online_backup_and_restore(tmp_path: Path) -> None:
    def backup(deployment: Deployment, target: Path) -> None:
        source = deployment.database_url.removeprefix("sqlite:///")
        done = subprocess.run([sys.executable, "-c", SQLITE_BACKUP, source,
                               str(target / "chuishao.sqlite3")],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert sqlite_integrity(f"sqlite:///{target / 'chuishao.sqlite3'}") == []

    def restore(backup_dir: Path, new_dir: Path) -> None:
        shutil.copy2(backup_dir / "chuishao.sqlite3", new_dir / "chuishao.sqlite3")
        return None

    backup_restore_roundtrip(tmp_path, None, backup, restore)


@pytest.mark.postgres
def test_postgres_dump_and_restore(tmp_path: Path, db_backend: str,
                                   server_database: str | None) -> None:
    if db_backend != "postgres":
        pytest.skip("PostgreSQL backup runs with --db=postgres")
    missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (PostgreSQL client tools)")
    server = os.environ["CHUISHAO_TEST_POSTGRES_URL"]
    assert server_database is not None

    def backup(deployment: Deployment, target: Path) -> None:
        done = subprocess.run(["pg_dump", "--format=custom",
                               f"--file={target / 'chuishao.dump'}", deployment.database_url],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    with temporary_database(server) as new_url:
        def restore(backup_dir: Path, new_dir: Path) -> str:
            done = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error",
                                   f"--dbname={new_url}", str(backup_dir / "chuishao.dump")],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            return new_url

        backup_restore_roundtrip(tmp_path, server_database, backup, restore)
