"""`chuishao serve --workers N` refuses what would quietly break (issue 16): several processes
on one SQLite file, or several processes each generating a secret key of its own."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.pgutil import temporary_database
from tests.serverproc import CHECKOUT_CLI, ROOT, cli_env, free_port, run_cli, serving

POSTGRES = os.environ.get("CHUISHAO_TEST_POSTGRES_URL", "")


def test_sqlite_serves_one_process_only(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "var", free_port())
    done = run_cli(env, "serve", "--workers", "2")
    assert done.returncode == 2
    assert "SQLite serves one process only" in done.stderr
    assert "CHUISHAO_DATABASE_URL=postgresql://" in done.stderr
    assert not (tmp_path / "var").exists()  # refused before anything was made


def test_several_workers_never_generate_their_own_secret(tmp_path: Path) -> None:
    # Refused before any connection is tried, so no server needs to be at this address.
    env = cli_env(tmp_path / "var", free_port(),
                  CHUISHAO_DATABASE_URL="postgresql://chuishao@127.0.0.1:1/none")
    del env["CHUISHAO_SECRET_KEY"]
    done = run_cli(env, "serve", "--workers", "3")
    assert done.returncode == 2
    assert "several workers need one secret key" in done.stderr
    assert not (tmp_path / "var" / "secret.key").exists()


def test_workers_must_be_positive(tmp_path: Path) -> None:
    done = run_cli(cli_env(tmp_path / "var", free_port()), "serve", "--workers", "0")
    assert done.returncode == 2 and "at least 1" in done.stderr


@pytest.mark.skipif(not POSTGRES, reason="set CHUISHAO_TEST_POSTGRES_URL (several instances "
                    "share PostgreSQL only)")
def test_an_instance_with_another_secret_key_refuses_to_start(tmp_path: Path) -> None:
    with temporary_database(POSTGRES) as url:
        first = cli_env(tmp_path / "a", free_port(), CHUISHAO_DATABASE_URL=url,
                        CHUISHAO_SECRET_KEY="the-installation-key")
        assert run_cli(first, "migrate").returncode == 0
        assert run_cli(first, "init").returncode == 0
        with serving(first, tmp_path / "first.log") as base:
            assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200  # noqa: S310
        # A second machine that generated a key of its own (no setting) is stopped at once.
        other = cli_env(tmp_path / "b", free_port(), CHUISHAO_DATABASE_URL=url)
        del other["CHUISHAO_SECRET_KEY"]
        started = subprocess.run([*CHECKOUT_CLI, "serve"], env=other, capture_output=True,
                                 text=True, timeout=60, cwd=ROOT)
        assert started.returncode != 0
        assert "this instance's secret key is not the one" in started.stdout + started.stderr
        # The same key again starts; a deliberate replacement is adopted, audited, and then
        # the old key is the one refused.
        with serving(first, tmp_path / "again.log"):
            pass
        adopted = run_cli(other, "secret-key", "adopt")
        assert adopted.returncode == 0, adopted.stderr
        assert "installation's now" in adopted.stdout
        assert "installation's already" in run_cli(other, "secret-key", "adopt").stdout
        with serving(other, tmp_path / "other.log"):
            pass
        refused = subprocess.run([*CHECKOUT_CLI, "serve"], env=first, capture_output=True,
                                 text=True, timeout=60, cwd=ROOT)
        assert refused.returncode != 0
        verified = run_cli(other, "audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
