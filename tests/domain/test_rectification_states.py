"""The rectification record's state machine: every (state, action) pair.

Every allowed move works (state, version, entry, case events, audit, the case's own move);
every other pair is refused with a clear, translated error and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from sqlalchemy import func, select

from service.domain import rectification, rectification_facts
from service.domain.models import AuditEntry, Case, CaseEvent, utcnow
from service.domain.models.rectification import (
    Rectification,
    RectificationCase,
    RectificationEntry,
)
from service.platform.errors import Conflict, Forbidden, InvalidInput
from service.platform.i18n import Catalogs
from tests.factories import make_reviewer, make_world

TODAY = rectification_facts.today()
SOON = TODAY + dt.timedelta(days=20)
GUARANTEES = {
    "description": "配电室电缆沟积水", "location": "一号配电室",
    "risk_assessment": "可能导致短路和触电", "responsible_unit": "动力车间",
    "responsible_person": "李明", "measures": "疏通排水并加装盖板", "funds": "3500",
    "deadline": SOON.isoformat(), "contingency_plan": "停电检修预案",
}
# The case status that goes with each record state (the record is the case's only one).
CASE_STATUS = {"opened": "rectifying", "in_progress": "rectifying",
               "awaiting_acceptance": "rectifying", "accepted": "rectified", "closed": "closed"}
EXPECTED: dict[str, dict[str, str]] = {
    # record state: {action: state afterwards}
    "opened": {"edit": "opened", "decide": "in_progress", "progress": "opened",
               "link_case": "opened"},
    "in_progress": {"edit": "in_progress", "progress": "in_progress",
                    "extend": "in_progress", "explain_overdue": "in_progress",
                    "request_acceptance": "awaiting_acceptance", "link_case": "in_progress"},
    "awaiting_acceptance": {"progress": "awaiting_acceptance",
                            "explain_overdue": "awaiting_acceptance", "accept": "accepted",
                            "link_case": "awaiting_acceptance"},
    "accepted": {"write_off": "closed"},
    "closed": {"publish": "closed", "unpublish": "closed"},
}
VISIBLE = {"decide": "measures_decided", "progress": "rectification_progress",
           "extend": "rectification_deadline"}


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    # Opens records; a second person with every role checks, writes off and publishes.
    world.opener = world.reviewers[0].user
    world.boss = make_reviewer(session, "boss", world.channel, roles="reviewer approver").user
    session.commit()
    return world


def new_case(session, world, status: str, result: str = "true") -> Case:  # type: ignore[no-untyped-def]
    now = utcnow()
    case = Case(id=os.urandom(16).hex(), channel_id=world.channel.id, created_at=now,
                updated_at=now, status=status, lookup_hash=os.urandom(32).hex(), version=1,
                ready=True, verification_result=result)
    session.add(case)
    session.flush()
    return case


def new_record(session, world, state: str, **fields: Any) -> Rectification:  # type: ignore[no-untyped-def]
    case = new_case(session, world, CASE_STATUS[state])
    now = utcnow()
    values: dict[str, Any] = {
        "channel_id": world.channel.id, "case_id": case.id, "state": state, "version": 1,
        "description": GUARANTEES["description"], "location": GUARANTEES["location"],
        "found_on": TODAY, "opened_by": world.opener.id, "owner_id": world.opener.id,
        "created_at": now - dt.timedelta(days=3), "updated_at": now,
    }
    if state != "opened":
        values.update(responsible_unit="动力车间", responsible_person="李明",
                      measures="疏通排水", funds_fen=350_000, deadline=SOON,
                      contingency_plan="停电检修预案", first_deadline=SOON, decided_at=now)
    if state in ("accepted", "closed"):
        values.update(accepted_by=world.boss.id, accepted_on=TODAY)
    if state == "closed":
        values.update(closed_by=world.boss.id, closed_at=now)
    values.update(fields)
    record = Rectification(**values)
    session.add(record)
    session.flush()
    session.add(RectificationCase(rectification_id=record.id, case_id=case.id,
                                  linked_by=world.opener.id, linked_at=now))
    session.flush()
    return record


def setup_for(action: str) -> dict[str, Any]:
    """Record fields an action needs to be possible at all (its guard's preconditions)."""
    if action == "explain_overdue":
        return {"deadline": TODAY - dt.timedelta(days=1)}
    if action == "unpublish":
        return {"public_text": "已整改"}
    return {}


def params_for(action: str, session, world, record: Rectification) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    deadline = record.deadline.isoformat() if record.deadline else ""
    if action == "edit":
        return {**GUARANTEES, "deadline": deadline if record.state != "opened"
                else GUARANTEES["deadline"], "measures": "改为更换排水泵"}
    if action == "decide":
        return dict(GUARANTEES)
    if action == "progress":
        return {"text": "排水已疏通"}
    if action == "extend":
        return {"deadline": (SOON + dt.timedelta(days=10)).isoformat(), "reason": "等待盖板到货"}
    if action == "explain_overdue":
        return {"text": "供货延迟"}
    if action == "accept":
        return {"result": "pass", "date": TODAY.isoformat()}
    if action == "publish":
        return {"public_text": "配电室积水隐患已消除"}
    if action == "link_case":
        return {"case_id": new_case(session, world, "verified").id}
    return {}


def snapshot(session, record: Rectification) -> tuple[Any, ...]:  # type: ignore[no-untyped-def]
    session.flush()
    session.expire_all()
    row = tuple(getattr(record, c.key) for c in Rectification.__table__.columns)
    case = session.get(Case, record.case_id)
    return (row, case.status, case.version,
            session.scalar(select(func.count()).select_from(RectificationEntry)),
            session.scalar(select(func.count()).select_from(CaseEvent)),
            session.scalar(select(func.count()).select_from(AuditEntry)),
            session.scalar(select(func.count()).select_from(RectificationCase)))


@pytest.mark.parametrize("state", rectification_facts.STATES)
@pytest.mark.parametrize("action", rectification.ACTIONS)
def test_every_state_and_action(session, world, state: str, action: str) -> None:  # type: ignore[no-untyped-def]
    record = new_record(session, world, state, **setup_for(action))
    params = params_for(action, session, world, record)
    allowed = EXPECTED[state]
    before = snapshot(session, record)
    if action == "fixed_on_spot" and state == "opened":
        # Possible here, but never without evidence (the whole path, with sealed evidence
        # and the second person's check: tests/domain/test_loop_integrity.py).
        with pytest.raises(InvalidInput) as refused:
            rectification.perform(session, world.settings, record, world.boss, action,
                                  version=1, params={"responsible_person": "李明",
                                                     "measures": "当场清理", "date": TODAY})
        assert refused.value.code == "evidence_required"
        assert snapshot(session, record) == before
        return
    if action not in allowed:
        with pytest.raises(rectification.NotAllowedNow) as refused:
            rectification.perform(session, world.settings, record, world.boss, action,
                                  version=1, params=params)
        assert refused.value.status == 409 and refused.value.message
        # Translated: the zh-CN catalog has the refusal in Chinese.
        zh = Catalogs.load().by_language["zh_CN"]
        assert zh.get(refused.value.message, "").strip(), refused.value.message
        assert snapshot(session, record) == before
        return
    rectification.perform(session, world.settings, record, world.boss, action, version=1,
                          params=params)
    session.expire_all()
    record = session.get(Rectification, record.id)
    assert record.state == allowed[action] and record.version == 2
    last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    assert last.action == f"rectification.{action}" and last.outcome == "ok"
    assert last.target == str(record.id)
    case = session.get(Case, record.case_id)
    kinds = [e.kind for e in session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case.id).order_by(CaseEvent.id))]
    if action in VISIBLE:
        assert VISIBLE[action] in kinds
    if action == "accept":
        # The case's only record passed: the case's rectification is accepted too.
        assert case.status == "rectified" and "rectification_accepted" in kinds
    elif action == "write_off":
        assert case.status == "closed" and "closed" in kinds
    else:
        assert case.status == CASE_STATUS[state]
    for event in session.scalars(select(CaseEvent).where(CaseEvent.visible_to_reporter)):
        assert set(event.data) <= {"rectification", "deadline", "result", "result_code"}
    # The same form again carries the old version: a conflict, nothing changes.
    before = snapshot(session, record)
    with pytest.raises(Conflict):
        rectification.perform(session, world.settings, record, world.boss, action, version=1,
                              params=params_for(action, session, world, record))
    assert snapshot(session, record) == before


