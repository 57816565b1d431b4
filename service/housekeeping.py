"""Periodic clean-up: unfinished uploads are discarded whole, spent stamps forgotten.

It also enters into the audit chain the reporters' entries whose time bucket has ended, and
marks failed the exports that no live process is still writing (it first runs at start-up).
"""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread
from sqlalchemy import Engine

from reviewer import audit, exports
from service import intake, pow
from service.db import Database
from service.models import utcnow
from service.settings import Settings

log = logging.getLogger("chuishao.housekeeping")


def purge_once(database: Database, settings: Settings | None = None) -> tuple[int, int]:
    with database.session() as session:
        drafts = intake.purge_expired(session)
        stamps = pow.purge_spent(session, utcnow())
    if settings is not None:
        settle_once(database, settings)
    refresh_statistics(database)
    return drafts, stamps


def settle_once(database: Database, settings: Settings) -> tuple[int, int]:
    """(reporters' audit entries entered, abandoned exports marked failed)."""
    with database.session() as session:
        released = audit.release_deferred(session)
    with database.session() as session:
        failed = exports.fail_abandoned(session, settings)
    if released or failed:
        log.info("entered %d held audit entries, marked %d abandoned exports failed",
                 released, failed)
    return released, failed


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


async def run_forever(database: Database, interval_seconds: float,
                      settings: Settings | None = None) -> None:
    while True:
        try:
            drafts, stamps = await anyio.to_thread.run_sync(purge_once, database, settings)
            if drafts or stamps:
                log.info("discarded %d unfinished uploads, forgot %d stamps", drafts, stamps)
        except Exception:
            # A failed round is retried next time; the service keeps serving.
            log.exception("housekeeping failed")
        await anyio.sleep(interval_seconds)
