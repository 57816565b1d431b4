"""Periodic clean-up: unfinished uploads are discarded whole, spent stamps forgotten, and on
SQLite the space they took is given back to the file system.

It also enters into the audit chain the reporters' entries whose time bucket has ended, and
marks failed the exports that no live process is still writing (it first runs at start-up).

Deleting rows alone does not shrink an SQLite file: freed pages stay inside it for reuse. A
draft of 256 MiB that was discarded or abandoned kept its 256 MiB on disk. Databases are
therefore kept in ``auto_vacuum=INCREMENTAL`` mode (new files from the first connection,
existing files converted once by ``chuishao migrate``), and every purge round ends with an
incremental vacuum and a WAL checkpoint that truncates the log.

On SQLite every round's write waits its turn at the app's writers' gate and takes the write
lock up front (``Database.turn``, ``Database.write_session``), as requests do: without that
a round that read and then wrote failed with "database is locked" while reports arrived.
A round that still finds the lock busy (another process: a command-line purge, a restore)
is skipped and the next one tries again.

Several instances on one PostgreSQL database each run these rounds; a PostgreSQL advisory
lock per job lets exactly one of them do a round at a time, and the others skip it (the
next round comes soon enough). SQLite has one instance: nothing to take.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import Engine, and_, exists, or_, select, text
from sqlalchemy.exc import OperationalError

from service.domain import audit, cases, exports, intake, notify, pow, quota, sharedlimit, workflow
from service.domain.models import Case, ChannelRecipient, User, utcnow
from service.domain.models.notify import NotifyDeadline
from service.platform.db import IMMEDIATE, Database
from service.platform.settings import Settings

log = logging.getLogger("chuishao.housekeeping")

# How a round waits for its turn to write: nothing on the command line; in the server the
# writers' gate (Database.turn), taken from the round's worker thread.
Turn = Callable[[], AbstractContextManager[object]]


def job_key(job: str) -> int:
    """The advisory lock's number for ``job``: the same in every instance, signed 64-bit."""
    digest = hashlib.sha256(b"chuishao.housekeeping\x00" + job.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def only_one(database: Database, job: str) -> Iterator[bool]:
    """Yield whether this instance runs ``job`` now: False while another instance holds it.

    A session-level advisory lock on a connection of its own, held for the whole round
    (which commits several transactions) and given back at the end, or by PostgreSQL if
    this process dies."""
    if database.dialect != "postgresql" or not isinstance(database.bind, Engine):
        yield True
        return
    key = job_key(job)
    with database.bind.connect() as conn:
        mine = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        conn.commit()
        try:
            yield mine
        finally:
            if mine:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def purge_once(database: Database, settings: Settings | None = None,
               now: dt.datetime | None = None, turn: Turn = nullcontext) -> tuple[int, int]:
    now = now or utcnow()
    with only_one(database, "purge") as mine:
        if not mine:
            log.debug("another instance is purging")
            return 0, 0
        with turn(), database.write_session() as session:
            drafts = intake.purge_expired(session, now)
            stamps = pow.purge_spent(session, now)
            quota.purge_sessions(session, now)
            if settings is not None:
                sharedlimit.purge_windows(session, settings.time_granularity_seconds, now)
    reclaim_space(database, turn)
    if settings is not None:
        settle_once(database, settings, turn)
        announce_deadlines(database, settings, now, turn)
    refresh_statistics(database, turn)
    return drafts, stamps


def settle_once(database: Database, settings: Settings,
                turn: Turn = nullcontext) -> tuple[int, int]:
    """(reporters' audit entries entered, abandoned exports marked failed)."""
    with only_one(database, "settle") as mine:
        if not mine:
            log.debug("another instance is settling")
            return 0, 0
        with turn(), database.write_session() as session:
            released = audit.release_deferred(session)
        with turn(), database.write_session() as session:
            failed = exports.fail_abandoned(session, settings)
    if released or failed:
        log.info("entered %d held audit entries, marked %d abandoned exports failed",
                 released, failed)
    return released, failed


def announce_deadlines(database: Database, settings: Settings,
                       now: dt.datetime | None = None, turn: Turn = nullcontext) -> int:
    """Tell the assignee and the channel's reviewers once when a case's deadline comes
    within notify_deadline_days, and once when it passes. Returns deadlines announced.

    Under a lock of its own: it runs after the purge round has let go of the purge lock, and
    two instances announcing at once would both insert the same deadline row (one of them
    then fails its round)."""
    now = now or utcnow()
    with only_one(database, "deadlines") as mine:
        if not mine:
            log.debug("another instance is announcing deadlines")
            return 0
        return _announce_deadlines(database, settings, now, turn)


def _announce_deadlines(database: Database, settings: Settings, now: dt.datetime,
                        turn: Turn) -> int:
    horizon = now + dt.timedelta(days=settings.notify_deadline_days)
    announced = 0
    with turn(), database.write_session() as session:
        # A case whose current deadline was announced as passed is not read again (overdue
        # cases would otherwise be read on every round).
        done = exists().where(NotifyDeadline.case_id == Case.id, NotifyDeadline.which == "passed",
                              or_(and_(Case.status == "new",
                                       NotifyDeadline.due_at == Case.accept_due_at),
                                  and_(Case.status.in_(("accepted", "verifying")),
                                       NotifyDeadline.due_at == Case.verify_due_at),
                                  and_(Case.status == "verified",
                                       NotifyDeadline.due_at == Case.feedback_due_at)))
        near = session.scalars(select(Case).where(
            Case.ready.is_(True), cases.overdue_clause(settings, horizon), ~done))
        for case in near:
            due = workflow.due_at(case, settings)
            if due is None or due > horizon or (due > now and not settings.notify_deadline_days):
                continue
            which = "passed" if due <= now else "soon"
            if session.get(NotifyDeadline, (case.id, which, due)) is not None:
                continue
            session.add(NotifyDeadline(case_id=case.id, which=which, due_at=due))
            reviewers = [user.id for user in session.scalars(
                select(User).join(ChannelRecipient, ChannelRecipient.user_id == User.id)
                .where(ChannelRecipient.channel_id == case.channel_id))
                if user.has_role("reviewer")]
            notify.enqueue(session, "deadline_passed" if which == "passed" else "deadline_soon",
                           [case.assigned_to, *reviewers], not_before=now)
            announced += 1
    return announced


INCREMENTAL = 2  # PRAGMA auto_vacuum: 0 none, 1 full, 2 incremental
VACUUM_BATCH_PAGES = 4096  # 16 MiB of 4 KiB pages per write lock


def _sqlite_engine(database: Database) -> Engine | None:
    if database.dialect != "sqlite" or not isinstance(database.bind, Engine):
        return None
    return database.bind


def auto_vacuum_mode(database: Database) -> int | None:
    engine = _sqlite_engine(database)
    if engine is None:
        return None
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() or 0)


