"""Rectification records to read: the single-record access check, the lists and their counts,
a record's entries and evidence, and the evidence uploads.

Evidence files are sealed in the reviewer's browser with a linked case's key, exactly like a
reporter's file (docs/PROTOCOL.md, STREAM): the server checks form and size, never sees the
content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from service.domain import audit, cases, intake, statemachine
from service.domain.models import Case, SealedItem, StoredFile, User, utcnow
from service.domain.models.rectification import (
    Rectification,
    RectificationEntry,
    RectificationFile,
)
from service.domain.rectification import RULES
from service.domain.rectification_cases import linked_cases
from service.domain.rectification_facts import OPEN_STATES, STATES, today, week_bounds
from service.domain.statemachine import NotAllowedNow
from service.platform.db import Database
from service.platform.errors import InvalidInput, Malformed, NotFound
from service.platform.i18n import N_
from service.platform.settings import Settings


def get_record(session: Session, database: Database | None, user: User,
               record_id: Any) -> Rectification:
    """The record if ``user`` holds a case role in its channel; else the 404 of an unknown id,
    audited."""
    number_ = statemachine.as_int(record_id)
    record = session.get(Rectification, number_) if number_ is not None and number_ > 0 \
        else None
    if record is not None and record.channel_id in cases.case_channels(session, user):
        return record
    if database is not None:
        audit.record_refusal(database, "rectification.open_page", actor_id=user.id,
                             target=str(record_id)[:100])
    raise NotFound()


@dataclass(frozen=True)
class ListFilters:
    channel: int | None = None
    state: str | None = None
    overdue: bool = False
    due_week: bool = False

    @classmethod
    def parse(cls, query: Any) -> ListFilters:
        def get(name: str) -> str:
            return str(query.get(name) or "").strip()

        channel = get("channel")
        return cls(channel=int(channel) if channel.isdigit() and len(channel) < 10 else None,
                   state=get("state") if get("state") in STATES else None,
                   overdue=get("overdue") == "1", due_week=get("due") == "week")


def list_query(session: Session, user: User, filters: ListFilters,
               on: dt.date | None = None, limit: int = 500) -> Select[Any]:
    on = on or today()
    channels = cases.case_channels(session, user)
    query = select(Rectification).where(Rectification.channel_id.in_(channels))
    if filters.channel is not None:
        query = query.where(Rectification.channel_id == filters.channel)
    if filters.state:
        query = query.where(Rectification.state == filters.state)
    if filters.overdue:
        query = query.where(Rectification.state.in_(OPEN_STATES), Rectification.deadline < on)
    if filters.due_week:
        # Still to come this week; what ran out already is on the overdue list.
        _, sunday = week_bounds(on)
        query = query.where(Rectification.state.in_(OPEN_STATES),
                            and_(Rectification.deadline >= on, Rectification.deadline <= sunday))
        return query.order_by(Rectification.deadline, Rectification.id).limit(limit)
    return query.order_by(Rectification.id.desc()).limit(limit)


def list_records(session: Session, user: User, filters: ListFilters,
                 on: dt.date | None = None) -> list[Rectification]:
    return list(session.scalars(list_query(session, user, filters, on)))


def counts(session: Session, user: User, on: dt.date | None = None) -> dict[str, int]:
    """Overdue and due-this-week counts for the list's header."""
    on = on or today()
    _, sunday = week_bounds(on)
    channels = cases.case_channels(session, user)
    base = select(func.count()).select_from(Rectification).where(
        Rectification.channel_id.in_(channels), Rectification.state.in_(OPEN_STATES))
    return {
        "overdue": session.scalar(base.where(Rectification.deadline < on)) or 0,
        "due_week": session.scalar(base.where(Rectification.deadline >= on,
                                              Rectification.deadline <= sunday)) or 0,
    }


def entries(session: Session, record: Rectification) -> list[RectificationEntry]:
    return list(session.scalars(select(RectificationEntry)
                                .where(RectificationEntry.rectification_id == record.id)
                                .order_by(RectificationEntry.id)))


def evidence(session: Session, record: Rectification) -> list[tuple[RectificationFile,
                                                                    StoredFile]]:
    rows = session.execute(
        select(RectificationFile, StoredFile)
        .join(StoredFile, StoredFile.id == RectificationFile.file_id)
        .where(RectificationFile.rectification_id == record.id)
        .order_by(RectificationFile.entry_id, RectificationFile.file_id))
    return [(row[0], row[1]) for row in rows]


# ---------------------------------------------------------------------------- evidence uploads


def _file_case(session: Session, record: Rectification, actor: User, case_id: Any) -> Case:
    linked = {c.id: c for c in linked_cases(session, record)}
    case = linked.get(str(case_id or ""))
    if case is None:
        raise InvalidInput(N_("Evidence is sealed for a case linked to this record."),
                           code="case_unknown")
    if cases.slot_for(session, case, actor) is None:
        raise cases.KeyNotHeld()
    return case


def register_file(session: Session, settings: Settings, record: Rectification, actor: User,
                  data: Any, now: dt.datetime | None = None) -> StoredFile:
    """An evidence upload begins: its sealed description and its size; chunks follow."""
    if record.state not in OPEN_STATES:
        raise NotAllowedNow(RULES["progress"].refusal)
    if not isinstance(data, dict):
        raise Malformed("file")
    case = _file_case(session, record, actor, data.get("case_id"))
    now = now or utcnow()
    file = intake.register_file(session, settings, case, data, author="reviewer",
                                user_id=actor.id, created_at=now, now=now)
    audit.append(session, "rectification.file", actor=actor, target=str(record.id), now=now,
                 details={"file": file.id, "case": case.id, "stored_size": file.stored_size})
    return file


def pending_file(session: Session, record: Rectification, actor: User,
                 file_id: Any) -> StoredFile:
    """An evidence upload of this record that no progress entry holds yet."""
    file = session.get(StoredFile, file_id) if isinstance(file_id, str) \
        and intake.ID.match(file_id) else None
    linked = {c.id for c in linked_cases(session, record)}
    meta = session.get(SealedItem, file.meta_item_id) if file is not None else None
    if (file is None or file.case_id not in linked or file.author != "reviewer"
            or meta is None or meta.user_id != actor.id
            or session.get(RectificationFile, file.id) is not None):
        raise NotFound()
    return file


def store_chunk(session: Session, record: Rectification, actor: User, file_id: Any,
                index: int, data: bytes) -> None:
    if record.state not in OPEN_STATES:
        raise NotAllowedNow(RULES["progress"].refusal)
    intake.store_chunk(session, pending_file(session, record, actor, file_id), index, data)


def finish_file(session: Session, record: Rectification, actor: User, file_id: Any) -> None:
    file = pending_file(session, record, actor, file_id)
    if not file.complete:
        intake.complete_file(session, file)
    session.flush()


def users_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))}
