"""Abandoned and discarded drafts really give their space back (SQLite file size).

The review found that a discarded draft's chunks were deleted but the SQLite file did not
shrink: freed pages stay in the file unless auto-vacuum is on. Each test runs on its own
database file (the shared test database is not a file we may measure), through the real app.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.app import create_app
from service.client import ApiError
from service.domain import housekeeping
from service.domain.models import Case, FileChunk
from service.domain.sealing import PlainFile, seal_submission
from service.platform import migrate
from service.platform.db import Database
from tests.conftest import BASE_URL, fast_settings
from tests.factories import api_client, make_world
from tests.upgrade.installation import FIXTURE

MIB = 1024 * 1024
REPORT = {"v": 1, "unit": "某厂", "location": "仓库", "category": "hazard",
          "description": "消防通道被堵。", "seen_at": "", "insider": "", "language": "zh_CN"}


@pytest.fixture
def sqlite_only(db_backend: str) -> None:
    if db_backend != "sqlite":
        pytest.skip("measures an SQLite file")


def _file_size(path: Path) -> int:
    # The database proper plus its log: freed bytes must not merely move into the WAL.
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _open(tmp_path: Path, *, legacy: bool, convert: bool) -> tuple[Database, Path, object]:
    path = tmp_path / "own.sqlite3"
    if legacy:
        # As every file made before this version: a table exists before our connections
        # ask for incremental auto-vacuum, so the file keeps auto_vacuum=NONE.
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE made_before(x)")
    migrate.upgrade(f"sqlite:///{path}")
    database = Database.from_url(f"sqlite:///{path}")
    assert housekeeping.auto_vacuum_mode(database) == (0 if legacy else housekeeping.INCREMENTAL)
    if convert:
        assert housekeeping.enable_incremental_vacuum(database) is legacy
        assert housekeeping.enable_incremental_vacuum(database) is False  # once is enough
        assert housekeeping.auto_vacuum_mode(database) == housekeeping.INCREMENTAL
    settings = fast_settings(tmp_path / "var", database_url=f"sqlite:///{path}")
    with database.session() as session:
        make_world(session, settings)
    return database, path, settings


def _start_draft(client: TestClient, size: int) -> tuple[str, str]:
    """A draft with one ``size``-byte file, every chunk uploaded, never finished."""
    api = api_client(client)
    info = api.channels()
    data = os.urandom(size)
    sealed = seal_submission(info["channels"][0], crypto.b64u_decode(info["installation"]["salt"]),
                             1000, REPORT, None,
                             [PlainFile(name="v.mp4", type="video/mp4", size=size,
                                        read=lambda: [data])])
    spec = sealed.envelope["files"][0]
    created = api._call("POST", "/api/v1/submissions",
                        {**sealed.envelope, "pow": api.stamp(spec["stored_size"])})
    case_id, token = created["case_id"], created["upload_token"]
    for index, chunk in enumerate(sealed.chunks[spec["id"]]()):
        api._call("PUT", f"/api/v1/submissions/{case_id}/files/{spec['id']}/chunks/{index}",
                  raw=chunk, token=token)
    return case_id, token


def _measure(tmp_path: Path, *, legacy: bool, convert: bool,
             discard: bool) -> tuple[int, int, int]:
    database, path, settings = _open(tmp_path, legacy=legacy, convert=convert)
    try:
        app = create_app(settings, database=database)  # type: ignore[arg-type]
        with TestClient(app, base_url=BASE_URL) as client:
            housekeeping.reclaim_space(database)
            empty = _file_size(path)
            case_id, token = _start_draft(client, 8 * MIB)
            housekeeping.reclaim_space(database)
            full = _file_size(path)
            if discard:
                # The reporter gives up: the draft is discarded through the API.
                api_client(client)._call("DELETE", f"/api/v1/submissions/{case_id}", token=token)
                housekeeping.purge_once(database)
            else:
                # The reporter walks away: the draft expires and the purge discards it. The
                # expiry is rounded up to the time granularity (it must not date the draft),
                # so it may fall up to one granule after draft_hours.
                later = dt.datetime.now(dt.UTC) + dt.timedelta(
                    hours=settings.draft_hours,  # type: ignore[attr-defined]
                    seconds=settings.time_granularity_seconds + 60)  # type: ignore[attr-defined]
                assert housekeeping.purge_once(database, now=later)[0] >= 1
            with database.session() as session:
                assert session.scalar(select(func.count()).select_from(FileChunk)) == 0
                assert session.get(Case, case_id) is None
            after = _file_size(path)
            with pytest.raises(ApiError):
                api_client(client)._call("GET", f"/api/v1/submissions/{case_id}", token=token)
    finally:
        database.dispose()
    return empty, full, after


def test_discarded_draft_shrinks_the_file(sqlite_only: None, tmp_path: Path) -> None:
    # A new installation: its file is made in incremental auto-vacuum mode.
    empty, full, after = _measure(tmp_path, legacy=False, convert=False, discard=True)
    assert full - empty > 8 * MIB
    # Before: the file stayed at `full`. Now it is back within 1 MiB of where it started.
    assert after < empty + MIB, (empty, full, after)


def test_expired_draft_is_purged_and_shrinks_the_file(sqlite_only: None, tmp_path: Path) -> None:
    # An existing installation, converted once by `chuishao migrate`.
    empty, full, after = _measure(tmp_path, legacy=True, convert=True, discard=False)
    assert full - empty > 8 * MIB
    assert after < empty + MIB, (empty, full, after)


def test_without_conversion_the_space_stays(sqlite_only: None, tmp_path: Path) -> None:
    # The file as every installation before this version has it (auto_vacuum=NONE): rows go,
    # bytes stay. This is why `chuishao migrate` converts existing files.
    empty, full, after = _measure(tmp_path, legacy=True, convert=False, discard=True)
    assert after > full - MIB, (empty, full, after)


def test_migrate_converts_an_existing_installation(sqlite_only: None, tmp_path: Path) -> None:
    fixture = FIXTURE / "chuishao.sqlite3"
    copy = tmp_path / "v01.sqlite3"
    copy.write_bytes(fixture.read_bytes())
    with sqlite3.connect(copy) as raw:
        assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        cases = raw.execute("SELECT count(*) FROM cases").fetchone()[0]
    migrate.upgrade(f"sqlite:///{copy}")
    database = Database.from_url(f"sqlite:///{copy}")
    try:
        assert housekeeping.enable_incremental_vacuum(database)
        assert housekeeping.auto_vacuum_mode(database) == housekeeping.INCREMENTAL
    finally:
        database.dispose()
    with sqlite3.connect(copy) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT count(*) FROM cases").fetchone()[0] == cases
