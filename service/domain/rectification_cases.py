"""Rectification records and their cases: opening a record from a verified case, which
records a case has, and moving the case to where its records are.

The case's side of the rectification runs through the case workflow
(service/domain/workflow.py, its ``by_record`` moves): the first record opens the case's
rectification, the last accepted one accepts it, the last write-off closes the case. The record's
own moves are in service/domain/rectification.py, which calls ``sync_case`` after each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.domain import audit, cases, workflow
from service.domain.models import Case, CaseEvent, User, utcnow
from service.domain.models.rectification import (
    Rectification,
    RectificationCase,
    RectificationEntry,
)
from service.domain.rectification_facts import OPEN_STATES, local_date, parse_fields
from service.domain.statemachine import NotAllowedNow
from service.platform import localtime
from service.platform.errors import Forbidden
from service.platform.i18n import N_
from service.platform.settings import Settings


def linked_cases(session: Session, record: Rectification) -> list[Case]:
    return list(session.scalars(
        select(Case).join(RectificationCase, RectificationCase.case_id == Case.id)
        .where(RectificationCase.rectification_id == record.id)
        .order_by(Case.created_at, Case.id)))


def records_of_case(session: Session, case: Case) -> list[Rectification]:
    return list(session.scalars(
        select(Rectification).join(RectificationCase,
                                   RectificationCase.rectification_id == Rectification.id)
        .where(RectificationCase.case_id == case.id).order_by(Rectification.id)))


def can_open(case: Case) -> bool:
    """A case a record may be opened from or linked to: verified as true or partly true."""
    if case.status == "verified":
        return case.verification_result in ("true", "partly")
    return case.status in ("rectifying", "rectified")


def sync_case(session: Session, settings: Settings, case: Case, actor: User,
              now: dt.datetime) -> None:
    """Move the case to where its records are, through the case workflow."""
    states = {r.state for r in records_of_case(session, case)}
    unfinished = states - {"accepted", "closed"}

    def move(action: str) -> None:
        workflow.perform(session, settings, case, actor, action, version=case.version,
                         now=now, by_record=True)

    if unfinished and case.status == "verified":
        move("open_rectification")
    elif unfinished and case.status == "rectified":
        move("reopen_rectification")
    if states and not unfinished and case.status == "rectifying":
        move("accept_rectification")
    if states == {"closed"} and case.status == "rectified" and actor.has_role("approver"):
        move("close")
    case.rectification_due_at = rectification_due(session, case)


def rectification_due(session: Session, case: Case) -> dt.datetime | None:
    """The end (in the installation's zone) of the earliest deadline day among the case's
    unfinished records: after it the case is overdue, as the record is."""
    if case.status != "rectifying":
        return None
    earliest = session.scalar(
        select(func.min(Rectification.deadline)).join(
            RectificationCase, RectificationCase.rectification_id == Rectification.id)
        .where(RectificationCase.case_id == case.id,
               Rectification.state.in_(OPEN_STATES)))
    if earliest is None:
        return None
    end = localtime.midnight(earliest + dt.timedelta(days=1)) - dt.timedelta(microseconds=1)
    return end.astimezone(dt.UTC)


# ---------------------------------------------------------------------------- opening


def open_record(session: Session, settings: Settings, case: Case, actor: User,
                params: Mapping[str, Any], now: dt.datetime | None = None) -> Rectification:
    """A new record for a verified (true or partly true) hazard, opened by a reviewer of the
    case's channel. A further record of the same case is another item of the rectification."""
    if not actor.has_role("reviewer") or case.channel_id not in cases.case_channels(
            session, actor):
        raise Forbidden()
    if not can_open(case):
        raise NotAllowedNow(N_("A rectification record is opened from a case verified as true "
                               "or partly true."), code="not_confirmed")
    now = now or utcnow()
    values = parse_fields(session, case.channel_id, params, now)
    if not values["location"]:
        values["location"] = case.location
    record = Rectification(channel_id=case.channel_id, case_id=case.id, state="opened",
                           version=1, found_on=local_date(case.created_at), opened_by=actor.id,
                           created_at=now, updated_at=now, **values)
    if record.owner_id is None:
        record.owner_id = actor.id
    session.add(record)
    session.flush()
    session.add(RectificationCase(rectification_id=record.id, case_id=case.id,
                                  linked_by=actor.id, linked_at=now))
    session.add(RectificationEntry(rectification_id=record.id, kind="opened", user_id=actor.id,
                                   created_at=now))
    session.add(CaseEvent(case_id=case.id, kind="rectification_record", user_id=actor.id,
                          visible_to_reporter=False, data={"rectification": record.id},
                          created_at=now))
    session.flush()
    sync_case(session, settings, case, actor, now)
    audit.append(session, "rectification.open", actor=actor, target=str(record.id), now=now,
                 details={"case": case.id, "to": "opened"})
    session.flush()
    return record
