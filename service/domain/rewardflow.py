"""Reward records: policies in the database, proposal, approval, claims and payments.

The calculator (reviewer/rewards) is pure; this module stores what it computes and moves a
record through its life:

    proposed ─approve (another approver)→ approved ─claim (reporter)→ claimed ─pay (finance)→ paid
        └─reject (with a reason)→ rejected         └─ past claim_due_at: lapsed (shown, not stored)

Every change is a compare-and-set on ``version`` (and the status it starts from), so two
approvers racing for one record cannot both win, and a claim or payment happens once. Changes
that must not happen twice per case (a second active record, a second approval) also take the
case row first: on PostgreSQL the second writer waits and then sees the first one's record.
Every action appends to the audit trail; refusals are recorded by the views.

Roles: a reviewer of the case's channel proposes; an approver who is not the proposer decides;
the reporter claims through the follow-up page; a finance officer opens the sealed claim,
checks the claim code and records the payment; auditors read everything; admins add policies.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, true, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, cases, followup, intake, notify
from service.domain.installation import get_installation
from service.domain.models import Case, CaseEvent, Channel, User, utcnow
from service.domain.models.rewards import RewardClaimSlot, RewardPolicyVersion, RewardRecord
from service.domain.rewards import (
    Policy,
    PolicyError,
    RewardCalculation,
    RewardInputError,
    RewardInputs,
    calculate,
    format_yuan,
    parse_policy,
    parse_yuan,
    shipped_policies,
)
from service.domain.rewards.policy import PersonCapRule
from service.platform import localtime, offload
from service.platform.errors import (
    ChuishaoError,
    Conflict,
    Forbidden,
    InvalidInput,
    Malformed,
    NotFound,
    NotSetUp,
)
from service.platform.i18n import N_
from service.platform.settings import Settings

STATUSES = ("proposed", "approved", "rejected", "claimed", "paid", "lapsed")
STATUS_LABELS = {
    "proposed": N_("Proposed, waiting for approval"),
    "approved": N_("Approved, waiting for the claim"),
    "rejected": N_("Rejected"),
    "claimed": N_("Claimed, waiting for payment"),
    "paid": N_("Paid"),
    "lapsed": N_("Lapsed (not claimed in time)"),
}
# A case has at most one record in these states: one reward per case.
ACTIVE = ("proposed", "approved", "claimed", "paid")
CLAIMABLE_RESULTS = ("true", "partly")
METHODS = {
    "bank": N_("Bank transfer"),
    "alipay": N_("Alipay"),
    "wechat": N_("WeChat Pay"),
    "cash": N_("Cash at the finance office"),
}
CASE_TYPES = {
    "hazard": N_("Accident hazard"),
    "violation": N_("Illegal production or violation"),
    "concealed_accident": N_("Concealed accident"),
    "falsely_reported_accident": N_("Falsely reported accident"),
}
CLAIM_FIELDS = {"account": 100, "name": 100, "contact": 100, "note": 500}
# Periods of per-person caps are calendar periods in the installation's time zone.
PAGE_SIZE = 100
MAX_POLICY_BYTES = 64 * 1024


# ---------------------------------------------------------------------------- errors


class CalculationRefused(InvalidInput):
    code = "calculation_refused"
    # {reason} is English; views show reason_zh instead on Chinese pages (rewards views).
    message = N_("The calculation was refused: {reason}")


class PolicyRefused(InvalidInput):
    code = "policy_refused"
    message = N_("The policy file was refused: {reason}")


class NotAllowedNow(ChuishaoError):
    status = 409
    code = "reward_not_allowed_now"
    message = N_("This step is not possible in the reward's current state.")


class FirstValidOpen(ChuishaoError):
    status = 409
    code = "first_valid_open"
    message = N_("This case belongs to a group of duplicate reports whose first valid report "
                 "is not decided yet (several verified reports of the same time bucket, or a "
                 "group carried over from an earlier version). A reviewer decides it on the "
                 "case page first; until then no reward is calculated or approved.")


def _require_first_valid_settled(case: Case) -> None:
    if case.first_valid_open:
        raise FirstValidOpen()


class OwnApproval(ChuishaoError):
    status = 403
    code = "own_approval"
    message = N_("A reward must be approved by someone other than the person who proposed it.")


class OwnPayment(ChuishaoError):
    status = 403
    code = "own_payment"
    message = N_("The person who proposed or approved a reward cannot also pay it.")


class AlreadyClaimed(ChuishaoError):
    status = 409
    code = "already_claimed"
    message = N_("This reward was claimed already.")


class ClaimWindowClosed(ChuishaoError):
    status = 410
    code = "claim_window_closed"
    message = N_("The time to claim this reward ended on {date}. It can no longer be claimed.")


class CodeMismatch(ChuishaoError):
    status = 403
    code = "claim_code_mismatch"
    message = N_("This claim code does not belong to this reward. Nothing was paid.")


class CodeUsed(ChuishaoError):
    status = 409
    code = "claim_code_used"
    message = N_("This claim code was used already: the reward was paid on {date} "
                 "(reference {reference}). It cannot be used again.")


class ClaimRecipientsChanged(Conflict):
    code = "claim_keys_changed"
    message = N_("The finance officers changed in the meantime. Reload the page and claim again.")


def _refused(exc: RewardInputError) -> CalculationRefused:
    return CalculationRefused(reason=exc.en, reason_zh=exc.zh)


# ---------------------------------------------------------------------------- policies


@functools.lru_cache(maxsize=64)
def _parse(text: str, source: str) -> Policy:
    return parse_policy(text, source)


def parsed(row: RewardPolicyVersion) -> Policy:
    """The row's policy, parsed from its stored text (the digest proves it is that text)."""
    policy = _parse(row.text, f"{row.policy_id} v{row.version}")
    if policy.digest != row.digest:
        raise ChuishaoError(N_("A stored policy does not match its digest."), status=500)
    return policy


