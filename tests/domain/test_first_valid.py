"""The first valid report is the earliest one verified true — decided, never guessed.

Times are stored to the hour (the anonymity rule), so two verified reports of one hour cannot
be ordered by the system: before, the random case id decided who was paid, and an unverified
later duplicate could take the title. Now only verified reports qualify, a same-bucket tie is
an open question a reviewer settles with a reason (audited), and no reward is calculated or
approved while it is open.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from service.domain import reward_policies, reward_records, workflow
from service.domain.models import AuditEntry, Case
from service.platform.errors import ChuishaoError
from service.platform.settings import Settings
from tests.console import sign_in
from tests.domain.test_reward_lifecycle import (
    REPORT,
    People,
    make_people,
    policy_row,
    verified_case,
)
from tests.factories import api_client


@pytest.fixture
def people(session: Session, settings: Settings) -> People:
    return make_people(session, settings)


def _do(session: Session, people: People, case: Case, action: str, **params: str) -> None:
    workflow.perform(session, people.world.settings, case, people.reviewer.user, action,
                     version=case.version, params=params)
    session.commit()


def _link(session: Session, people: People, case: Case, other: Case) -> None:
    _do(session, people, case, "link_duplicate", duplicate_of=other.id)


def _same_bucket(session: Session, a: Case, b: Case, hours: int = 0) -> None:
    # Both came in through the intake; put them in the same (or a later) stored hour, as two
    # reports of one hour are whatever the wall clock says when the test runs.
    b.created_at = a.created_at + dt.timedelta(hours=hours)
    session.commit()


def _propose(session: Session, people: People, case: Case) -> None:
    reward_records.propose(session, case, people.reviewer.user, policy_row(session).id,
                           {"fine": "100000"})


@pytest.mark.parametrize("decide", ["smaller id", "larger id"])
def test_same_bucket_verified_reports_wait_for_a_decision(
        client: TestClient, session: Session, people: People, decide: str) -> None:
    a, _ = verified_case(client, session, people)
    b, _ = verified_case(client, session, people)
    _same_bucket(session, a, b)
    _link(session, people, b, a)
    session.refresh(a)
    assert a.first_valid_open and b.first_valid_open
    assert not a.first_valid and not b.first_valid
    for case in (a, b):
        with pytest.raises(reward_policies.FirstValidOpen):
            _propose(session, people, case)
        session.rollback()
    chosen = min(a, b, key=lambda c: c.id) if decide == "smaller id" else max(a, b,
                                                                              key=lambda c: c.id)
    other = b if chosen is a else a
    with pytest.raises(ChuishaoError):  # a reason is required
        _do(session, people, other, "decide_first_valid", first=chosen.id)
    session.rollback()
    _do(session, people, other, "decide_first_valid", first=chosen.id,
        reason="现场核查记录显示该举报先到达")
    session.refresh(a)
    session.refresh(b)
    assert chosen.first_valid and not other.first_valid
    assert not a.first_valid_open and not b.first_valid_open
    assert chosen.first_valid_decided_by == people.reviewer.user.id
    entry = session.scalars(select(AuditEntry).where(
        AuditEntry.action == "case.decide_first_valid")).one()
    assert "现场核查记录显示该举报先到达" in str(entry.details)
    _propose(session, people, chosen)  # the reward can be calculated now
    with pytest.raises(ChuishaoError):  # and the question is closed
        _do(session, people, other, "decide_first_valid", first=other.id, reason="again")


def test_unverified_duplicate_in_the_same_hour_is_not_a_candidate(
        client: TestClient, session: Session, people: People) -> None:
    verified, _ = verified_case(client, session, people)
    api_client(client).submit("acme", REPORT)
    unverified = session.scalars(select(Case).where(Case.status == "new")).one()
    _same_bucket(session, verified, unverified)
    _link(session, people, unverified, verified)
    session.refresh(verified)
    assert verified.first_valid and not verified.first_valid_open
    assert not unverified.first_valid
    _propose(session, people, verified)


def test_earlier_report_found_false_hands_the_title_on(
        client: TestClient, session: Session, people: People) -> None:
    earlier, _ = verified_case(client, session, people)
    later, _ = verified_case(client, session, people)
    _same_bucket(session, earlier, later, hours=1)
    _link(session, people, later, earlier)
    session.refresh(earlier)
    assert earlier.first_valid and not later.first_valid and not earlier.first_valid_open
    # A second verification (a re-check) finds the earlier report untrue: the next verified
    # report becomes first valid, and the change is on the record.
    earlier.status = "verifying"
    session.commit()
    _do(session, people, earlier, "verify", result="false")
    session.refresh(later)
    assert later.first_valid and not earlier.first_valid
    changes = session.scalars(select(AuditEntry).where(
        AuditEntry.action == "case.first_valid_changed")).all()
    assert changes and changes[-1].details["to"] == later.id


def test_joint_report_is_one_case_and_its_own_first(
        client: TestClient, session: Session, people: People, settings: Settings) -> None:
    case, _ = verified_case(client, session, people)
    assert case.first_valid and not case.first_valid_open
    record = reward_records.propose(session, case, people.reviewer.user, policy_row(session).id,
                                    {"fine": "100000", "joint_reporters": "2"})
    calc = reward_records.calculation_of(record)
    assert calc.inputs.first_valid and len(calc.shares_fen) == 2


def test_case_page_shows_the_group_and_the_decision_form(
        client: TestClient, session: Session, people: People, settings: Settings) -> None:
    a, _ = verified_case(client, session, people)
    b, _ = verified_case(client, session, people)
    _same_bucket(session, a, b)
    _link(session, people, b, a)
    sign_in(client, session, settings, people.reviewer.user)
    page = client.get(f"/console/cases/{a.id}")
    assert 'id="duplicate-group"' in page.text and 'id="form-decide_first_valid"' in page.text
    assert a.id[:8] in page.text and b.id[:8] in page.text


def test_reward_pages_name_the_decision(client: TestClient, session: Session, people: People,
                                        settings: Settings) -> None:
    a, _ = verified_case(client, session, people)
    b, _ = verified_case(client, session, people)
    _same_bucket(session, a, b)
    _link(session, people, b, a)
    sign_in(client, session, settings, people.reviewer.user)
    waiting = client.get(f"/console/cases/{a.id}/reward")
    assert 'id="first-valid-basis"' in waiting.text and "尚未裁定" in waiting.text
    _do(session, people, a, "decide_first_valid", first=b.id, reason="b 的举报先于 a 提交")
    page = client.get(f"/console/cases/{b.id}/reward")
    assert "b 的举报先于 a 提交" in page.text
    other = client.get(f"/console/cases/{a.id}/reward")
    assert "不是" in other.text and b.id[:8] in other.text


def test_a_reward_proposed_before_the_title_moved_is_not_approved(
        client: TestClient, session: Session, people: People) -> None:
    """Proposed while the case was first valid; then an earlier verified report of the same
    hazard was linked: the proposal's calculation no longer holds and is not approved."""
    later, _ = verified_case(client, session, people)
    earlier, _ = verified_case(client, session, people)
    _same_bucket(session, earlier, later, hours=1)
    record = reward_records.propose(session, later, people.reviewer.user,
                                    policy_row(session).id, {"fine": "100000"})
    session.commit()
    assert reward_records.calculation_of(record).inputs.first_valid
    _link(session, people, later, earlier)
    session.refresh(later)
    assert earlier.first_valid and not later.first_valid and not later.first_valid_open
    with pytest.raises(ChuishaoError) as refused:
        reward_records.approve(session, record, people.approver.user, record.version)
    assert refused.value.code == "first_valid_changed"
    session.rollback()


