"""`chuishao serve --workers N` refuses what would quietly break (issue 16): several processes
on one SQLite file, or several processes each generating a secret key of its own."""

from __future__ import annotations

from pathlib import Path

from tests.serverproc import cli_env, free_port, run_cli


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
