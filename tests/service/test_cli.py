"""The operator command line against a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import crypto
from service import cli
from service.domain.models import Installation, Invitation
from service.platform import migrate
from service.platform.db import Database
from tests.conftest import fast_settings


@pytest.fixture
def cli_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    return settings


@pytest.mark.sqlite_only
def test_init_prints_recovery_secret_once_and_stores_public_part(
    cli_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["init"], cli_settings) == 0
    out = capsys.readouterr().out
    secret_line = next(line.strip() for line in out.splitlines()
                       if line.startswith("    ") and line.strip())
    private = crypto.decode_recovery_secret(secret_line)
    database = Database.from_url(cli_settings.database)
    with database.session() as session:
        installation = session.scalar(select(Installation))
        assert installation is not None
        assert installation.recovery_public_key == crypto.public_key(private)
        assert len(installation.salt) == 32
        # Only the public part is in the database; the secret appears nowhere on disk.
        for path in cli_settings.data_dir.rglob("*"):
            if path.is_file():
                assert secret_line.encode() not in path.read_bytes()
                assert private not in path.read_bytes()
    database.dispose()
    signing_key = cli_settings.signing_key_path
    assert signing_key.stat().st_mode & 0o077 == 0
    signature = crypto.sign(signing_key.read_bytes(), b"manifest")
    assert crypto.verify_signature(installation.signing_public_key, b"manifest", signature)
    # A second init refuses; --if-needed is quiet.
    assert cli.main(["init"], cli_settings) == 1
    assert cli.main(["init", "--if-needed"], cli_settings) == 0


@pytest.mark.sqlite_only
def test_channel_add_list_and_invite(cli_settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["channel", "add", "district-a", "--kind", "bureau",
                     "--name-zh", "某区应急管理局", "--name-en", "District A bureau"],
                    cli_settings) == 0
    assert cli.main(["channel", "add", "Bad Slug", "--kind", "bureau", "--name-zh", "x"],
                    cli_settings) == 2
    capsys.readouterr()
    assert cli.main(["channel", "list"], cli_settings) == 0
    listing = capsys.readouterr().out
    assert "district-a" in listing and "某区应急管理局" in listing and "Bad Slug" not in listing
    assert cli.main(["invite", "--role", "reviewer", "--channel", "district-a"], cli_settings) == 0
    link = capsys.readouterr().out.strip().splitlines()[-1]
    assert link.startswith("https://testserver/console/invite/")
    token = link.rsplit("/", 1)[1]
    database = Database.from_url(cli_settings.database)
    with database.session() as session:
        invitation = session.scalar(select(Invitation))
        assert invitation is not None
        assert invitation.roles == "reviewer"
        assert token not in invitation.token_hash  # only the hash is stored
    database.dispose()


@pytest.mark.sqlite_only
def test_migrations_upgrade_and_check_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    migrate.upgrade(url)
    migrate.check(url)  # raises if models and migrations drifted


@pytest.mark.sqlite_only
def test_commands_refuse_a_database_behind_the_code(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # A command run before `chuishao migrate` gets one clear line, not a missing-column trace.
    settings = fast_settings(tmp_path / "var")
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.database, "pq_recovery")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["channel", "list"], settings)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "refused: the database is not at this version's schema (pq_recovery" in err
    assert "run `chuishao migrate` first" in err and "Traceback" not in err
    assert cli.main(["migrate"], settings) == 0
    assert cli.main(["init"], settings) == 0
    assert cli.main(["channel", "list"], settings) == 0
