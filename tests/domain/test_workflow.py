"""The case state machine: every (state, action) pair, deadlines, versions, duplicates."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from sqlalchemy import func, select

from service.domain import workflow
from service.domain.models import AuditEntry, Case, CaseEvent, HazardCriterion
from service.platform.errors import Conflict, Forbidden, InvalidInput
from tests.factories import make_reviewer, make_world

NOW = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
CREATED = dt.datetime(2025, 2, 20, 8, 0, tzinfo=dt.UTC)

# The test's own view of the table: (state, verification result) -> allowed status actions.
# "verified" splits by result because closing and rectifying depend on it.
STATE_SETUPS: dict[str, dict[str, Any]] = {
    "new": {"status": "new"},
    "accepted": {"status": "accepted", "accepted_at": CREATED, "verify_due_at": NOW},
    "not_accepted": {"status": "not_accepted", "not_accepted_reason": "out_of_scope"},
    "verifying": {"status": "verifying", "accepted_at": CREATED, "verify_due_at": NOW},
    "verified-true": {"status": "verified", "verification_result": "true", "verified_at": NOW},
    "verified-false": {"status": "verified", "verification_result": "false",
                       "verified_at": NOW},
    "rectifying": {"status": "rectifying", "verification_result": "partly"},
    "rectified": {"status": "rectified", "verification_result": "true"},
    "closed": {"status": "closed", "verification_result": "true"},
}
EDITS = {"assign", "grade", "facts", "link_duplicate"}
EXPECTED: dict[str, dict[str, str | None]] = {
    # state: {action: target status (None = unchanged)}
    "new": {"accept": "accepted", "not_accept": "not_accepted"},
    "accepted": {"start_verification": "verifying", "extend": None},
    "not_accepted": {"close": "closed"},
    "verifying": {"verify": "verified", "extend": None},
    # Rectification moves are made only by rectification records (test_rectification*.py),
    # and a refusal is reopened only with a refusal on record (test_loop_integrity.py).
    "verified-true": {},
    "verified-false": {"close": "closed"},
    "rectifying": {},
    "rectified": {"close": "closed"},
    "closed": {},
}


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


@pytest.fixture
def boss(session, world):  # type: ignore[no-untyped-def]
    # Reviewer and approver: may do every action.
    return make_reviewer(session, "boss", world.channel, roles="reviewer approver").user


def new_case(session, world, **fields: Any) -> Case:  # type: ignore[no-untyped-def]
    values: dict[str, Any] = {
        "id": os.urandom(16).hex(), "channel_id": world.channel.id, "created_at": CREATED,
        "updated_at": CREATED, "status": "new", "lookup_hash": os.urandom(32).hex(),
        "version": 1, "ready": True,
    }
    values.update(fields)
    case = Case(**values)
    session.add(case)
    session.flush()
    return case


def params_for(action: str, session, world, case: Case) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    if action == "not_accept":
        return {"reason": "out_of_scope", "confirm": "1", "note": "不属于本热线受理范围"}
    if action == "extend":
        return {"reason": "需要补充检测报告", "days": 20}
    if action == "verify":
        return {"result": "true"}
    if action == "assign":
        return {"assignee": world.reviewers[0].user.id}
    if action == "grade":
        criterion = session.scalar(select(HazardCriterion).limit(1))
        return {"grade": "major", "criterion_id": criterion.id}
    if action == "facts":
        return {"category": "hazard", "enterprise": "某机械厂", "location": "三号车间"}
    if action == "link_duplicate":
        other = new_case(session, world, created_at=CREATED - dt.timedelta(days=1))
        return {"duplicate_of": other.id}
    return {}


def snapshot(session, case: Case) -> tuple[Any, ...]:  # type: ignore[no-untyped-def]
    session.flush()
    session.expire(case)
    row = tuple(getattr(case, column.key) for column in Case.__table__.columns)
    events = session.scalar(select(func.count()).select_from(CaseEvent))
    entries = session.scalar(select(func.count()).select_from(AuditEntry))
    return row, events, entries


@pytest.mark.parametrize("state", list(STATE_SETUPS))
@pytest.mark.parametrize("action", workflow.ACTIONS)
def test_every_state_and_action(session, world, boss, state: str, action: str) -> None:  # type: ignore[no-untyped-def]
    case = new_case(session, world, **STATE_SETUPS[state])
    params = params_for(action, session, world, case)
    allowed = EXPECTED[state]
    is_allowed = action in allowed or (action in EDITS and state != "closed")
    before = snapshot(session, case)
    if not is_allowed:
        with pytest.raises(workflow.NotAllowedNow) as refused:
            workflow.perform(session, world.settings, case, boss, action, version=1,
                             params=params, now=NOW)
        assert refused.value.status == 409 and refused.value.message
        assert snapshot(session, case) == before
        return
    event = workflow.perform(session, world.settings, case, boss, action, version=1,
                             params=params, now=NOW)
    session.refresh(case)
    target = allowed.get(action)
    expected_status = target if target is not None else STATE_SETUPS[state]["status"]
    assert case.status == expected_status
    assert case.version == 2 and case.updated_at == NOW
    assert event.kind == workflow.RULES[action].event and event.user_id == boss.id
    assert event.visible_to_reporter == workflow.RULES[action].visible
    last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    assert last.action == f"case.{action}" and last.target == case.id and last.outcome == "ok"
    # The same form sent again carries the old version: refused, nothing changes.
    before = snapshot(session, case)
    with pytest.raises(Conflict):
        workflow.perform(session, world.settings, case, boss, action, version=1,
                         params=params, now=NOW)
    assert snapshot(session, case) == before


def test_reporter_visible_kinds_are_the_feeds() -> None:
    from service.domain import feed

    for rule in workflow.RULES.values():
        assert (rule.event in feed.EVENTS) == rule.visible, rule.event


def test_deadlines_through_a_whole_life(session, world, boss) -> None:  # type: ignore[no-untyped-def]
    settings = world.settings
    case = new_case(session, world)
    assert workflow.due_at(case, settings) == CREATED + dt.timedelta(days=settings.accept_days)
    assert workflow.is_overdue(case, settings, CREATED + dt.timedelta(days=8))
    workflow.perform(session, settings, case, boss, "accept", version=1, now=NOW)
    assert case.accept_due_at == CREATED + dt.timedelta(days=settings.accept_days)
    assert case.accepted_at == NOW
    assert case.verify_due_at == NOW + dt.timedelta(days=settings.verify_days)
    workflow.perform(session, settings, case, boss, "start_verification", version=2, now=NOW)
    later = NOW + dt.timedelta(days=59)
    event = workflow.perform(session, settings, case, boss, "extend", version=3, now=later,
                             params={"reason": "等待第三方检测", "days": 30})
    assert case.verify_due_at == NOW + dt.timedelta(days=90) and case.verify_extended
    assert event.data["reason"] == "等待第三方检测" and event.visible_to_reporter
    with pytest.raises(workflow.NotAllowedNow) as again:
        workflow.perform(session, settings, case, boss, "extend", version=4, now=later,
                         params={"reason": "再延", "days": 5})
    assert again.value.code == "already_extended"
    done = NOW + dt.timedelta(days=70)
    event = workflow.perform(session, settings, case, boss, "verify", version=4, now=done,
                             params={"result": "partly"})
    assert case.verified_at == done
    assert case.feedback_due_at == done + dt.timedelta(days=settings.feedback_days)
    assert event.data == {"result": "您举报的情况部分属实", "result_code": "partly"}
    assert case.first_valid  # alone in its group, and valid
    assert workflow.due_at(case, settings) == case.feedback_due_at
    assert workflow.due_kind(case) == "feedback to the reporter"
    # From here only a rectification record moves the case (test_loop_integrity.py).
    for action in ("open_rectification", "accept_rectification"):
        with pytest.raises(workflow.ThroughRecords):
            workflow.perform(session, settings, case, boss, action, version=5, now=done)
    # Event ids are random (they must not order rows): time orders them.
    expected = ["accepted", "verifying", "verification_extended", "verified"]
    events = sorted(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)),
                    key=lambda e: (e.created_at, expected.index(e.kind)))
    assert [e.kind for e in events] == expected


@pytest.mark.parametrize(("params", "error"), [
    ({"reason": ""}, InvalidInput),
    ({"reason": "x", "days": 31}, InvalidInput),
    ({"reason": "x", "days": 0}, InvalidInput),
    ({"reason": "x" * 501}, InvalidInput),
])
def test_extension_needs_reason_and_bounded_days(session, world, boss, params, error) -> None:  # type: ignore[no-untyped-def]
    case = new_case(session, world, **STATE_SETUPS["verifying"])
    before = snapshot(session, case)
    with pytest.raises(error):
        workflow.perform(session, world.settings, case, boss, "extend", version=1,
                         params=params, now=NOW)
    assert snapshot(session, case) == before


@pytest.mark.parametrize(("action", "params"), [
    ("not_accept", {"reason": "rude"}),
    ("not_accept", {"reason": "duplicate"}),
    ("not_accept", {"reason": "duplicate", "duplicate_of": "0" * 32}),
    ("grade", {"grade": "major"}),
    ("grade", {"grade": "major", "criterion_id": 999999}),
    ("grade", {"grade": "huge"}),
    ("facts", {"category": "gossip"}),
    ("facts", {"enterprise": "厂" * 201}),
    ("assign", {"assignee": 999999}),
])
def test_bad_parameters_are_refused_without_change(session, world, boss, action,  # type: ignore[no-untyped-def]
                                                   params) -> None:
    case = new_case(session, world)
    before = snapshot(session, case)
    with pytest.raises(InvalidInput) as refused:
        workflow.perform(session, world.settings, case, boss, action, version=1, params=params,
                         now=NOW)
    assert refused.value.message
    assert snapshot(session, case) == before


def test_roles_unknown_actions_and_garbage_versions(session, world) -> None:  # type: ignore[no-untyped-def]
    reviewer = world.reviewers[0].user
    case = new_case(session, world, **STATE_SETUPS["not_accepted"])
    with pytest.raises(Forbidden):  # closing is the approver's
        workflow.perform(session, world.settings, case, reviewer, "close", version=1, now=NOW)
    with pytest.raises(InvalidInput):
        workflow.perform(session, world.settings, case, reviewer, "teleport", version=1)
    for stale in (None, "", "abc", 0, 2):
        with pytest.raises(Conflict):
            workflow.perform(session, world.settings, case, reviewer, "assign", version=stale)
    assert workflow.allowed_actions(case, reviewer) == ["assign", "grade", "facts",
                                                        "link_duplicate", "decide_first_valid"]


def test_assignee_must_be_a_reviewer_of_the_channel(session, world, boss) -> None:  # type: ignore[no-untyped-def]
    from service.domain import channels

    other = channels.add_channel(session, slug="other", kind="bureau", name_zh="区应急局")
    outsider = make_reviewer(session, "outsider", other).user
    auditor = make_reviewer(session, "auditor", world.channel, roles="auditor").user
    case = new_case(session, world)
    for user in (outsider, auditor):
        with pytest.raises(InvalidInput):
            workflow.perform(session, world.settings, case, boss, "assign", version=1,
                             params={"assignee": user.id})
    workflow.perform(session, world.settings, case, boss, "assign", version=1,
                     params={"assignee": ""})
    assert case.assigned_to is None and case.version == 2


def test_duplicates_mark_the_first_valid_report(session, world, boss) -> None:  # type: ignore[no-untyped-def]
    from service.domain import channels

    settings = world.settings
    # Only reports verified as true (or partly) can be the first valid one.
    true = {"status": "verified", "verification_result": "true"}
    first = new_case(session, world, created_at=CREATED, status="verifying")
    second = new_case(session, world, created_at=CREATED + dt.timedelta(hours=1), **true)
    third = new_case(session, world, created_at=CREATED + dt.timedelta(hours=2), **true)
    workflow.perform(session, settings, third, boss, "link_duplicate", version=1,
                     params={"duplicate_of": second.id})
    assert third.duplicate_of == second.id and second.first_valid and not third.first_valid
    # Linking the group's root to an earlier case moves the whole group under it.
    workflow.perform(session, settings, second, boss, "link_duplicate", version=2,
                     params={"duplicate_of": first.id})
    assert second.duplicate_of == first.id and third.duplicate_of == first.id
    # The earliest report is still being verified: the earliest verified one is first valid.
    assert not first.first_valid and second.first_valid and not third.first_valid
    # A cycle is refused.
    with pytest.raises(InvalidInput):
        workflow.perform(session, settings, first, boss, "link_duplicate",
                         version=first.version, params={"duplicate_of": third.id})
    # The earliest report is verified true: it becomes the first valid.
    workflow.perform(session, settings, first, boss, "verify", version=first.version,
                     params={"result": "true"})
    assert first.first_valid and not second.first_valid
    # ... and later found untrue on a re-check: the next verified one takes over.
    first.status = "verifying"
    workflow.perform(session, settings, first, boss, "verify", version=first.version,
                     params={"result": "false"})
    assert not first.first_valid and second.first_valid
    # Not accepted as a duplicate sets the link; another channel's case is refused.
    fourth = new_case(session, world, created_at=CREATED + dt.timedelta(hours=3))
    event = workflow.perform(session, settings, fourth, boss, "not_accept", version=1,
                             params={"reason": "duplicate", "duplicate_of": third.id,
                                     "confirm": "1", "note": "与之前的举报为同一隐患"})
    assert fourth.duplicate_of == first.id and fourth.not_accepted_reason == "duplicate"
    assert event.data["reason_code"] == "duplicate" and "举报" in event.data["reason"]
    elsewhere = channels.add_channel(session, slug="else", kind="bureau", name_zh="别处")
    foreign = new_case(session, world, channel_id=elsewhere.id)
    with pytest.raises(InvalidInput):
        workflow.perform(session, settings, fourth, boss, "link_duplicate", version=2,
                         params={"duplicate_of": foreign.id})