def ensure_shipped(session: Session, now: dt.datetime | None = None) -> None:
    """Copy the shipped policy files in (active) the first time they are needed."""
    known = {(p, v) for p, v in session.execute(
        select(RewardPolicyVersion.policy_id, RewardPolicyVersion.version))}
    for policy in shipped_policies():
        if (policy.id, policy.version) in known:
            continue
        text = open(policy.path, encoding="utf-8").read()  # noqa: SIM115 - short read
        try:
            with session.begin_nested():
                session.add(RewardPolicyVersion(
                    policy_id=policy.id, version=policy.version, title_zh=policy.title_zh,
                    title_en=policy.title_en, text=text, digest=policy.digest,
                    claim_window_days=policy.claim_window_days, identity_required=False,
                    shipped=True, active=True, created_at=now or utcnow()))
                session.flush()
        except IntegrityError:
            continue  # another request copied it first


def policy_rows(session: Session, *, active_only: bool = False) -> list[RewardPolicyVersion]:
    ensure_shipped(session)
    query = select(RewardPolicyVersion).order_by(RewardPolicyVersion.policy_id,
                                                 RewardPolicyVersion.version.desc())
    if active_only:
        query = query.where(RewardPolicyVersion.active.is_(True))
    return list(session.scalars(query))


def get_policy_row(session: Session, row_id: Any) -> RewardPolicyVersion:
    row = session.get(RewardPolicyVersion, _int(row_id)) if _int(row_id) is not None else None
    if row is None:
        raise NotFound()
    return row


def upload_policy(session: Session, actor: User, text: str, *, identity_required: bool = False,
                  now: dt.datetime | None = None) -> RewardPolicyVersion:
    """Validate a TOML policy with the calculator's own parser; store it inactive."""
    _require(actor, "admin")
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise PolicyRefused(reason="the file is larger than 64 KiB",
                            reason_zh="文件超过 64 KiB")
    text = text.replace("\r\n", "\n")
    try:
        policy = parse_policy(text, "upload")
    except PolicyError as exc:
        where_en = f"line {exc.line}: " if exc.line else ""
        where_zh = f"第 {exc.line} 行：" if exc.line else ""
        raise PolicyRefused(reason=where_en + exc.en, reason_zh=where_zh + exc.zh) from None
    ensure_shipped(session)
    exists = session.scalar(select(RewardPolicyVersion.id).where(
        RewardPolicyVersion.policy_id == policy.id, RewardPolicyVersion.version == policy.version))
    if exists is not None:
        raise PolicyRefused(
            reason=f"{policy.id} version {policy.version} exists already; raise the version",
            reason_zh=f"{policy.id} 第 {policy.version} 版已存在；请提高版本号")
    row = RewardPolicyVersion(
        policy_id=policy.id, version=policy.version, title_zh=policy.title_zh,
        title_en=policy.title_en, text=text, digest=policy.digest,
        claim_window_days=policy.claim_window_days, identity_required=identity_required,
        shipped=False, active=False, created_by=actor.id, created_at=now or utcnow())
    session.add(row)
    session.flush()
    audit.append(session, "reward.policy_upload", actor=actor,
                 target=f"policy:{policy.id}:{policy.version}",
                 details={"digest": policy.digest, "identity_required": identity_required})
    return row


