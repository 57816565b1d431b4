"""Periodic clean-up: unfinished uploads are discarded whole, spent stamps forgotten."""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread
from sqlalchemy import Engine

from service import intake, pow
from service.db import Database
from service.models import utcnow

log = logging.getLogger("chuishao.housekeeping")


def purge_once(database: Database) -> tuple[int, int]:
    with database.session() as session:
        drafts = intake.purge_expired(session)
        stamps = pow.purge_spent(session, utcnow())
    refresh_statistics(database)
    return drafts, stamps


def refresh_statistics(database: Database) -> None:
    """Keep SQLite's query planner informed. Without statistics it picks poor indexes for the
    case list (seconds instead of milliseconds at 100 000 cases). PostgreSQL's autovacuum
    does this on its own."""
    if database.dialect != "sqlite" or not isinstance(database.bind, Engine):
        return
    with database.bind.connect() as conn:
        analysed = conn.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar()
        conn.exec_driver_sql("ANALYZE" if not analysed else "PRAGMA optimize")
        conn.commit()


async def run_forever(database: Database, interval_seconds: float) -> None:
    while True:
        try:
            drafts, stamps = await anyio.to_thread.run_sync(purge_once, database)
            if drafts or stamps:
                log.info("discarded %d unfinished uploads, forgot %d stamps", drafts, stamps)
        except Exception:
            # A failed round is retried next time; the service keeps serving.
            log.exception("housekeeping failed")
        await anyio.sleep(interval_seconds)
