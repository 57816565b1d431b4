"""Can the service store what it is sent? Free space, a real write, the schema version.

A full disk or a read-only database shows first as a failing commit. Monitoring asks
``/readyz`` (these checks, answered 503 when one fails); the log says what is wrong once when
it starts and once when it ends, not once per request; reporters are told the truth
(``errors.StorageUnavailable``); administrators see the free space in the console and are
notified (``notify.storage_low``) when it falls below the warning threshold.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, insert, text, update

from service.domain import notify
from service.domain.models import StorageProbe, utcnow
from service.platform import migrate
from service.platform.db import Database
from service.platform.errors import first_line, storage_cause
from service.platform.settings import Settings

log = logging.getLogger("chuishao.storage")

MB = 1024 * 1024
# Readiness answers from a check at most this old, so a load balancer polling every second
# costs one probe write per interval, not one per poll.
CHECK_SECONDS = 5.0
# The background round, for the log and the console while nobody asks /readyz.
WATCH_SECONDS = 30.0


def free_bytes(path: Path) -> int:
    """Free bytes (for an unprivileged writer) on the filesystem holding ``path``."""
    while not path.exists() and path != path.parent:
        path = path.parent
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


@cache
def _script_heads() -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory.from_config(migrate.alembic_config()).get_heads()))


def schema_current(database: Database) -> bool:
    with database.session() as session:
        found = session.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return tuple(sorted(found)) == _script_heads()


def probe_write(database: Database) -> None:
    """Commit a real write (one counter row): the only proof that a commit can succeed."""
    with database.session() as session:
        if isinstance(database.bind, Engine) and database.dialect == "sqlite":
            session.connection(execution_options={"chuishao_immediate": True})
        done = session.execute(update(StorageProbe).where(StorageProbe.id == 1)
                               .values(writes=StorageProbe.writes + 1))
        if not getattr(done, "rowcount", 0):
            session.execute(insert(StorageProbe).values(id=1, writes=1))


# Stored bytes per report without files, the larger of the figures measured with
# bench/sizing.py since the reporter's and recovery slots are v2 (7 455 B SQLite, 7 373 B
# PostgreSQL); files add about 1.1 times their size (docs/OPERATIONS.md, "Sizing").
BYTES_PER_SMALL_CASE = 7_500


@dataclass(frozen=True)
class Disk:
    """Free space now, against the thresholds, for the console."""

    free_mb: int
    warn_free_mb: int
    min_free_mb: int

    @property
    def low(self) -> bool:
        return self.free_mb < self.warn_free_mb

    @property
    def small_cases_left(self) -> int:
        return max(0, (self.free_mb - self.min_free_mb) * MB // BYTES_PER_SMALL_CASE)


def disk(settings: Settings) -> Disk | None:
    try:
        free = free_bytes(settings.data_dir)
    except OSError:
        return None
    return Disk(free // MB, settings.warn_free_mb, settings.min_free_mb)


@dataclass
class Report:
    """The outcome of one round of checks, as /readyz and the console show it."""

    checks: dict[str, dict[str, Any]]
    free_bytes: int | None
    low_space: bool  # below the warning threshold: administrators should act
    checked_at: float = field(default_factory=time.monotonic)

    @property
    def ready(self) -> bool:
        return all(check["ok"] for check in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not_ready", "checks": self.checks}


class Watch:
    """Runs the checks and remembers the last outcome; logs each change of state once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.last: Report | None = None
        self.failing: str | None = None  # the cause being reported, until it ends
        self._low = False
        self._told_low = False  # the administrators' notification is queued
        self._lock = threading.Lock()
        # Run after a probe write succeeded (writes held back while storage failed).
        self.on_writable: list[Callable[[Database], None]] = []

    def check(self, database: Database, *, max_age: float = CHECK_SECONDS) -> Report:
        with self._lock:
            if self.last is not None and time.monotonic() - self.last.checked_at < max_age:
                return self.last
            report = self._run(database)
            self._note(report)
            if not report.low_space:
                self._told_low = False
            elif not self._told_low and report.checks["database_writable"]["ok"]:
                self._told_low = self._tell_low_space(database)
            # Published once the round's own writes are done.
            self.last = report
            return report

    def _tell_low_space(self, database: Database) -> bool:
        try:
            with database.write_session() as session:
                notify.storage_low(session, utcnow())
        except Exception as exc:
            log.warning("the administrators' notification of low free space could not be "
                        "queued: %s", _short(exc))
            return False
        return True

    def _run(self, database: Database) -> Report:
        checks: dict[str, dict[str, Any]] = {}
        try:
            current = schema_current(database)
            checks["database_readable"] = {"ok": True}
            checks["migrations_current"] = {"ok": current}
        except Exception as exc:
            checks["database_readable"] = {"ok": False, "cause": _short(exc)}
            checks["migrations_current"] = {"ok": False}
        try:
            probe_write(database)
            checks["database_writable"] = {"ok": True}
            for catch_up in self.on_writable:
                catch_up(database)
        except Exception as exc:
            checks["database_writable"] = {"ok": False, "cause": _short(exc)}
        free: int | None = None
        try:
            free = free_bytes(self.settings.data_dir)
            checks["free_space"] = {"ok": free >= self.settings.min_free_mb * MB,
                                    "free_mb": free // MB,
                                    "min_free_mb": self.settings.min_free_mb}
        except OSError as exc:
            checks["free_space"] = {"ok": False, "cause": _short(exc)}
        low = free is not None and free < self.settings.warn_free_mb * MB
        return Report(checks, free, low)

    def _note(self, report: Report) -> None:
        problems = [f"{name} ({_detail(check)})"
                    for name, check in report.checks.items() if not check["ok"]]
        if problems:
            self.failed("; ".join(problems), recheck=False)
        elif self.failing is not None:
            log.warning("storage works again: reports can be stored (was: %s)", self.failing)
            self.failing = None
        if report.low_space and not self._low and report.free_bytes is not None:
            log.warning("free space in %s is %d MB, below the warning threshold of %d MB "
                        "(CHUISHAO_WARN_FREE_MB); readiness fails below %d MB",
                        self.settings.data_dir, report.free_bytes // MB,
                        self.settings.warn_free_mb, self.settings.min_free_mb)
        elif not report.low_space and self._low:
            log.info("free space is above the warning threshold again")
        self._low = report.low_space

    def failed(self, cause: str, *, recheck: bool = True) -> None:
        """A write failed because of storage: logged the first time only, until it recovers."""
        if self.failing is None:
            self.failing = cause
            log.error("storage cannot be written, reports cannot be stored: %s. Free space "
                      "or make the database writable; the service recovers by itself.", cause)
            if recheck and self.last is not None and self.last.ready:
                # The next readiness check looks again instead of answering from memory.
                self.last.checked_at = 0.0


def _detail(check: dict[str, Any]) -> str:
    if "cause" in check:
        return str(check["cause"])
    if "free_mb" in check:
        return f"{check['free_mb']} MB free, {check['min_free_mb']} MB needed"
    return "failed"


def _short(exc: BaseException) -> str:
    return (storage_cause(exc) or f"{type(exc).__name__}: {first_line(exc)}")[:300]


async def watch_forever(watch: Watch, database: Database, interval_seconds: float) -> None:
    """Check storage in the background, so the log and the console learn of a full disk
    even while nobody submits."""
    while True:
        try:
            await anyio.to_thread.run_sync(lambda: watch.check(database, max_age=0))
        except Exception:
            log.exception("the storage check failed")
        await anyio.sleep(interval_seconds)