def set_policy_active(session: Session, actor: User, row: RewardPolicyVersion,
                      active: bool) -> None:
    _require(actor, "admin")
    if row.active == active:
        return
    row.active = active
    audit.append(session, "reward.policy_activate" if active else "reward.policy_deactivate",
                 actor=actor, target=f"policy:{row.policy_id}:{row.version}",
                 details={"digest": row.digest})


# ---------------------------------------------------------------------------- inputs


def _int(value: Any) -> int | None:
    try:
        text = str(value).strip()
        return int(text) if text and len(text) < 12 else None
    except (TypeError, ValueError):
        return None


def _field(form: Mapping[str, Any], name: str) -> str:
    return str(form.get(name) or "").strip()[:100]


def _whole(form: Mapping[str, Any], name: str, en: str, zh: str) -> int | None:
    raw = _field(form, name)
    if not raw:
        return None
    value = _int(raw)
    if value is None:
        raise CalculationRefused(reason=f"{en} must be a whole number",
                                 reason_zh=f"{zh}应为整数")
    return value


_TICKED = ("1", "on", "true", "yes")


def _flags(form: Mapping[str, Any]) -> tuple[str, ...]:
    """The ticked `flag_NAME` boxes. Every ticked name is passed on, declared or not: the
    calculator refuses a flag the chosen policy does not declare rather than ignore it."""
    return tuple(sorted(str(key)[5:][:32] for key in form
                        if str(key).startswith("flag_") and _field(form, key) in _TICKED))


@dataclass(frozen=True)
class DeclaredFlag:
    name: str
    title_zh: str
    title_en: str
    policies: tuple[str, ...]  # "id vN" of the active versions declaring it


def declared_flags(rows: list[RewardPolicyVersion]) -> list[DeclaredFlag]:
    """The yes/no inputs the given policy versions declare: one checkbox each on the form."""
    found: dict[str, DeclaredFlag] = {}
    for row in rows:
        for flag in parsed(row).flags.values():
            label = f"{row.policy_id} v{row.version}"
            known = found.get(flag.name)
            found[flag.name] = DeclaredFlag(
                flag.name, known.title_zh if known else flag.title_zh,
                known.title_en if known else flag.title_en,
                (known.policies if known else ()) + (label,))
    return list(found.values())


@dataclass(frozen=True)
class PeriodCapExcess:
    period: str
    cap_fen: int
    approved_fen: int  # already approved in the period, as recorded or as counted now
    amount_fen: int  # this record
    over_fen: int  # approved + amount - cap


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
    now_counted = _approved_in_period(session, case, policy, inputs.case_type, inputs.grade,
                                      now or utcnow()) or 0
    return excess_of(calc, policy, now_counted)


def excess_of(calc: RewardCalculation, policy: Policy,
              approved_now_fen: int) -> list[PeriodCapExcess]:
    inputs = calc.inputs
    approved = max(inputs.approved_in_period_fen or 0, approved_now_fen)
    out = []
    for rule in policy.rules_of("person_cap"):
        if not isinstance(rule, PersonCapRule) or rule.per_period_fen is None \
                or rule.period is None or not rule.matches(inputs.case_type, inputs.grade):
            continue
        total = approved + calc.amount_fen
        if total > rule.per_period_fen:
            out.append(PeriodCapExcess(rule.period, rule.per_period_fen, approved,
                                       calc.amount_fen, total - rule.per_period_fen))
    return out


