"""Reward policies in the database, and the calculator's inputs read from a reviewer's form.

The calculator (service/domain/rewards) is pure; this module stores the policy files it reads
(the shipped ones copied in on first use, administrators' uploads stored inactive until
activated) and turns the form a reviewer fills in, plus what the case knows, into its inputs.
Per-person caps per period are counted here, over calendar periods in the installation's time
zone.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.domain import audit
from service.domain.models import Case, User, utcnow
from service.domain.models.rewards import RewardPolicyVersion, RewardRecord
from service.domain.reward_states import DECIDED, require
from service.domain.rewards import (
    Policy,
    PolicyError,
    RewardCalculation,
    RewardInputError,
    RewardInputs,
    calculate,
    parse_policy,
    parse_yuan,
    shipped_policies,
)
from service.domain.rewards.calc import APPROVED_IN_PERIOD, BAND_AMOUNT, FINE
from service.domain.rewards.policy import PersonCapRule
from service.platform import localtime
from service.platform.errors import ChuishaoError, InvalidInput, NotFound
from service.platform.i18n import N_, Message

CASE_TYPES = {
    "hazard": N_("Accident hazard"),
    "violation": N_("Illegal production or violation"),
    "concealed_accident": N_("Concealed accident"),
    "falsely_reported_accident": N_("Falsely reported accident"),
}
MAX_POLICY_BYTES = 64 * 1024
# The whole-number fields of the form, and what a reviewer reads when one is not.
WHOLE_NUMBERS = {
    "deaths": N_("The calculation was refused: the number of concealed deaths must be a "
                 "whole number."),
    "level": N_("The calculation was refused: the tier level must be a whole number."),
    "joint_reporters": N_("The calculation was refused: the number of joint reporters must "
                          "be a whole number."),
}


class CalculationRefused(InvalidInput):
    code = "calculation_refused"
    # {reason} is the calculator's message (RewardInputError), translated with this one.
    message = N_("The calculation was refused: {reason}")


class PolicyRefused(InvalidInput):
    code = "policy_refused"
    message = N_("The policy file was refused: {reason}")


class FirstValidOpen(ChuishaoError):
    status = 409
    code = "first_valid_open"
    message = N_("This case belongs to a group of duplicate reports whose first valid report "
                 "is not decided yet (several verified reports of the same time bucket, or a "
                 "group carried over from an earlier version). A reviewer decides it on the "
                 "case page first; until then no reward is calculated or approved.")


class FirstValidChanged(ChuishaoError):
    status = 409
    code = "first_valid_changed"
    message = N_("The first valid report of this case's duplicate group changed after this "
                 "reward was proposed, so its calculation no longer holds. Reject it and "
                 "propose the reward again.")


def require_first_valid_settled(case: Case) -> None:
    if case.first_valid_open:
        raise FirstValidOpen()


def _refused(exc: RewardInputError) -> CalculationRefused:
    return CalculationRefused(reason=exc.reason)


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
    require(actor, "admin")
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise PolicyRefused(N_("The policy file was refused: the file is larger than 64 KiB."))
    text = text.replace("\r\n", "\n")
    try:
        policy = parse_policy(text, "upload")
    except PolicyError as exc:
        reason = (Message(N_("line {line}: {reason}"), {"line": exc.line, "reason": exc.reason})
                  if exc.line else exc.reason)
        raise PolicyRefused(reason=reason) from None
    ensure_shipped(session)
    exists = session.scalar(select(RewardPolicyVersion.id).where(
        RewardPolicyVersion.policy_id == policy.id, RewardPolicyVersion.version == policy.version))
    if exists is not None:
        raise PolicyRefused(N_("The policy file was refused: {policy} version {version} "
                               "exists already; raise the version."),
                            policy=policy.id, version=policy.version)
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
    require(actor, "admin")
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


def _whole(form: Mapping[str, Any], name: str) -> int | None:
    raw = _field(form, name)
    if not raw:
        return None
    value = _int(raw)
    if value is None:
        raise CalculationRefused(WHOLE_NUMBERS[name])
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


def approved_in_period(session: Session, case: Case, policy: Policy, case_type: str,
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
        RewardRecord.case_id == case.id, RewardRecord.status.in_(DECIDED),
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
    require_first_valid_settled(case)
    case_type = _field(form, "case_type") or default_case_type(case)
    grade = _field(form, "grade") or case.grade or None
    try:
        fine = _field(form, "fine")
        band = _field(form, "band_amount")
        fine_fen = parse_yuan(fine, FINE) if fine else None
        band_fen = parse_yuan(band, BAND_AMOUNT) if band else None
    except RewardInputError as exc:
        raise _refused(exc) from None
    joint = _whole(form, "joint_reporters")
    return RewardInputs(
        case_type=case_type, grade=grade, fine_fen=fine_fen,
        deaths=_whole(form, "deaths"),
        level=_whole(form, "level"), band_amount_fen=band_fen,
        insider=_field(form, "insider") in _TICKED, flags=_flags(form),
        first_valid=bool(case.first_valid), joint_reporters=joint if joint is not None else 1,
        approved_in_period_fen=approved_in_period(session, case, policy, case_type, grade,
                                                   now or utcnow()))


def calculate_or_refuse(policy: Policy, inputs: RewardInputs) -> RewardCalculation:
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
            fine_fen=parse_yuan(fine, FINE) if fine else None,
            deaths=_whole(form, "deaths"),
            level=_whole(form, "level"),
            band_amount_fen=parse_yuan(band, BAND_AMOUNT) if band else None,
            insider=_field(form, "insider") in ("1", "on"), flags=_flags(form),
            first_valid=_field(form, "not_first") not in ("1", "on"),
            joint_reporters=_whole(form, "joint_reporters") or 1,
            # The field is labelled in yuan: read it as yuan, like every other amount.
            approved_in_period_fen=parse_yuan(approved, APPROVED_IN_PERIOD) if approved else None)
    except RewardInputError as exc:
        raise _refused(exc) from None
    return calculate_or_refuse(policy, inputs)