def test_visible_events_are_the_feeds() -> None:
    from service.domain import feed

    for kind in rectification.VISIBLE_EVENTS:
        assert kind in feed.EVENTS
    for kind in rectification.INTERNAL_EVENTS:
        assert kind not in feed.EVENTS


@pytest.mark.parametrize(("state", "action", "params", "error", "code"), [
    ("opened", "decide", {**GUARANTEES, "deadline": ""}, InvalidInput,
     "guarantees_incomplete"),
    ("opened", "decide", {**GUARANTEES, "contingency_plan": ""}, InvalidInput,
     "guarantees_incomplete"),
    ("opened", "decide", {**GUARANTEES, "deadline": (TODAY - dt.timedelta(days=1)).isoformat()},
     InvalidInput, "deadline_past"),
    ("opened", "edit", {**GUARANTEES, "description": ""}, InvalidInput, "description_required"),
    ("opened", "edit", {**GUARANTEES, "listed_supervision": "1"}, InvalidInput,
     "supervision_by"),
    ("opened", "edit", {**GUARANTEES, "owner": "999999"}, InvalidInput, "owner"),
    ("opened", "edit", {**GUARANTEES, "deadline": "2025-02-30"}, InvalidInput, "date"),
    ("opened", "edit", {**GUARANTEES, "measures": "措" * 4001}, InvalidInput, "invalid"),
    ("opened", "progress", {"text": ""}, InvalidInput, "required"),
    ("opened", "progress", {"files": ["0" * 32]}, InvalidInput, "file_unknown"),
    ("in_progress", "extend", {"deadline": SOON.isoformat(), "reason": "x"}, InvalidInput,
     "deadline_not_later"),
    ("in_progress", "extend", {"deadline": (SOON + dt.timedelta(days=5)).isoformat()},
     InvalidInput, "required"),
    ("in_progress", "explain_overdue", {"text": "x"}, rectification.NotAllowedNow,
     "not_overdue"),
    ("awaiting_acceptance", "accept", {"result": "maybe", "date": TODAY.isoformat()},
     InvalidInput, "result"),
    ("awaiting_acceptance", "accept",
     {"result": "pass", "date": (TODAY + dt.timedelta(days=1)).isoformat()}, InvalidInput,
     "acceptance_date"),
    ("awaiting_acceptance", "accept", {"result": "fail", "date": TODAY.isoformat()},
     InvalidInput, "required"),
    ("closed", "publish", {"public_text": ""}, InvalidInput, "required"),
    ("closed", "unpublish", {}, rectification.NotAllowedNow, "not_published"),
    ("in_progress", "link_case", {"case_id": "0" * 32}, InvalidInput, "case_unknown"),
])
def test_bad_parameters_change_nothing(session, world, state, action, params, error,  # type: ignore[no-untyped-def]
                                       code) -> None:
    record = new_record(session, world, state)
    before = snapshot(session, record)
    with pytest.raises(error) as refused:
        rectification.perform(session, world.settings, record, world.boss, action, version=1,
                              params=params)
    assert refused.value.code == code and refused.value.message
    assert snapshot(session, record) == before