def _period_start(period: str, now: dt.datetime) -> dt.datetime:
    local = localtime.local(now)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def _approved_in_period(session: Session, case: Case, policy: Policy, case_type: str,
                        grade: str | None, now: dt.datetime) -> int | None:
    """What was already approved to this reporter in the cap's period, if a cap needs it.

    Reporters are anonymous: the only reporter we can recognise is this case's receipt
    holder, so the sum is over this case's own approved rewards. Longest period wins (it
    counts the most, so it can only lower the amount).
    """
    caps = [rule for rule in policy.rules_of("person_cap")
            if isinstance(rule, PersonCapRule) and rule.per_period_fen is not None
            and rule.matches(case_type, grade)]
    if not caps:
        return None
    order = ("day", "week", "month", "quarter", "year")
    period = max((rule.period or "year" for rule in caps), key=order.index)
    since = _period_start(period, now)
    total = session.scalar(select(func.coalesce(func.sum(RewardRecord.amount_fen), 0)).where(
        RewardRecord.case_id == case.id, RewardRecord.status.in_(("approved", "claimed", "paid")),
        RewardRecord.decided_at >= since))
    return int(total or 0)


def default_case_type(case: Case) -> str:
    return case.category if case.category in CASE_TYPES else "hazard"


def inputs_from_form(session: Session, case: Case, policy: Policy, form: Mapping[str, Any],
                     now: dt.datetime | None = None) -> RewardInputs:
    """The calculator's inputs: the reviewer's entries plus the facts the case holds.

    ``first_valid`` comes from the case (duplicates are linked there), never from the form;
    ``insider`` is ticked by the reviewer, who read it in the sealed report in the browser.
    """
    _require_first_valid_settled(case)
    case_type = _field(form, "case_type") or default_case_type(case)
    grade = _field(form, "grade") or case.grade or None
    try:
        fine = _field(form, "fine")
        band = _field(form, "band_amount")
        fine_fen = parse_yuan(fine, "the fine", "罚款金额") if fine else None
        band_fen = parse_yuan(band, "the amount within the band", "区间内核定金额") \
            if band else None
    except RewardInputError as exc:
        raise _refused(exc) from None
    joint = _whole(form, "joint_reporters", "the number of joint reporters", "联名举报人数")
    return RewardInputs(
        case_type=case_type, grade=grade, fine_fen=fine_fen,
        deaths=_whole(form, "deaths", "the number of concealed deaths", "瞒报死亡人数"),
        level=_whole(form, "level", "the tier level", "档次"), band_amount_fen=band_fen,
        insider=_field(form, "insider") in _TICKED, flags=_flags(form),
        first_valid=bool(case.first_valid), joint_reporters=joint if joint is not None else 1,
        approved_in_period_fen=_approved_in_period(session, case, policy, case_type, grade,
                                                   now or utcnow()))


def _calculate(policy: Policy, inputs: RewardInputs) -> RewardCalculation:
    try:
        return calculate(policy, inputs)
    except RewardInputError as exc:
        raise _refused(exc) from None


def preview_policy(row: RewardPolicyVersion, form: Mapping[str, Any]) -> RewardCalculation:
    """An admin's trial calculation before activating a version (no case, nothing stored)."""
    policy = parsed(row)
    try:
        fine = _field(form, "fine")
        band = _field(form, "band_amount")
        approved = _field(form, "approved_in_period")
        inputs = RewardInputs(
            case_type=_field(form, "case_type") or "hazard", grade=_field(form, "grade") or None,
            fine_fen=parse_yuan(fine, "the fine", "罚款金额") if fine else None,
            deaths=_whole(form, "deaths", "the number of concealed deaths", "瞒报死亡人数"),
            level=_whole(form, "level", "the tier level", "档次"),
            band_amount_fen=parse_yuan(band, "the amount within the band", "区间内核定金额")
            if band else None,
            insider=_field(form, "insider") in ("1", "on"), flags=_flags(form),
            first_valid=_field(form, "not_first") not in ("1", "on"),
            joint_reporters=_whole(form, "joint_reporters", "the number of joint reporters",
                                   "联名举报人数") or 1,
            # The field is labelled in yuan: read it as yuan, like every other amount.
            approved_in_period_fen=parse_yuan(approved, "the amount already approved in the "
                                              "period", "本期已批准金额") if approved else None)
    except RewardInputError as exc:
        raise _refused(exc) from None
    return _calculate(policy, inputs)