def enable_incremental_vacuum(database: Database) -> bool:
    """Convert an SQLite file made without incremental auto-vacuum (every file made before
    this version, and files alembic creates). Needs a full VACUUM once: it rewrites the
    file, takes about as much free disk space as the file, and holds the write lock while it
    runs. Returns whether the file was converted."""
    engine = _sqlite_engine(database)
    if engine is None or auto_vacuum_mode(database) == INCREMENTAL:
        return False
    # Outside any transaction (VACUUM refuses to run inside one): the raw connection is in
    # autocommit mode (service.platform.db sets isolation_level to None).
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("VACUUM")
        cursor.close()
    finally:
        raw.close()
    return auto_vacuum_mode(database) == INCREMENTAL


def reclaim_space(database: Database, turn: Turn = nullcontext) -> int:
    """Give SQLite's free pages back to the file system; returns how many there were."""
    engine = _sqlite_engine(database)
    if engine is None:
        return 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        free = int(cursor.execute("PRAGMA freelist_count").fetchone()[0])
        mode = int(cursor.execute("PRAGMA auto_vacuum").fetchone()[0])
        driver: Any = raw.driver_connection
        left = free
        while left and mode == INCREMENTAL:
            # A batch at a time, so requests waiting for the write lock get it in between;
            # executescript steps the pragma to the end (a plain execute frees one page).
            with turn():
                driver.executescript(f"PRAGMA incremental_vacuum({VACUUM_BATCH_PAGES});")
            now_left = int(cursor.execute("PRAGMA freelist_count").fetchone()[0])
            if now_left >= left:
                break
            left = now_left
        # In WAL mode the file is truncated when the log is written back: do it now, and
        # truncate the log too, or the freed bytes merely move into it.
        with turn():
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        cursor.close()
    finally:
        raw.close()
    return free


def refresh_statistics(database: Database, turn: Turn = nullcontext) -> None:
    """Keep SQLite's query planner informed. Without statistics it picks poor indexes for the
    case list (seconds instead of milliseconds at 100 000 cases). PostgreSQL's autovacuum
    does this on its own."""
    if database.dialect != "sqlite" or not isinstance(database.bind, Engine):
        return
    with turn(), database.bind.connect() as conn:
        # ANALYZE writes its tables: take the write lock before the first read.
        conn = conn.execution_options(**{IMMEDIATE: True})
        analysed = conn.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar()
        conn.exec_driver_sql("ANALYZE" if not analysed else "PRAGMA optimize")
        conn.commit()


def lock_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": another process kept the write lock
    beyond the busy timeout. The round is simply tried again later."""
    original = exc.orig if isinstance(exc, OperationalError) else exc
    return (isinstance(original, sqlite3.OperationalError)
            and (getattr(original, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY)


async def run_forever(database: Database, interval_seconds: float,
                      settings: Settings | None = None) -> None:
    told_busy = False
    database.gate()  # made here, on the event loop, before a worker thread waits for it
    while True:
        try:
            drafts, stamps = await anyio.to_thread.run_sync(
                purge_once, database, settings, None, database.turn)
            if drafts or stamps:
                log.info("discarded %d unfinished uploads, forgot %d stamps", drafts, stamps)
        except Exception as exc:
            if lock_busy(exc):
                # Said once: a long command-line job can keep the lock for many rounds.
                (log.debug if told_busy else log.info)(
                    "housekeeping skipped a round: the database is locked by another process")
                told_busy = True
            else:
                # A failed round is retried next time; the service keeps serving.
                log.exception("housekeeping failed")
        await anyio.sleep(interval_seconds)
