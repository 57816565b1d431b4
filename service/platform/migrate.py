"""Run Alembic migrations from code (command line and tests).

``prepare`` is what ``chuishao migrate`` does before touching anything: it refuses a database
whose schema is newer than this code (an older release must not "upgrade" it into a mess) and,
for SQLite, copies the file aside so a failed or regretted upgrade can be undone by hand.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, make_url

from service.platform import resources


class MigrationRefused(RuntimeError):
    """The database cannot be migrated by this code; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    current: tuple[str, ...]  # the database's revisions (empty: a new database)
    head: str
    backup: Path | None  # where the SQLite file was copied before the upgrade

    @property
    def pending(self) -> bool:
        return self.current != (self.head,)


def alembic_config(*, url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config(str(resources.shipped("alembic.ini")))
    config.set_main_option("script_location", str(resources.shipped("migrations")))
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revisions(url: str) -> tuple[str, ...]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None, "migrations/ has more than one head"
    return head


def prepare(url: str, backup_dir: Path, now: dt.datetime | None = None) -> Plan:
    """Check that this code can migrate the database; back a SQLite file up if it will change."""
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    current = current_revisions(url)
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        raise MigrationRefused(
            f"the database is at schema revision {', '.join(unknown)}, which this version of "
            "Chuishao does not know: it was migrated by a newer version. Run that version (or "
            "restore the backup taken before the upgrade); nothing was changed.\n"
            f"数据库的结构版本 {', '.join(unknown)} 比当前程序新（由更新的版本迁移过），"
            "请使用该版本运行，或恢复升级前的备份；未作任何更改。")
    plan = Plan(current, head_revision(), None)
    if not plan.pending or not current:
        return plan
    return Plan(current, plan.head, _backup_sqlite(url, backup_dir, current, now))


def _backup_sqlite(url: str, backup_dir: Path, current: tuple[str, ...],
                   now: dt.datetime | None) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None  # PostgreSQL: the operator's pg_dump routine (docs/OPERATIONS.md)
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = backup_dir / f"chuishao-{stamp}-before-{'+'.join(current)}.sqlite3"
    # The online backup API gives a consistent copy even with a WAL file beside it.
    source = sqlite3.connect(parsed.database)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    return target


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url=url), revision)


def check(url: str) -> None:
    command.check(alembic_config(url=url))