# ---------------------------------------------------------------------------- proposals


def _require(actor: User, *roles: str) -> None:
    if not actor.active or not actor.has_role(*roles):
        raise Forbidden()


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
    _require(actor, "reviewer")
    _check_case(case)
    row = _active_policy(session, policy_row_id)
    policy = parsed(row)
    calc = _calculate(policy, inputs_from_form(session, case, policy, form))
    audit.append(session, "reward.preview", actor=actor, target=case.id,
                 details={"policy": row.policy_id, "version": row.version,
                          "amount_fen": calc.amount_fen})
    return row, calc


def propose(session: Session, case: Case, actor: User, policy_row_id: Any,
            form: Mapping[str, Any], now: dt.datetime | None = None) -> RewardRecord:
    """Store the calculation as a proposed record (the views check the case is visible)."""
    _require(actor, "reviewer")
    _check_case(case)
    now = now or utcnow()
    row = _active_policy(session, policy_row_id)
    policy = parsed(row)
    calc = _calculate(policy, inputs_from_form(session, case, policy, form, now))
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


def _compare_and_set(session: Session, record: RewardRecord, expected: int, status: str,
                     values: dict[str, Any], conflict: ChuishaoError | None = None) -> None:
    """Change the record only if nobody else changed it since ``expected`` was read."""
    result = session.execute(
        update(RewardRecord)
        .where(RewardRecord.id == record.id, RewardRecord.version == expected,
               RewardRecord.status == status)
        .values(version=expected + 1, **values)
        .execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) != 1:
        session.expire(record)
        raise conflict or Conflict()
    session.expire(record)


def _expected(record: RewardRecord, version: Any) -> int:
    expected = _int(version)
    if expected is None or expected != record.version:
        raise Conflict()
    return expected


def approve(session: Session, record: RewardRecord, actor: User, version: Any,
            now: dt.datetime | None = None) -> None:
    _require(actor, "approver")
    expected = _expected(record, version)
    if record.proposed_by == actor.id:
        raise OwnApproval()
    if record.status != "proposed":
        raise NotAllowedNow(N_("Only a proposed reward can be approved or rejected."))
    now = now or utcnow()
    row = session.get(RewardPolicyVersion, record.policy_row_id)
    window = row.claim_window_days if row is not None else None
    due = now + dt.timedelta(days=window) if window else None
    case = session.get(Case, record.case_id)
    assert case is not None
    _require_first_valid_settled(case)
    _compare_and_set(session, record, expected, "proposed",
                     {"status": "approved", "decided_by": actor.id, "decided_at": now,
                      "claim_due_at": due})
    _lock_case(session, case)
    others = session.scalar(select(func.count()).select_from(RewardRecord).where(
        RewardRecord.case_id == case.id, RewardRecord.id != record.id,
        RewardRecord.status.in_(("approved", "claimed", "paid"))))
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
    _require(actor, "approver")
    expected = _expected(record, version)
    text = " ".join(str(reason or "").split())
    if not text:
        raise InvalidInput(N_("Give a reason."), code="reason_required")
    if len(text) > 500:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=500)
    if record.status != "proposed":
        raise NotAllowedNow(N_("Only a proposed reward can be approved or rejected."))
    now = now or utcnow()
    _compare_and_set(session, record, expected, "proposed",
                     {"status": "rejected", "decided_by": actor.id, "decided_at": now,
                      "rejection_reason": text})
    session.add(CaseEvent(case_id=record.case_id, kind="reward_rejected", user_id=actor.id,
                          visible_to_reporter=False, created_at=now,
                          data={"reward_id": record.id}))
    audit.append(session, "reward.reject", actor=actor, target=record.id, now=now,
                 details={"case": record.case_id, "reason": text})
    session.flush()


# ---------------------------------------------------------------------------- claims


def display_status(record: RewardRecord, now: dt.datetime | None = None) -> str:
    if record.status == "approved" and record.claim_due_at is not None \
            and record.claim_due_at < (now or utcnow()):
        return "lapsed"
    return record.status