def test_roles_the_same_person_and_garbage_versions(session, world) -> None:  # type: ignore[no-untyped-def]
    record = new_record(session, world, "awaiting_acceptance")
    before = snapshot(session, record)
    # The opener and the handler may not check their own work.
    with pytest.raises(rectification.SamePerson):
        rectification.perform(session, world.settings, record, world.opener, "accept",
                              version=1, params={"result": "pass", "date": TODAY.isoformat()})
    handler = world.reviewers[1].user
    record.owner_id = handler.id
    session.flush()
    before = snapshot(session, record)
    with pytest.raises(rectification.SamePerson):
        rectification.perform(session, world.settings, record, handler, "accept", version=1,
                              params={"result": "pass", "date": TODAY.isoformat()})
    assert snapshot(session, record) == before
    accepted = new_record(session, world, "accepted")
    with pytest.raises(Forbidden):  # write-off is the approver's
        rectification.perform(session, world.settings, accepted, world.opener, "write_off",
                              version=1)
    auditor = make_reviewer(session, "auditor", world.channel, roles="auditor").user
    with pytest.raises(Forbidden):
        rectification.perform(session, world.settings, record, auditor, "progress", version=1,
                              params={"text": "x"})
    with pytest.raises(InvalidInput):
        rectification.perform(session, world.settings, record, world.boss, "teleport",
                              version=1)
    for stale in (None, "", "abc", 0, 2):
        with pytest.raises(Conflict):
            rectification.perform(session, world.settings, record, world.boss, "progress",
                                  version=stale, params={"text": "x"})
    assert rectification.allowed_actions(record, world.opener) == [
        "progress", "explain_overdue", "accept", "link_case"]
    assert rectification.allowed_actions(accepted, auditor) == []


def test_money_is_fen_and_dates_are_local() -> None:
    assert rectification_facts.parse_yuan("12000.5") == 1_200_050
    assert rectification_facts.parse_yuan("0.01") == 1
    assert rectification_facts.parse_yuan("1,000") == 100_000
    assert rectification_facts.parse_yuan("") is None
    for bad in ("-1", "1.234", "abc", "1e3", "9" * 13):
        with pytest.raises(InvalidInput):
            rectification_facts.parse_yuan(bad)
    # 17:00 UTC is already the next day in China.
    late = dt.datetime(2025, 6, 30, 17, 0, tzinfo=dt.UTC)
    assert rectification_facts.today(late) == dt.date(2025, 7, 1)
    assert rectification_facts.week_bounds(dt.date(2025, 6, 18)) == (dt.date(2025, 6, 16),
                                                                     dt.date(2025, 6, 22))