def test_a_third_report_of_the_same_hour_reopens_the_decision(
        client: TestClient, session: Session, people: People) -> None:
    """A decision between two reports does not cover a third verified one of the same hour
    linked afterwards: the reviewer who decided never saw it."""
    a, _ = verified_case(client, session, people)
    b, _ = verified_case(client, session, people)
    c, _ = verified_case(client, session, people)
    _same_bucket(session, a, b)
    _same_bucket(session, a, c)
    _link(session, people, b, a)
    _do(session, people, a, "decide_first_valid", first=a.id, reason="a 先到")
    session.refresh(a)
    assert a.first_valid and not a.first_valid_open
    _link(session, people, c, a)
    for case in (a, b, c):
        session.refresh(case)
    assert a.first_valid_open and b.first_valid_open and c.first_valid_open
    assert not a.first_valid
    with pytest.raises(reward_policies.FirstValidOpen):
        _propose(session, people, a)
    session.rollback()


@pytest.mark.parametrize("result", ["false", "true"])
def test_an_earlier_report_verified_after_a_later_one(
        client: TestClient, session: Session, people: People, result: str) -> None:
    """The earlier report was still being verified when the later one was verified and linked:
    the later one is first valid meanwhile. Found false, the earlier one changes nothing and the
    later one's reward is approved; found true, it takes the title (audited) and the later
    one's proposal is not approved."""
    later, _ = verified_case(client, session, people)
    api_client(client).submit("acme", REPORT)
    earlier = session.scalars(select(Case).where(Case.status == "new")).one()
    _same_bucket(session, earlier, later, hours=1)
    _do(session, people, earlier, "accept")
    _do(session, people, earlier, "start_verification")
    _link(session, people, earlier, later)
    session.refresh(later)
    assert later.first_valid and not earlier.first_valid and not later.first_valid_open
    record = reward_records.propose(session, later, people.reviewer.user,
                                    policy_row(session).id, {"fine": "100000"})
    session.commit()
    _do(session, people, earlier, "verify", result=result)
    session.refresh(later)
    if result == "false":
        assert later.first_valid and not earlier.first_valid
        reward_records.approve(session, record, people.approver.user, record.version)
        session.commit()
        assert record.status == "approved"
        return
    assert earlier.first_valid and not later.first_valid and not earlier.first_valid_open
    changes = session.scalars(select(AuditEntry).where(
        AuditEntry.action == "case.first_valid_changed")).all()
    assert [(c.details["from"], c.details["to"]) for c in changes
            if c.details["to"] == earlier.id] == [(later.id, earlier.id)]
    with pytest.raises(ChuishaoError) as refused:
        reward_records.approve(session, record, people.approver.user, record.version)
    assert refused.value.code == "first_valid_changed"
    session.rollback()