@dataclass(frozen=True)
class FinanceRecipient:
    key_id: str
    public_key: bytes
    user_id: int | None  # None: the recovery key


def finance_recipients(session: Session) -> list[FinanceRecipient]:
    """Who the claim key is sealed to: every active finance officer, and the recovery key."""
    installation = get_installation(session)
    if installation is None:
        raise NotSetUp()
    users = session.scalars(select(User).where(User.active.is_(True)).order_by(User.id))
    found = [FinanceRecipient(u.key_id, u.public_key, u.id) for u in users
             if u.has_role("finance")]
    found.append(FinanceRecipient(installation.recovery_key_id,
                                  installation.recovery_public_key, None))
    return found


def reporter_rewards(session: Session, case: Case, now: dt.datetime | None = None,
                     ) -> list[dict[str, Any]]:
    """What the reporter's page shows and needs to claim: amounts, deadlines, the keys."""
    now = now or utcnow()
    records = list(session.scalars(select(RewardRecord).where(
        RewardRecord.case_id == case.id,
        RewardRecord.status.in_(("approved", "claimed", "paid")))
        .order_by(RewardRecord.decided_at, RewardRecord.id)))
    if not records:
        return []
    keys = [{"key_id": r.key_id, "public_key": crypto.b64u_encode(r.public_key)}
            for r in finance_recipients(session)]
    out = []
    for record in records:
        row = session.get(RewardPolicyVersion, record.policy_row_id)
        status = display_status(record, now)
        out.append({
            "id": record.id, "amount_fen": record.amount_fen,
            "amount": format_yuan(record.amount_fen), "status": status,
            "claim_due": localtime.local(record.claim_due_at).date().isoformat()
            if record.claim_due_at else None,
            "identity_required": bool(row.identity_required) if row else False,
            "claimable": status == "approved",
            "recipients": keys if status == "approved" else [],
        })
    return out


def _reporter_record(session: Session, case: Case, reward_id: Any) -> RewardRecord:
    record = session.get(RewardRecord, reward_id) if isinstance(reward_id, str) \
        and intake.ID.match(reward_id) else None
    if record is None or record.case_id != case.id or record.status not in (
            "approved", "claimed", "paid"):
        raise NotFound()
    return record


def _check_claimable(record: RewardRecord, now: dt.datetime) -> None:
    if record.status != "approved":
        raise AlreadyClaimed()
    if record.claim_due_at is not None and record.claim_due_at < now:
        raise ClaimWindowClosed(date=localtime.local(record.claim_due_at).date().isoformat())


def _parse_claim_slots(raw: Any, wanted: list[FinanceRecipient]) -> list[tuple[str, bytes]]:
    if not isinstance(raw, list) or not 0 < len(raw) <= 200:
        raise Malformed("slots")
    parsed_slots = []
    for entry in raw:
        if not isinstance(entry, dict) or entry.get("suite", crypto.SUITE) != crypto.SUITE:
            raise Malformed("slot")
        slot = intake.parse_b64(entry.get("slot"), "slot")
        if len(slot) != intake.SLOT_BYTES:
            raise Malformed("slot")
        parsed_slots.append((intake.parse_id(entry.get("key_id"), "key_id"), slot))
    given = [key_id for key_id, _ in parsed_slots]
    if len(set(given)) != len(given):
        raise Malformed("slots")
    if set(given) != {r.key_id for r in wanted}:
        # Sealed to someone who is not (or no longer) a finance officer, or missing one.
        raise ClaimRecipientsChanged()
    return parsed_slots


