"""Reward records: a reviewer's proposal and an approver's decision.

A reviewer of the case's channel proposes (the calculation is stored as it came out); an
approver who is not the proposer approves or rejects it (reward_states.RULES). Changes that
must not happen twice per case (a second active record, a second approval) also take the case
row first: on PostgreSQL the second writer waits and then sees the first one's record. Every
action appends to the audit trail; refusals are recorded by the views.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, cases, notify
from service.domain.models import Case, CaseEvent, User, utcnow
from service.domain.models.rewards import RewardPolicyVersion, RewardRecord
from service.domain.reward_policies import (
    FirstValidChanged,
    PeriodCapExcess,
    approved_in_period,
    calculate_or_refuse,
    ensure_shipped,
    excess_of,
    get_policy_row,
    inputs_from_form,
    parsed,
    require_first_valid_settled,
)
from service.domain.reward_states import ACTIVE, DECIDED, advance, check, require
from service.domain.rewards import RewardCalculation, format_yuan
from service.domain.statemachine import NotAllowedNow
from service.platform.errors import ChuishaoError, InvalidInput
from service.platform.i18n import N_

CLAIMABLE_RESULTS = ("true", "partly")


class OwnApproval(ChuishaoError):
    status = 403
    code = "own_approval"
    message = N_("A reward must be approved by someone other than the person who proposed it.")


# ---------------------------------------------------------------------------- proposals


def _lock_case(session: Session, case: Case) -> None:
    # Takes the case row (PostgreSQL waits here for a concurrent writer of the same case) and
    # makes open triage forms of the case stale: its timeline changes.
    session.execute(update(Case).where(Case.id == case.id).values(version=Case.version + 1)
                    .execution_options(synchronize_session=False))
    session.expire(case, ["version"])


def rewardable(case: Case) -> bool:
    return case.verification_result in CLAIMABLE_RESULTS and case.status != "not_accepted"


def active_record(session: Session, case: Case) -> RewardRecord | None:
    return session.scalar(select(RewardRecord).where(
        RewardRecord.case_id == case.id, RewardRecord.status.in_(ACTIVE)).limit(1))


def case_records(session: Session, case: Case) -> list[RewardRecord]:
    return list(session.scalars(select(RewardRecord).where(RewardRecord.case_id == case.id)
                                .order_by(RewardRecord.proposed_at, RewardRecord.id)))


def _active_policy(session: Session, row_id: Any) -> RewardPolicyVersion:
    ensure_shipped(session)
    row = get_policy_row(session, row_id)
    if not row.active:
        raise InvalidInput(N_("Choose an active reward policy."), code="policy_inactive")
    return row


def _check_case(case: Case) -> None:
    if not rewardable(case):
        raise NotAllowedNow(N_("Only a case verified as true or partly true can be rewarded."),
                            code="not_verified")


def preview(session: Session, case: Case, actor: User, policy_row_id: Any,
            form: Mapping[str, Any]) -> tuple[RewardPolicyVersion, RewardCalculation]:
    require(actor, "reviewer")
    _check_case(case)
    row = _active_policy(session, policy_row_id)
    policy = parsed(row)
    calc = calculate_or_refuse(policy, inputs_from_form(session, case, policy, form))
    audit.append(session, "reward.preview", actor=actor, target=case.id,
                 details={"policy": row.policy_id, "version": row.version,
                          "amount_fen": calc.amount_fen})
    return row, calc


def propose(session: Session, case: Case, actor: User, policy_row_id: Any,
            form: Mapping[str, Any], now: dt.datetime | None = None) -> RewardRecord:
    """Store the calculation as a proposed record (the views check the case is visible)."""
    require(actor, "reviewer")
    _check_case(case)
    now = now or utcnow()
    row = _active_policy(session, policy_row_id)
    policy = parsed(row)
    calc = calculate_or_refuse(policy, inputs_from_form(session, case, policy, form, now))
    _lock_case(session, case)
    if active_record(session, case) is not None:
        raise NotAllowedNow(N_("This case has a reward record already. Reject it before "
                               "proposing another."), code="reward_exists")
    record = RewardRecord(
        id=crypto.new_id().hex(), case_id=case.id, channel_id=case.channel_id,
        policy_row_id=row.id, policy_id=calc.policy_id, policy_version=calc.policy_version,
        policy_digest=calc.policy_digest, amount_fen=calc.amount_fen,
        calculation=calc.to_json(), status="proposed", version=1, proposed_by=actor.id,
        proposed_at=now)
    session.add(record)
    session.add(CaseEvent(case_id=case.id, kind="reward_proposed", user_id=actor.id,
                          visible_to_reporter=False, created_at=now,
                          data={"reward_id": record.id, "amount_fen": calc.amount_fen}))
    session.flush()
    notify.enqueue(session, "reward_approval", approvers_of(session, case, actor),
                   not_before=now)
    audit.append(session, "reward.propose", actor=actor, target=record.id, now=now,
                 details={"case": case.id, "amount_fen": calc.amount_fen,
                          "policy": calc.policy_id, "version": calc.policy_version,
                          "digest": calc.policy_digest})
    return record


def approvers_of(session: Session, case: Case, proposer: User) -> list[int]:
    """Active approvers who see the case (their channels or scope), not its proposer, who
    may not approve their own proposal."""
    people = session.scalars(select(User).where(User.active.is_(True), User.id != proposer.id))
    return [user.id for user in people if user.has_role("approver") and session.scalar(
        select(Case.id).where(Case.id == case.id, cases.visible_clause(session, user)))]


def calculation_of(record: RewardRecord) -> RewardCalculation:
    return RewardCalculation.from_json(record.calculation)


# ---------------------------------------------------------------------------- decisions


def period_cap_excess(session: Session, record: RewardRecord,
                      now: dt.datetime | None = None) -> list[PeriodCapExcess]:
    """Per-period caps a proposed record would leave exceeded if approved now.

    The approver sees it before deciding: approvals already above the cap when the record was
    calculated (recorded in its inputs), or approved since then in the period.
    """
    if record.status != "proposed":
        return []
    row = session.get(RewardPolicyVersion, record.policy_row_id)
    case = session.get(Case, record.case_id)
    if row is None or case is None:
        return []
    calc = calculation_of(record)
    policy = parsed(row)
    inputs = calc.inputs
    now_counted = approved_in_period(session, case, policy, inputs.case_type, inputs.grade,
                                     now or utcnow()) or 0
    return excess_of(calc, policy, now_counted)


def _calculated_as_now(record: RewardRecord, case: Case) -> bool:
    # The calculation took the case as first valid (or not); is it still?
    return calculation_of(record).inputs.first_valid == bool(case.first_valid)


def title_moved(session: Session, record: RewardRecord) -> bool:
    """An approved, claimed or paid reward whose case is no longer the first valid report it
    was calculated as (an earlier report verified true later, a decision reopened): the money
    may not be due. Shown on the reward page; the move itself is in the audit trail."""
    if record.status not in DECIDED:
        return False
    case = session.get(Case, record.case_id)
    if case is None:
        return False
    return bool(case.first_valid_open) or not _calculated_as_now(record, case)


def approve(session: Session, record: RewardRecord, actor: User, version: Any,
            now: dt.datetime | None = None) -> None:
    require(actor, "approver")
    expected = check(record, "approve", actor, version)
    if record.proposed_by == actor.id:
        raise OwnApproval()
    now = now or utcnow()
    row = session.get(RewardPolicyVersion, record.policy_row_id)
    window = row.claim_window_days if row is not None else None
    due = now + dt.timedelta(days=window) if window else None
    case = session.get(Case, record.case_id)
    assert case is not None
    require_first_valid_settled(case)
    # Proposed before a duplicate was linked or a report re-verified: the title may have moved.
    if not _calculated_as_now(record, case):
        raise FirstValidChanged()
    advance(session, record, expected, status="approved", decided_by=actor.id,
            decided_at=now, claim_due_at=due)
    _lock_case(session, case)
    others = session.scalar(select(func.count()).select_from(RewardRecord).where(
        RewardRecord.case_id == case.id, RewardRecord.id != record.id,
        RewardRecord.status.in_(DECIDED)))
    if others:
        raise NotAllowedNow(N_("Another reward of this case was approved already."),
                            code="reward_exists")
    session.add(CaseEvent(case_id=case.id, kind="reward_offered", user_id=actor.id,
                          visible_to_reporter=True, created_at=now,
                          data={"amount": format_yuan(record.amount_fen),
                                "amount_fen": record.amount_fen, "reward_id": record.id}))
    audit.append(session, "reward.approve", actor=actor, target=record.id, now=now,
                 details={"case": case.id, "amount_fen": record.amount_fen,
                          "claim_due_at": due.isoformat() if due else None})
    session.flush()


def reject(session: Session, record: RewardRecord, actor: User, version: Any, reason: Any,
           now: dt.datetime | None = None) -> None:
    require(actor, "approver")
    expected = check(record, "reject", actor, version)
    text = " ".join(str(reason or "").split())
    if not text:
        raise InvalidInput(N_("Give a reason."), code="reason_required")
    if len(text) > 500:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=500)
    now = now or utcnow()
    advance(session, record, expected, status="rejected", decided_by=actor.id,
            decided_at=now, rejection_reason=text)
    session.add(CaseEvent(case_id=record.case_id, kind="reward_rejected", user_id=actor.id,
                          visible_to_reporter=False, created_at=now,
                          data={"reward_id": record.id}))
    audit.append(session, "reward.reject", actor=actor, target=record.id, now=now,
                 details={"case": record.case_id, "reason": text})
    session.flush()


