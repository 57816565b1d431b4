"""What several instances on one PostgreSQL database must share (issue 16): the global
no-JavaScript ceilings hold in total, and each housekeeping round runs in one instance."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from starlette.testclient import TestClient

from service.app import create_app
from service.domain import housekeeping, pow, sharedlimit
from service.domain.models import Case, RateWindow, SpentStamp, utcnow
from service.domain.models.notify import NotifyDeadline
from service.domain.ratelimit import TokenBucket
from service.platform.db import Database
from service.platform.errors import RateLimited
from tests.conftest import BASE_URL, fast_settings
from tests.domain.test_cases import REPORT
from tests.factories import api_client, make_world


@pytest.fixture
def pg(db_backend: str, committed_database: Database) -> Database:
    if db_backend != "postgres":
        pytest.skip("instances share state through PostgreSQL (--db=postgres)")
    return committed_database


def instance(database: Database, per_hour: int) -> sharedlimit.SharedLimit:
    """One instance's ceiling, as create_app builds it on PostgreSQL."""
    settings = fast_settings(Path("/nonexistent"), nojs_submissions_per_hour=per_hour)
    limit = sharedlimit.nojs_limit(settings, "postgresql", lambda: database)
    assert isinstance(limit, sharedlimit.SharedLimit)
    # Each instance may burst up to the whole allowance, so only the shared count can refuse.
    limit.capacity = limit.tokens = float(per_hour)
    return limit


def takes(limit: TokenBucket) -> bool:
    try:
        limit.take()
    except RateLimited:
        return False
    return True


def test_the_ceiling_holds_in_total_across_instances(pg: Database) -> None:
    three = [instance(pg, 5) for _ in range(3)]
    allowed = sum(takes(three[i % 3]) for i in range(12))
    # In-process buckets alone would have allowed 15 (5 each).
    assert allowed == 5
    with pg.session() as session:
        (window,) = session.scalars(select(RateWindow)).all()
    assert window.used == 5 and window.purpose == "nojs-submissions"
    # The only time stored is the window's start, at the installation's granularity.
    assert int(window.window_start.timestamp()) % 3600 == 0


def test_concurrent_takes_never_exceed_the_allowance(pg: Database) -> None:
    limits = [instance(pg, 7) for _ in range(4)]
    results: list[bool] = []
    start = threading.Barrier(16)

    def worker(limit: TokenBucket) -> None:
        start.wait()
        results.append(takes(limit))

    threads = [threading.Thread(target=worker, args=(limits[i % 4],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 7


def test_a_new_window_starts_over_and_old_windows_are_forgotten(pg: Database) -> None:
    now = utcnow()
    limit = instance(pg, 1)
    limit.now = lambda: now - dt.timedelta(hours=3)
    assert takes(limit) and not takes(limit)
    limit.now = lambda: now
    limit.tokens = limit.capacity  # the process's own bucket has refilled meanwhile
    assert takes(limit)
    with pg.session() as session:
        assert sharedlimit.purge_windows(session, 3600, now) == 1
        assert session.scalar(select(func.count()).select_from(RateWindow)) == 1


def test_sqlite_keeps_the_process_bucket(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path)
    submissions = sharedlimit.nojs_limit(settings, "sqlite", lambda: None)  # type: ignore[arg-type, return-value]
    assert type(submissions) is TokenBucket


def _spend_expired(database: Database) -> None:
    with database.session() as session:
        pow.spend(session, "ab" * 32, utcnow() - dt.timedelta(hours=2), granularity_seconds=3600)


def _stamps(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SpentStamp)) or 0)


@pytest.mark.parametrize("job", ["purge", "settle"])
def test_a_round_runs_in_one_instance_only(pg: Database, tmp_path: Path, job: str) -> None:
    settings = fast_settings(tmp_path)
    _spend_expired(pg)
    assert isinstance(pg.bind, Engine)
    other = pg.bind.connect()
    try:
        # Another instance is in the middle of this round: ours skips it.
        key = housekeeping.job_key(job)
        assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        with housekeeping.only_one(pg, job) as mine:
            assert not mine
        if job == "purge":
            assert housekeeping.purge_once(pg, settings) == (0, 0)
            assert _stamps(pg) == 1
        else:
            assert housekeeping.settle_once(pg, settings) == (0, 0)
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        with housekeeping.only_one(pg, job) as mine:
            assert mine
            # Held for the round: a second instance asking now is told no.
            assert not other.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                     {"k": key}).scalar()
        if job == "purge":
            assert housekeeping.purge_once(pg, settings) == (0, 1)
            assert _stamps(pg) == 0
    finally:
        other.rollback()
        other.close()


def test_deadlines_are_announced_by_one_instance(pg: Database, tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, notify_deadline_days=3)
    session = pg.sessionmaker()
    try:
        make_world(session, settings)
        with TestClient(create_app(settings, database=pg), base_url=BASE_URL) as client:
            api_client(client).submit("acme", REPORT)
        due = session.scalar(select(Case.accept_due_at))
    finally:
        session.close()
    assert due is not None
    soon = due - dt.timedelta(days=2)
    assert isinstance(pg.bind, Engine)
    other = pg.bind.connect()
    try:
        # Another instance is announcing: ours skips the round rather than racing it to the
        # same row (which would fail its whole transaction).
        key = housekeeping.job_key("deadlines")
        assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        assert housekeeping.announce_deadlines(pg, settings, soon) == 0
        with pg.session() as check:
            assert check.scalar(select(func.count()).select_from(NotifyDeadline)) == 0
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        assert housekeeping.announce_deadlines(pg, settings, soon) == 1
    finally:
        other.rollback()
        other.close()
