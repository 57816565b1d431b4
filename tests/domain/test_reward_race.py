"""Two deciders racing for one reward on PostgreSQL: exactly one wins.

Two threads, two real connections, real commits (committed_database). Both read the record at
the same version, meet at a barrier, then decide; the winner holds its row lock a little while
before committing, so the loser's compare-and-set really waits on it and then finds the version
moved. On SQLite request writers take the database lock in turn, so the race cannot happen
there; this test is about PostgreSQL's row locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from service.app import create_app
from service.domain import reward_records
from service.domain.models import AuditEntry, CaseEvent, User
from service.domain.models.rewards import RewardRecord
from service.platform.db import Database
from service.platform.errors import ChuishaoError
from service.platform.settings import Settings
from tests.conftest import BASE_URL
from tests.domain.test_reward_lifecycle import People, make_people, policy_row, verified_case
from tests.factories import make_reviewer

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres_only(db_backend: str) -> None:
    if db_backend != "postgres":
        pytest.skip("runs with --db=postgres only: SQLite serialises writers, so two "
                    "decisions cannot race there")


@pytest.fixture
def setup(committed_database: Database, settings: Settings) -> Iterator[tuple[People, str, int]]:
    app = create_app(settings, database=committed_database)
    with TestClient(app, base_url=BASE_URL) as client, committed_database.session() as session:
        people = make_people(session, settings)
        second = make_reviewer(session, "approver2", people.world.channel, roles="approver")
        case, _ = verified_case(client, session, people)
        record = reward_records.propose(session, case, people.reviewer.user,
                                        policy_row(session).id, {"fine": "200000"})
        session.commit()
        yield people, record.id, second.user.id


def race(database: Database, deciders: list[Callable[[Session, RewardRecord], None]],
         ) -> list[str]:
    barrier = threading.Barrier(len(deciders))
    results: list[str] = []

    def run(decide: Callable[[Session, RewardRecord], None], record_id: str) -> None:
        try:
            with database.session() as session:
                record = session.get(RewardRecord, record_id)
                assert record is not None and record.version == 1
                barrier.wait(timeout=10)
                decide(session, record)
                time.sleep(0.3)  # hold the row lock: the other writer must wait for it
            results.append("won")
        except ChuishaoError as exc:
            results.append(f"lost:{exc.code}")

    return results, run  # type: ignore[return-value]


def _go(database: Database, record_id: str,
        deciders: list[Callable[[Session, RewardRecord], None]]) -> list[str]:
    results, run = race(database, deciders)  # type: ignore[misc]
    threads = [threading.Thread(target=run, args=(decide, record_id)) for decide in deciders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(results)


def test_two_approvers_exactly_one_wins(committed_database: Database,
                                        setup: tuple[People, str, int]) -> None:
    people, record_id, second_id = setup

    def approve_as(user_id: int) -> Callable[[Session, RewardRecord], None]:
        def decide(session: Session, record: RewardRecord) -> None:
            user = session.get(User, user_id)
            assert user is not None
            reward_records.approve(session, record, user, 1)
        return decide

    results = _go(committed_database, record_id,
                  [approve_as(people.approver.user.id), approve_as(second_id)])
    assert results == ["lost:conflict", "won"]
    with committed_database.session() as session:
        record = session.get(RewardRecord, record_id)
        assert record is not None and record.status == "approved" and record.version == 2
        assert record.decided_by in (people.approver.user.id, second_id)
        offered = session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.kind == "reward_offered"))
        approvals = session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "reward.approve", AuditEntry.outcome == "ok"))
        assert offered == 1 and approvals == 1


def test_approve_against_reject_exactly_one_wins(committed_database: Database,
                                                 setup: tuple[People, str, int]) -> None:
    people, record_id, second_id = setup

    def approve(session: Session, record: RewardRecord) -> None:
        user = session.get(User, people.approver.user.id)
        assert user is not None
        reward_records.approve(session, record, user, 1)

    def reject(session: Session, record: RewardRecord) -> None:
        user = session.get(User, second_id)
        assert user is not None
        reward_records.reject(session, record, user, 1, "金额有误")

    results = _go(committed_database, record_id, [approve, reject])
    assert results == ["lost:conflict", "won"]
    with committed_database.session() as session:
        record = session.get(RewardRecord, record_id)
        assert record is not None and record.status in ("approved", "rejected")
        assert record.version == 2
