"""A reporter's action must not be dated by its place in the audit trail.

Staff entries are stamped to the microsecond and numbered in order; a reporter's claim
appended between two of them would be dated to the seconds between them, whatever its own
rounded stamp says. The claim's entry is held until its time bucket has ended, then entered
after every staff entry of the bucket, stamped with the bucket's start.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from service.domain import audit, housekeeping, intake
from service.domain.models import AuditEntry, DeferredAuditEntry, utcnow
from service.platform import localtime
from service.platform.db import Database
from service.platform.settings import Settings
from tests.console import sign_in
from tests.domain.test_reward_lifecycle import (
    People,
    approved_reward,
    browser_claim,
    followup_token,
    make_people,
)


@pytest.fixture
def people(session, settings) -> People:  # type: ignore[no-untyped-def]
    return make_people(session, settings)


def newest(session: Session) -> AuditEntry:
    entry = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    assert entry is not None
    return entry


def audit_rows(page: str) -> list[str]:
    return [row for row in page.split('<tr class="audit-row')[1:]]


def test_a_claim_between_two_staff_actions_cannot_be_placed_between_them(
        client: TestClient, session: Session, people: People, settings: Settings) -> None:
    _, receipt, record = approved_reward(client, session, people, fine="200000")
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    reward = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"][0]
    _, body = browser_claim(reward, keys.lookup_secret)
    sign_in(client, session, settings, people.auditor.user)

    assert client.get("/console/audit").status_code == 200  # staff action A
    first = newest(session)
    claimed_at = utcnow()
    claimed = client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body,
                          headers=auth)
    assert claimed.status_code == 201, claimed.text
    page = client.get("/console/audit")  # staff action B, seconds later at most
    second = newest(session)
    assert (second.action, first.action) == ("audit.viewed", "audit.viewed")

    # Nothing between A and B, nor anywhere in the chain or on the page, yet.
    assert second.id == first.id + 1
    assert session.scalar(select(func.count()).select_from(AuditEntry)
                          .where(AuditEntry.action == "reward.claimed")) == 0
    # (The action filter lists every code; the entries are the table's rows.)
    trail = page.text[page.text.index('id="audit"'):]
    assert "reward.claimed" not in trail and "举报人领取了奖励" not in trail
    held = session.scalars(select(DeferredAuditEntry)).all()
    bucket = intake.coarse_time(settings, claimed_at)
    assert [(h.action, h.created_at) for h in held] == [("reward.claimed", bucket)]
    assert len(held[0].id) == 32 and held[0].id != "0" * 32  # random, not a counter

    # Housekeeping before the bucket's end leaves it held; after, it enters the chain.
    end = bucket + dt.timedelta(seconds=settings.time_granularity_seconds)
    assert audit.release_deferred(session, now=end - dt.timedelta(seconds=1)) == 0
    client.get("/console/audit")  # more staff activity in the same bucket
    assert audit.release_deferred(session, now=end) == 1
    session.commit()
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "reward.claimed"))
    assert entry is not None and entry.target == record.id and entry.actor == ""
    # Its place is after every staff entry of its bucket, its time the bucket's start: neither
    # puts it between A and B.
    assert entry.id > second.id + 1
    assert entry.created_at == bucket <= first.created_at
    assert audit.verify_chain(session).ok
    assert session.scalar(select(func.count()).select_from(DeferredAuditEntry)) == 0

    rows = audit_rows(client.get("/console/audit").text)
    claimed_row = next(i for i, row in enumerate(rows) if "reward.claimed" in row)
    b_row = next(i for i, row in enumerate(rows) if f"<td>{second.id}</td>" in row)
    assert claimed_row < b_row  # newest first: shown after B, not between A and B
    # Shown in the installation's zone, with its offset.
    assert localtime.show(bucket, "second") in rows[claimed_row]


def test_housekeeping_enters_held_entries_once_their_bucket_has_ended(
        database: Database, session: Session, settings: Settings) -> None:
    now = utcnow()
    step = settings.time_granularity_seconds
    past = intake.coarse_time(settings, now - dt.timedelta(seconds=step))
    current = intake.coarse_time(settings, now)
    audit.defer(session, "reward.claimed", target="old", bucket_start=past, granularity=step)
    audit.defer(session, "reward.claimed", target="new", bucket_start=current,
                granularity=step)
    session.commit()
    housekeeping.purge_once(database, settings)
    entered = session.scalars(select(AuditEntry.target)
                              .where(AuditEntry.action == "reward.claimed")).all()
    assert entered == ["old"]
    assert session.scalars(select(DeferredAuditEntry.target)).all() == ["new"]
    assert audit.verify_chain(session).ok