def register_claim(session: Session, settings: Settings, case: Case, reward_id: Any,
                   data: Any, *, sealed_on_server: bool = False,
                   now: dt.datetime | None = None) -> RewardRecord:
    """The reporter's claim: the code's hash, the sealed claim and its key slots."""
    record = _reporter_record(session, case, reward_id)
    now = now or utcnow()
    _check_claimable(record, now)
    if not isinstance(data, dict) or not set(data) <= {"claim_hash", "item", "slots"}:
        raise Malformed("claim")
    claim_hash = data.get("claim_hash")
    if not isinstance(claim_hash, str) or not intake.HASH.match(claim_hash):
        raise Malformed("claim_hash")
    item = data.get("item")
    if not isinstance(item, dict) or set(item) - {"id", "blob", "kind"} \
            or item.get("kind", "claim") != "claim":
        raise Malformed("item")
    item_id = intake.parse_id(item.get("id"), "item id")
    blob = intake.parse_b64(item.get("blob"), "item")
    intake.check_item_blob(blob)
    recipients = finance_recipients(session)
    slots = _parse_claim_slots(data.get("slots"), recipients)
    # Reporter-caused times are coarsened, like replies: they must not date a visit.
    stamp = intake.coarse_time(settings, now)
    _compare_and_set(session, record, record.version, "approved", {
        "status": "claimed", "claim_hash": claim_hash, "claimed_at": stamp,
        "claim_item_id": item_id, "claim_blob": blob,
        "claim_sealed_on_server": sealed_on_server}, conflict=AlreadyClaimed())
    holders = {r.key_id: r for r in recipients}
    session.add_all([RewardClaimSlot(
        reward_id=record.id, holder="recovery" if holders[key_id].user_id is None else "finance",
        user_id=holders[key_id].user_id, suite=crypto.SUITE, key_id=key_id, slot=slot,
        created_at=stamp) for key_id, slot in slots])
    session.add(CaseEvent(case_id=case.id, kind="reward_claimed", visible_to_reporter=True,
                          created_at=stamp, data={"reward_id": record.id}))
    notify.enqueue(session, "claim_to_pay",
                   [r.user_id for r in recipients if r.user_id is not None],
                   not_before=stamp + dt.timedelta(seconds=settings.time_granularity_seconds),
                   created_at=stamp)
    # Its place in the chain would date the claim to the second: entered after its hour.
    audit.defer(session, "reward.claimed", target=record.id, bucket_start=stamp,
                granularity=settings.time_granularity_seconds,
                details={"case": case.id, "sealed_on_server": sealed_on_server,
                         "slots": len(slots)})
    session.flush()
    return record


def _claim_payload(record: RewardRecord, form: Mapping[str, Any]) -> dict[str, Any]:
    row_method = str(form.get("method") or "")
    if row_method not in METHODS:
        raise InvalidInput(N_("Choose how the reward should be paid."), code="claim_method")
    payload: dict[str, Any] = {"v": 1, "method": row_method}
    for name, limit in CLAIM_FIELDS.items():
        value = " ".join(str(form.get(name) or "").split())
        if len(value) > limit:
            raise InvalidInput(N_("A field is too long (at most {limit} characters)."),
                               limit=limit)
        payload[name] = value
    if row_method != "cash" and not payload["account"]:
        raise InvalidInput(N_("Give the account the reward should be paid to."),
                           code="claim_account")
    return payload


def claim_on_server(session: Session, settings: Settings, receipt_text: str, reward_id: Any,
                    form: Mapping[str, Any], now: dt.datetime | None = None,
                    ) -> tuple[RewardRecord, str]:
    """The no-JavaScript claim: the server derives the code from the receipt typed into the
    form, seals the claim to finance at once and forgets both. Returns (record, code).

    Asked again after claiming, it shows the same code (the reporter may have lost the page).
    """

    installation = get_installation(session)
    if installation is None:
        raise NotSetUp()
    try:
        receipt = crypto.normalize_receipt(receipt_text)
    except ValueError:
        raise InvalidInput(N_("A receipt has exactly 20 digits."), code="receipt_format") from None
    # Derived before the database gate, off the event loop (views.public.prepare_receipt).
    keys = offload.prepared(crypto.derive_receipt, receipt, installation.salt,
                            settings.receipt_iterations)
    case = followup.find_case_by_secret(session, keys.lookup_secret)
    record = _reporter_record(session, case, reward_id)
    code = crypto.derive_claim_code(keys.lookup_secret, bytes.fromhex(record.id))
    code_hash = crypto.claim_code_hash(code).hex()
    if record.claim_hash is not None:
        if hmac.compare_digest(record.claim_hash, code_hash):
            return record, code
        raise AlreadyClaimed()
    _check_claimable(record, now or utcnow())
    payload = _claim_payload(record, form)
    row = session.get(RewardPolicyVersion, record.policy_row_id)
    if row is not None and row.identity_required and not (payload["name"]
                                                          and payload["contact"]):
        raise InvalidInput(N_("This reward is paid to named reporters only: give your name "
                              "and a contact."), code="claim_identity")
    claim_key, item_id = crypto.new_key(), crypto.new_id()
    reward_bytes = bytes.fromhex(record.id)
    blob = crypto.seal_item(claim_key, reward_bytes, item_id, "claim", payload)
    slots = [{"key_id": r.key_id,
              "slot": crypto.b64u_encode(crypto.seal_claim_key(claim_key, r.public_key,
                                                               reward_bytes))}
             for r in finance_recipients(session)]
    register_claim(session, settings, case, record.id, {
        "claim_hash": code_hash, "item": {"id": item_id.hex(), "kind": "claim",
                                          "blob": crypto.b64u_encode(blob)},
        "slots": slots}, sealed_on_server=True, now=now)
    return record, code


