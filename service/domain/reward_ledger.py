"""The reward ledger: which reward records each role sees, filtered and paged.

Auditors and finance officers see every channel's records; reviewers and approvers those of
the cases they see. Not to be confused with the hazard ledger (hazard_ledger.py), which lists
cases. Opening a record someone may not see answers the same 404 as an unknown id, audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, and_, or_, select, true, tuple_
from sqlalchemy.orm import Session

from service.domain import audit, cases, intake
from service.domain.models import Case, Channel, User, utcnow
from service.domain.models.rewards import RewardRecord
from service.domain.reward_records import CLAIMABLE_RESULTS
from service.domain.reward_states import ACTIVE, STATUSES
from service.platform import localtime
from service.platform.errors import InvalidInput, NotFound
from service.platform.i18n import N_

PAGE_SIZE = 100
LEDGER_ALL = ("auditor", "finance")  # see every channel's records; the rest see their own


@dataclass(frozen=True)
class LedgerFilters:
    date_from: dt.date | None = None
    date_to: dt.date | None = None  # inclusive
    channel: int | None = None
    status: str | None = None
    policy: str | None = None
    after: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, Any]) -> LedgerFilters:
        def get(name: str) -> str:
            return str(query.get(name) or "").strip()[:100]

        def day(name: str) -> dt.date | None:
            try:
                return dt.date.fromisoformat(get(name)) if get(name) else None
            except ValueError:
                raise InvalidInput(N_("Write dates as YYYY-MM-DD."), code="date") from None

        channel = get("channel")
        return cls(date_from=day("from"), date_to=day("to"),
                   channel=int(channel) if channel.isdigit() and len(channel) < 10 else None,
                   status=get("status") if get("status") in STATUSES else None,
                   policy=get("policy") or None, after=get("after") or None)

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.date_from.isoformat() if self.date_from else None,
                "to": self.date_to.isoformat() if self.date_to else None,
                "channel": self.channel, "status": self.status, "policy": self.policy}

    def query_string(self, **changes: Any) -> str:

        values = {**self.as_dict(), "after": self.after, **changes}
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def _day_start(day: dt.date) -> dt.datetime:
    return localtime.midnight(day)


def ledger_clause(session: Session, user: User | None, filters: LedgerFilters,
                  now: dt.datetime | None = None) -> ColumnElement[bool]:
    """Which records ``user`` sees (None: everything, for the command line), filtered.

    The period is by the day the record was proposed, in China's time zone.
    """
    now = now or utcnow()
    clauses: list[ColumnElement[bool]] = [true()]
    if user is not None and not user.has_role(*LEDGER_ALL):
        clauses.append(RewardRecord.channel_id.in_(cases.case_channels(session, user)))
    if filters.date_from:
        clauses.append(RewardRecord.proposed_at >= _day_start(filters.date_from))
    if filters.date_to:
        clauses.append(RewardRecord.proposed_at
                       < _day_start(filters.date_to + dt.timedelta(days=1)))
    if filters.channel is not None:
        clauses.append(RewardRecord.channel_id == filters.channel)
    if filters.policy:
        clauses.append(RewardRecord.policy_id == filters.policy)
    if filters.status == "lapsed":
        clauses.append(and_(RewardRecord.status == "approved", RewardRecord.claim_due_at < now))
    elif filters.status == "approved":
        clauses.append(and_(RewardRecord.status == "approved",
                            or_(RewardRecord.claim_due_at.is_(None),
                                RewardRecord.claim_due_at >= now)))
    elif filters.status:
        clauses.append(RewardRecord.status == filters.status)
    return and_(*clauses)


def ledger_page(session: Session, user: User, filters: LedgerFilters,
                limit: int = PAGE_SIZE) -> tuple[list[RewardRecord], str | None]:
    """Newest first, keyset-paginated on (proposed_at, id)."""
    query: Select[Any] = select(RewardRecord).where(ledger_clause(session, user, filters))
    cursor = _decode_cursor(filters.after)
    if cursor:
        when, record_id = cursor
        # Row values seek in ix_reward_records_proposed; an OR would scan it.
        query = query.where(tuple_(RewardRecord.proposed_at, RewardRecord.id)
                            < tuple_(when, record_id))
    rows = list(session.scalars(query.order_by(RewardRecord.proposed_at.desc(),
                                               RewardRecord.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_encode_cursor(rows[-1]) if more and rows else None)


def _encode_cursor(record: RewardRecord) -> str:
    # Exact to the microsecond (a float timestamp is not): the keyset must not skip a row.
    return f"{record.proposed_at.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}.{record.id}"


def _decode_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if not cursor:
        return None
    stamp, _, record_id = cursor.partition(".")
    try:
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return (when, record_id) if intake.ID.match(record_id) else None


def ledger_viewed(session: Session, user: User, filters: LedgerFilters) -> None:
    audit.append(session, "reward.ledger_viewed", actor=user, details=filters.as_dict())


def get_record(session: Session, database: Any, user: User, reward_id: str) -> RewardRecord:
    """The record if ``user`` may see it; else the same 404 as for an unknown id, audited."""
    record = session.get(RewardRecord, reward_id) if isinstance(reward_id, str) \
        and intake.ID.match(reward_id) else None
    if record is not None and (user.has_role(*LEDGER_ALL) or (
            user.has_role(*cases.CASE_ROLES) and session.scalar(select(Case.id).where(
                Case.id == record.case_id, cases.visible_clause(session, user))))):
        return record
    if database is not None:
        audit.record_refusal(database, "reward.open", actor_id=user.id,
                             target=str(reward_id)[:100])
    raise NotFound()


def cases_awaiting(session: Session, user: User, limit: int = 50) -> list[Case]:
    """Verified cases the user sees that have no reward record yet (for reviewers)."""
    if not user.has_role("reviewer"):
        return []
    has_record = select(RewardRecord.id).where(RewardRecord.case_id == Case.id,
                                               RewardRecord.status.in_(ACTIVE)).exists()
    return list(session.scalars(
        select(Case).where(cases.visible_clause(session, user),
                           Case.verification_result.in_(CLAIMABLE_RESULTS),
                           Case.status != "not_accepted", ~has_record)
        .order_by(Case.verified_at.desc(), Case.id).limit(limit)))


def people(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u.display_name or u.username
            for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def channels_by_id(session: Session) -> dict[int, Channel]:
    return {c.id: c for c in session.scalars(select(Channel).order_by(Channel.id))}

