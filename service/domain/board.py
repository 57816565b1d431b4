"""The public hazard board (隐患曝光): anonymised outcomes of a channel for a period.

Opt-in per channel (Channel.public_board, set by an administrator). It shows counts (hazards
found, rectified on time, overdue, rewards paid) and the closed records reviewers chose to
publish, in the words they approved. Never report text, never anything about a reporter, and
no date finer than an ISO week: every period is cut to whole ISO weeks (a month is the weeks
whose Thursday falls in it, as ISO 8601 assigns weeks to years), and published records carry
only the week they were written off.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.domain import audit, rectification_facts
from service.domain import hazard_ledger as ledger
from service.domain.channels import SLUG
from service.domain.models import Case, Channel, User, utcnow
from service.domain.models.rectification import Rectification
from service.domain.models.rewards import RewardRecord
from service.platform import localtime
from service.platform.errors import InvalidInput, NotFound
from service.platform.i18n import N_

PERIOD = re.compile(r"^(\d{4})(?:-(Q[1-4]|W\d{2}|\d{2}))?$")


@dataclass(frozen=True)
class Weeks:
    label: str
    first: dt.date  # a Monday
    last: dt.date  # a Sunday

    def week_label(self, day: dt.date) -> str:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"


def _monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _weeks_with_thursday_in(first: dt.date, last: dt.date) -> tuple[dt.date, dt.date]:
    # The ISO week whose Thursday is on or after ``first``, up to the one whose Thursday is on
    # or before ``last``.
    start = _monday_of(first)
    if start + dt.timedelta(days=3) < first:
        start += dt.timedelta(days=7)
    end = _monday_of(last)
    if end + dt.timedelta(days=3) > last:
        end -= dt.timedelta(days=7)
    return start, end + dt.timedelta(days=6)


def parse_period(text: str, on: dt.date | None = None) -> Weeks:
    """'2025' (its ISO weeks), '2025-Q2', '2025-06' (e.g. the June safety month), '2025-W23';
    empty: this year."""
    on = on or rectification_facts.today()
    text = (text or "").strip() or str(on.isocalendar()[0])
    match = PERIOD.match(text)
    if match is None or not 2000 <= int(match.group(1)) <= 2100:
        raise InvalidInput(N_("Choose a period: a year, a quarter, a month or an ISO week."),
                           code="period")
    year, part = int(match.group(1)), match.group(2)
    if part is None:
        first = dt.date.fromisocalendar(year, 1, 1)
        last = dt.date.fromisocalendar(year + 1, 1, 1) - dt.timedelta(days=1)
        return Weeks(text, first, last)
    if part.startswith("W"):
        try:
            first = dt.date.fromisocalendar(year, int(part[1:]), 1)
        except ValueError:
            raise InvalidInput(N_("Choose a period: a year, a quarter, a month or an ISO "
                                  "week."), code="period") from None
        return Weeks(text, first, first + dt.timedelta(days=6))
    try:
        calendar = ledger.parse_period(text)
    except InvalidInput:
        raise InvalidInput(N_("Choose a period: a year, a quarter, a month or an ISO week."),
                           code="period") from None
    first, last = _weeks_with_thursday_in(calendar.start, calendar.end)
    return Weeks(text, first, last)


def period_choices(on: dt.date) -> list[str]:
    return ledger.period_choices(on)


def rewards_paid(session: Session, channel: Channel, weeks: Weeks) -> int:
    """Rewards paid for the channel's cases in these weeks (local days), in fen."""

    start = localtime.midnight(weeks.first)
    end = localtime.midnight(weeks.last + dt.timedelta(days=1))
    total = session.scalar(
        select(func.coalesce(func.sum(RewardRecord.amount_fen), 0))
        .join(Case, Case.id == RewardRecord.case_id)
        .where(Case.channel_id == channel.id, RewardRecord.status == "paid",
               RewardRecord.paid_at >= start, RewardRecord.paid_at < end))
    return int(total or 0)


@dataclass(frozen=True)
class Published:
    week: str
    grade: str | None
    text: str


@dataclass(frozen=True)
class Board:
    channel: Channel
    weeks: Weeks
    counts: ledger.Counts
    rewards_fen: int
    published: list[Published]


def public_channels(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).where(Channel.public_board.is_(True),
                                                      Channel.active.is_(True))
                                .order_by(Channel.kind, Channel.id)))


def find_channel(session: Session, slug: str) -> Channel:
    # The form is checked before the query: PostgreSQL refuses some text (NUL) outright.
    channel = None
    if isinstance(slug, str) and SLUG.match(slug):
        channel = session.scalar(select(Channel).where(Channel.slug == slug,
                                                       Channel.public_board.is_(True),
                                                       Channel.active.is_(True)))
    if channel is None:
        raise NotFound()
    return channel


def board(session: Session, channel: Channel, weeks: Weeks,
          on: dt.date | None = None) -> Board:
    on = on or rectification_facts.today()
    counts = ledger.cohort_counts(session, channel.id, weeks.first, weeks.last, on)
    rows = session.execute(
        select(Rectification.closed_at, Rectification.public_text, Case.grade)
        .join(Case, Case.id == Rectification.case_id)
        .where(Rectification.channel_id == channel.id, Rectification.state == "closed",
               Rectification.public_text.is_not(None))
        .order_by(Rectification.closed_at, Rectification.id))
    published = []
    for closed_at, text, grade in rows:
        day = rectification_facts.local_date(closed_at) if closed_at else None
        if day is not None and weeks.first <= day <= weeks.last and text:
            published.append(Published(weeks.week_label(day), grade, text))
    return Board(channel, weeks, counts, rewards_paid(session, channel, weeks), published)


def set_public_board(session: Session, actor: User, channel: Channel, on: bool) -> None:
    if not actor.has_role("admin"):
        raise InvalidInput(N_("Only an administrator can change this."), code="forbidden",
                           status=403)
    if channel.public_board != on:
        channel.public_board = on
        audit.append(session, "admin.public_board", actor=actor, target=channel.slug,
                     now=utcnow(), details={"public_board": on})
    session.flush()