# ---------------------------------------------------------------------------- finance


def claim_slot_for(session: Session, record: RewardRecord, user: User) -> RewardClaimSlot | None:
    return session.scalar(select(RewardClaimSlot).where(
        RewardClaimSlot.reward_id == record.id, RewardClaimSlot.user_id == user.id,
        RewardClaimSlot.key_id == user.key_id))


class ClaimNotSealedToYou(ChuishaoError):
    status = 403
    code = "no_claim_slot"
    message = N_("The claim was not sealed to your key (you became a finance officer after it "
                 "was made).")


def claim_for(session: Session, record: RewardRecord, actor: User) -> RewardClaimSlot:
    """The claim (payout details, maybe identity) is handed out only here, never on the
    reward page, so every look is on the record in the transaction that serves it. Only an
    officer whose key it was sealed to gets it."""
    _require(actor, "finance")
    if record.claim_blob is None or record.claim_item_id is None:
        raise NotFound()
    slot = claim_slot_for(session, record, actor)
    if slot is None:
        raise ClaimNotSealedToYou()
    audit.append(session, "reward.claim_viewed", actor=actor, target=record.id)
    return slot


def _code_hash(code: Any) -> str:
    try:
        return crypto.claim_code_hash(str(code or "")[:100]).hex()
    except ValueError:
        raise InvalidInput(N_("A claim code is 16 letters and digits, such as "
                              "ABCD-EFGH-JKLM-NP23."), code="claim_code_format") from None


def check_code(record: RewardRecord, code: Any) -> None:
    """Constant-time comparison of the presented code's hash with the registered one."""
    presented = _code_hash(code)
    if record.claim_hash is None:
        raise NotAllowedNow(N_("This reward has not been claimed."), code="not_claimed")
    if not hmac.compare_digest(presented.encode(), record.claim_hash.encode()):
        raise CodeMismatch()
    if record.status == "paid":
        raise CodeUsed(date=localtime.local(record.paid_at).date().isoformat()
                       if record.paid_at else "", reference=record.payment_reference)


def verify_code(session: Session, record: RewardRecord, actor: User, code: Any) -> None:
    _require(actor, "finance")
    check_code(record, code)
    audit.append(session, "reward.code_verified", actor=actor, target=record.id)


def record_payment(session: Session, record: RewardRecord, actor: User, code: Any,
                   reference: Any, version: Any, now: dt.datetime | None = None) -> None:
    _require(actor, "finance")
    expected = _expected(record, version)
    if actor.id in (record.proposed_by, record.decided_by):
        raise OwnPayment()
    check_code(record, code)
    text = " ".join(str(reference or "").split())
    if not text:
        raise InvalidInput(N_("Give the payment reference (voucher or transfer number)."),
                           code="reference_required")
    if len(text) > 100:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=100)
    now = now or utcnow()
    _compare_and_set(session, record, expected, "claimed",
                     {"status": "paid", "paid_by": actor.id, "paid_at": now,
                      "payment_reference": text})
    session.add(CaseEvent(case_id=record.case_id, kind="reward_paid", user_id=actor.id,
                          visible_to_reporter=True, created_at=now,
                          data={"reward_id": record.id}))
    audit.append(session, "reward.paid", actor=actor, target=record.id, now=now,
                 details={"case": record.case_id, "amount_fen": record.amount_fen,
                          "reference": text})
    session.flush()


# ---------------------------------------------------------------------------- the ledger

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