def test_an_approved_reward_is_flagged_when_the_title_moves(
        client: TestClient, session: Session, people: People, settings: Settings) -> None:
    """Approved while the later report was first valid; then the earlier one was verified
    true and took the title: the approved reward's page says the money may not be due."""
    later, _ = verified_case(client, session, people)
    api_client(client).submit("acme", REPORT)
    earlier = session.scalars(select(Case).where(Case.status == "new")).one()
    _same_bucket(session, earlier, later, hours=1)
    _do(session, people, earlier, "accept")
    _do(session, people, earlier, "start_verification")
    _link(session, people, earlier, later)
    record = reward_records.propose(session, later, people.reviewer.user,
                                    policy_row(session).id, {"fine": "100000"})
    reward_records.approve(session, record, people.approver.user, record.version)
    session.commit()
    assert not reward_records.title_moved(session, record)
    sign_in(client, session, settings, people.approver.user)
    assert 'id="title-moved"' not in client.get(f"/console/rewards/{record.id}").text
    _do(session, people, earlier, "verify", result="true")
    session.refresh(later)
    assert earlier.first_valid and not later.first_valid
    assert reward_records.title_moved(session, record)
    page = client.get(f"/console/rewards/{record.id}")
    assert page.status_code == 200
    assert 'id="title-moved"' in page.text and "付款前请核实" in page.text
