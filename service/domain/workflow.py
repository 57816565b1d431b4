"""The case state machine: every allowed move of a case, in one table.

    new ─accept→ accepted ─start_verification→ verifying ─verify→ verified
     └─not_accept→ not_accepted                                    │
    verified (true/partly) ─open_rectification→ rectifying ─accept_rectification→ rectified
    rectified ─reopen_rectification→ rectifying (a further record for the same hazard)
    rectified | not_accepted | verified (false) ─close→ closed
    not_accepted ─reopen_refusal→ new (an approver, within settings.reopen_days)

The three rectification moves are ``by_record``: only the case's rectification records make
them (``sync_case`` in service/domain/rectification_cases.py; five guarantees, or a fix recorded
on the spot, and an acceptance check by a second person). Nobody reaches "rectification
accepted" by a button.

Rectification records (service/domain/rectification.py) drive the last moves: the first record opens
the rectification, the last accepted one accepts it, the last write-off closes the case. Guards
keep a case from running ahead of its records.

``extend`` (once, with a reason the reporter reads) stays in accepted/verifying; ``assign``,
``grade``, ``facts`` and ``link_duplicate`` change triage facts in any state but closed.

Each rule names the states it starts from, the state it leads to, the roles it needs, a guard
(checks the parameters, changes nothing) and an effect. ``perform`` is the only writer: it
checks the version first, then the state, role and guard, and only then changes anything, so a
refusal leaves the case exactly as it was. Every move bumps ``version``, records a CaseEvent
(reporter-visible kinds from service/domain/feed.py) and appends to the audit trail.

Longer than 500 lines because the table is the documentation: the rules, their guards
and ``perform`` are read together.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain import audit, statemachine
from service.domain.models import (
    Case,
    CaseEvent,
    ChannelRecipient,
    HazardCriterion,
    User,
    utcnow,
)
from service.domain.models.rectification import Rectification, RectificationCase
from service.domain.reportform import CATEGORIES
from service.domain.statemachine import NotAllowedNow
from service.platform.errors import Forbidden, InvalidInput
from service.platform.i18n import N_, Catalogs
from service.platform.settings import Settings

STATES = ("new", "accepted", "not_accepted", "verifying", "verified", "rectifying",
          "rectified", "closed")
OPEN_STATES = frozenset(STATES) - {"closed"}

# Labels reviewers read (the reporter's wording is in service/domain/feed.py).
STATUS_LABELS = {
    "new": N_("New (waiting for acceptance)"),
    "accepted": N_("Accepted"),
    "not_accepted": N_("Not accepted"),
    "verifying": N_("Being verified"),
    "verified": N_("Verified"),
    "rectifying": N_("Being rectified"),
    "rectified": N_("Rectification accepted"),
    "closed": N_("Closed"),
}
NOT_ACCEPTED_REASONS = {
    "duplicate": N_("Duplicate of an earlier report"),
    "out_of_scope": N_("Outside this line's remit"),
    "no_clear_target": N_("No clear unit or place named"),
}
# What the reporter reads in the feed ("Your report was not accepted. Reason: ...").
REASONS_FOR_REPORTER = {
    "duplicate": N_("the same hazard was reported earlier; your report was joined to that one"),
    "out_of_scope": N_("the matter is outside what this reporting line handles"),
    "no_clear_target": N_("the report does not name a unit or place that could be checked"),
}
RESULTS = {
    "true": N_("True"),
    "partly": N_("Partly true"),
    "false": N_("Not true"),
}
CONFIRMED = ("true", "partly")
RESULTS_FOR_REPORTER = {
    "true": N_("what you reported is true"),
    "partly": N_("what you reported is partly true"),
    "false": N_("what you reported was found not to be true"),
}
GRADES = {"general": N_("General (一般)"), "major": N_("Major (重大)")}
CATEGORY_KEYS = tuple(key for key, _ in CATEGORIES)
MAX_TEXT = {"enterprise": 200, "location": 300, "reason": 500}


@dataclass
class Move:
    """One requested move, as the guard and effect see it."""

    session: Session
    settings: Settings
    case: Case
    actor: User
    params: Mapping[str, Any]
    now: dt.datetime
    # Filled by the guard for the effect: parsed, checked values.
    values: dict[str, Any] = field(default_factory=dict)
    # Filled by the effect: what the CaseEvent and the audit entry record.
    event: dict[str, Any] = field(default_factory=dict)


Guard = Callable[[Move], None]
Effect = Callable[[Move], None]


@dataclass(frozen=True, kw_only=True)
class Rule(statemachine.Rule[Move]):
    """A case's rule: the mechanism's, plus where it leads and what the feed shows."""

    target: str | None  # None: the status stays
    event: str  # CaseEvent kind
    visible: bool  # shown in the reporter's feed
    # Made only by the rectification records (service/domain/rectification_cases.py), never
    # directly.
    by_record: bool = False


def _rule(sources: frozenset[str], target: str | None, refusal: str, guard: Guard,
          effect: Effect, event: str, visible: bool, *, roles: tuple[str, ...] = ("reviewer",),
          by_record: bool = False) -> Rule:
    # The table below reads left to right in the order a move happens.
    return Rule(sources=sources, refusal=refusal, guard=guard, effect=effect, roles=roles,
                target=target, event=event, visible=visible, by_record=by_record)


class ThroughRecords(NotAllowedNow):
    code = "through_records"
    message = N_("Rectification goes through its rectification record: open a record (with "
                 "the five guarantees, or for a hazard removed on the spot) and have a second "
                 "person check it.")


class SamePersonReopen(Forbidden):
    code = "same_person"
    message = N_("A refusal is reopened by an approver other than the person who refused.")


# ---------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=4)
def _catalogs() -> Catalogs:
    return Catalogs.load()


def reporter_text(settings: Settings, message: str) -> str:
    """Reporter-visible event data is stored in the installation's language."""
    return _catalogs().gettext(settings.default_language)(message)


def _text(move: Move, name: str, *, required: bool = False) -> str:
    raw = move.params.get(name, "")
    value = " ".join(str(raw if raw is not None else "").split())
    if len(value) > MAX_TEXT.get(name, 200):
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."),
                           limit=MAX_TEXT.get(name, 200))
    if required and not value:
        raise InvalidInput(N_("Give a reason."), code="reason_required")
    return value


def _choice(move: Move, name: str, choices: Mapping[str, str] | tuple[str, ...],
            message: str) -> str:
    value = str(move.params.get(name) or "")
    if value not in choices:
        raise InvalidInput(message)
    return value


_int = statemachine.as_int
_no_check = _nothing = statemachine.nothing


# ---------------------------------------------------------------------------- deadlines


def accept_due(case: Case, settings: Settings) -> dt.datetime:
    return case.accept_due_at or case.created_at + dt.timedelta(days=settings.accept_days)


def ensure_deadlines(case: Case, settings: Settings) -> None:
    # Intake sets it once the report is complete; a case stored before it did has none, and
    # gets it here from its creation time.
    if case.accept_due_at is None:
        case.accept_due_at = case.created_at + dt.timedelta(days=settings.accept_days)


DUE_KINDS = {
    "new": N_("acceptance"),
    "accepted": N_("verification"),
    "verifying": N_("verification"),
    "verified": N_("feedback to the reporter"),
    "rectifying": N_("rectification"),
}


def due_at(case: Case, settings: Settings) -> dt.datetime | None:
    """The deadline the case is currently running against, if any."""
    if case.status == "new":
        return accept_due(case, settings)
    if case.status in ("accepted", "verifying"):
        return case.verify_due_at
    if case.status == "verified":
        return case.feedback_due_at
    if case.status == "rectifying":
        return case.rectification_due_at
    return None


def due_kind(case: Case) -> str | None:
    """Which deadline ``due_at`` is (translatable), for the list and the case page."""
    return DUE_KINDS.get(case.status)


def is_overdue(case: Case, settings: Settings, now: dt.datetime | None = None) -> bool:
    due = due_at(case, settings)
    return due is not None and due < (now or utcnow())


# ---------------------------------------------------------------------------- duplicates


def _root(session: Session, case: Case) -> Case:
    seen = {case.id}
    current = case
    while current.duplicate_of is not None:
        parent = session.get(Case, current.duplicate_of)
        if parent is None or parent.id in seen:
            break
        seen.add(parent.id)
        current = parent
    return current


def _candidate(case: Case) -> bool:
    """Only a report verified as true (or partly true) can be the one rewarded."""
    return case.status != "not_accepted" and case.verification_result in CONFIRMED


def group_of(session: Session, case: Case) -> list[Case]:
    """The case's duplicate group (kept flat: every member points at the root), oldest first."""
    root = _root(session, case)
    group = [root, *session.scalars(select(Case).where(Case.duplicate_of == root.id))]
    group.sort(key=lambda c: (c.created_at, c.id))
    return group


def first_valid_ties(group: list[Case]) -> list[Case]:
    """The earliest verified reports of a group when they share a time bucket (else [])."""
    candidates = [c for c in group if _candidate(c)]
    if not candidates:
        return []
    earliest = min(c.created_at for c in candidates)
    tied = [c for c in candidates if c.created_at == earliest]
    return tied if len(tied) > 1 else []


def _decided_over(session: Session, group: list[Case], chosen: Case) -> set[str]:
    """The candidates the reviewer was shown when ``chosen`` was decided first valid."""
    events = session.scalars(select(CaseEvent).where(
        CaseEvent.case_id.in_([c.id for c in group]), CaseEvent.kind == "first_valid_decided"))
    mine = [e for e in events if e.data.get("first") == chosen.id]
    latest = max(mine, key=lambda e: e.created_at, default=None)
    return set(latest.data.get("candidates") or []) if latest is not None else set()


def refresh_first_valid(session: Session, case: Case, actor: User | None = None,
                        now: dt.datetime | None = None,
                        decided_over: set[str] | None = None) -> None:
    """Mark the group's first valid report: the earliest verified one.

    Times are stored only as coarsely as the installation's granularity, so two verified
    reports of one bucket cannot be ordered by the system; then the question stays open
    (``first_valid_open``, no reward can be calculated) until a reviewer decides
    (``decide_first_valid``). A decision holds only for the reports it was made between: a
    further verified report of the same bucket (linked, or verified, later) opens it again.
    A change of the first valid case is audited. ``decided_over``: the candidates of a
    decision being made now (its event is not written yet).
    """
    group = group_of(session, case)
    candidates = [c for c in group if _candidate(c)]
    tied = first_valid_ties(group)
    first: Case | None = None
    if tied:
        decided = [c for c in tied if c.first_valid_decided_by is not None]
        if len(decided) == 1:
            shown = decided_over if decided_over is not None else _decided_over(
                session, group, decided[0])
            first = decided[0] if {c.id for c in tied} <= shown else None
    elif candidates:
        first = candidates[0]
    still_open = bool(tied) and first is None
    previous = next((c for c in group if c.first_valid), None)
    for member in group:
        wanted = member is first
        if member.first_valid != wanted or member.first_valid_open != still_open:
            member.first_valid = wanted
            member.first_valid_open = still_open
            if member is not case:
                # Someone else's open form about that case is stale now.
                member.version = member.version + 1
    if previous is not first and len(group) > 1:
        audit.append(session, "case.first_valid_changed", actor=actor, target=group[0].id,
                     now=now, details={"from": previous.id if previous else None,
                                       "to": first.id if first else None,
                                       "open": still_open})


@dataclass(frozen=True)
class FirstValidBasis:
    """Why a case of a duplicate group is (or is not yet) the one rewarded, for the reward
    pages: the explanation names the decision."""

    group_size: int
    first: Case | None
    decided_by: User | None
    reason: str
    open: bool


def first_valid_basis(session: Session, case: Case) -> FirstValidBasis | None:
    group = group_of(session, case)
    if len(group) < 2:
        return None
    first = next((c for c in group if c.first_valid), None)
    decider = (session.get(User, first.first_valid_decided_by)
               if first is not None and first.first_valid_decided_by else None)
    return FirstValidBasis(len(group), first, decider,
                           first.first_valid_reason or "" if first is not None else "",
                           any(c.first_valid_open for c in group))


def _duplicate_target(move: Move) -> Case:
    other_id = str(move.params.get("duplicate_of") or "").strip().lower()
    other = move.session.get(Case, other_id) if other_id else None
    if other is None or not other.ready or other.channel_id != move.case.channel_id:
        raise InvalidInput(N_("Name another case of the same reporting line."),
                           code="duplicate_unknown")
    if other.id == move.case.id or _root(move.session, other).id == move.case.id:
        raise InvalidInput(N_("A case cannot be a duplicate of itself or of its own duplicate."),
                           code="duplicate_cycle")
    return other


def _link(move: Move, other: Case) -> None:
    session, case = move.session, move.case
    root = _root(session, other)
    # Keep the group flat: this case's own duplicates follow it to the new root.
    for child in session.scalars(select(Case).where(Case.duplicate_of == case.id)):
        child.duplicate_of = root.id
    case.duplicate_of = root.id
    session.flush()
    refresh_first_valid(session, case, move.actor, move.now)
    move.event["duplicate_of"] = root.id


# ---------------------------------------------------------------------------- guards and effects


def _accept(move: Move) -> None:
    case = move.case
    case.accepted_at = move.now
    case.verify_due_at = move.now + dt.timedelta(days=move.settings.verify_days)


def _check_not_accept(move: Move) -> None:
    reason = _choice(move, "reason", NOT_ACCEPTED_REASONS, N_("Choose a reason."))
    if str(move.params.get("confirm") or "") != "1":
        raise InvalidInput(N_("A refusal is final for the reporter: tick the box to confirm "
                              "it."), code="confirm_required")
    move.values["note"] = _text(move, "note", required=True)
    move.values["reason"] = reason
    if reason == "duplicate":
        move.values["other"] = _duplicate_target(move)


def _not_accept(move: Move) -> None:
    reason = move.values["reason"]
    move.case.not_accepted_reason = reason
    move.event.update(reason=reporter_text(move.settings, REASONS_FOR_REPORTER[reason]),
                      reason_code=reason, note=move.values["note"])
    if reason == "duplicate":
        _link(move, move.values["other"])
    else:
        move.session.flush()
        refresh_first_valid(move.session, move.case, move.actor, move.now)


def refused_event(session: Session, case: Case) -> CaseEvent | None:
    """The refusal a not-accepted case is in (its latest not_accepted event)."""
    return session.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                  CaseEvent.kind == "not_accepted")
                          .order_by(CaseEvent.created_at.desc(), CaseEvent.id.desc()).limit(1))


def reopen_until(session: Session, settings: Settings, case: Case) -> dt.datetime | None:
    """Until when an approver may reopen the refusal (None: not refused, or no record)."""
    event = refused_event(session, case) if case.status == "not_accepted" else None
    return event.created_at + dt.timedelta(days=settings.reopen_days) if event else None


def _check_reopen_refusal(move: Move) -> None:
    event = refused_event(move.session, move.case)
    until = reopen_until(move.session, move.settings, move.case)
    if event is None or until is None or move.now > until:
        raise NotAllowedNow(N_("A refusal can be reopened only within {days} days."),
                            code="reopen_window", days=move.settings.reopen_days)
    if event.user_id == move.actor.id:
        raise SamePersonReopen()
    move.values["reason"] = _text(move, "reason", required=True)


def _reopen_refusal(move: Move) -> None:
    case = move.case
    previous = case.not_accepted_reason
    case.not_accepted_reason = None
    # The reviewers get a fresh acceptance period from now.
    case.accept_due_at = move.now + dt.timedelta(days=move.settings.accept_days)
    move.event.update(reason=move.values["reason"], refused_as=previous)
    move.session.flush()
    refresh_first_valid(move.session, case, move.actor, move.now)


def _check_extend(move: Move) -> None:
    if move.case.verify_extended:
        raise NotAllowedNow(N_("Verification can be extended only once."),
                            code="already_extended")
    move.values["reason"] = _text(move, "reason", required=True)
    days = _int(move.params.get("days", move.settings.extension_days))
    if days is None or not 1 <= days <= move.settings.extension_days:
        raise InvalidInput(N_("An extension is between 1 and {days} days."),
                           days=move.settings.extension_days)
    move.values["days"] = days


def _extend(move: Move) -> None:
    case = move.case
    base = case.verify_due_at or move.now
    case.verify_due_at = base + dt.timedelta(days=move.values["days"])
    case.verify_extended = True
    move.event.update(reason=move.values["reason"], days=move.values["days"])


def _check_verify(move: Move) -> None:
    move.values["result"] = _choice(move, "result", RESULTS, N_("Choose a verification result."))


def _verify(move: Move) -> None:
    case, result = move.case, move.values["result"]
    case.verification_result = result
    case.verified_at = move.now
    case.feedback_due_at = move.now + dt.timedelta(days=move.settings.feedback_days)
    move.event.update(result=reporter_text(move.settings, RESULTS_FOR_REPORTER[result]),
                      result_code=result)
    move.session.flush()
    refresh_first_valid(move.session, case, move.actor, move.now)


def _check_rectification(move: Move) -> None:
    if move.case.verification_result not in ("true", "partly"):
        raise NotAllowedNow(N_("Only a hazard verified as true or partly true is rectified."),
                            code="not_confirmed")


def _check_close(move: Move) -> None:
    if move.case.status == "verified" and move.case.verification_result != "false":
        raise NotAllowedNow(N_("A confirmed hazard is closed only after its rectification "
                               "was accepted."), code="rectification_needed")
    if move.case.status == "rectified" and _record_states(move) - {"closed"}:
        raise NotAllowedNow(N_("Every rectification record of this case must be written off "
                               "first."), code="records_open")


def _record_states(move: Move) -> set[str]:
    """States of the rectification records linked to the case (none for a case handled
    without records)."""
    return set(move.session.scalars(
        select(Rectification.state).join(
            RectificationCase, RectificationCase.rectification_id == Rectification.id)
        .where(RectificationCase.case_id == move.case.id)))


def _check_open_rectification(move: Move) -> None:
    _check_rectification(move)
    if not _record_states(move) - {"accepted", "closed"}:
        raise ThroughRecords()


def _check_accept_rectification(move: Move) -> None:
    if not _record_states(move):
        raise ThroughRecords()
    if _record_states(move) - {"accepted", "closed"}:
        raise NotAllowedNow(N_("Every rectification record of this case must pass its "
                               "acceptance check first."), code="records_open")


def _check_reopen(move: Move) -> None:
    # Only a record still being worked on takes an accepted case back to rectifying.
    if not _record_states(move) - {"accepted", "closed"}:
        raise NotAllowedNow(N_("Only a new or unfinished rectification record reopens the "
                               "rectification."), code="no_open_record")


def _check_assign(move: Move) -> None:
    raw = move.params.get("assignee")
    if raw in (None, ""):
        move.values["assignee"] = None
        return
    user_id = _int(raw)
    allowed = user_id is not None and move.session.scalar(
        select(User.id).join(ChannelRecipient, ChannelRecipient.user_id == User.id)
        .where(ChannelRecipient.channel_id == move.case.channel_id, User.id == user_id,
               User.active.is_(True)))
    user = move.session.get(User, user_id) if allowed and user_id is not None else None
    if user is None or not user.has_role("reviewer"):
        raise InvalidInput(N_("Assign the case to a reviewer of its reporting line."),
                           code="assignee")
    move.values["assignee"] = user


def _assign(move: Move) -> None:
    user = move.values["assignee"]
    move.case.assigned_to = user.id if user else None
    move.event["assigned_to"] = user.id if user else None


def _check_grade(move: Move) -> None:
    grade = _choice(move, "grade", GRADES, N_("Choose a grade."))
    criterion = None
    if grade == "major":
        criterion_id = _int(move.params.get("criterion_id"))
        criterion = (move.session.get(HazardCriterion, criterion_id)
                     if criterion_id is not None else None)
        if criterion is None or not criterion.active:
            raise InvalidInput(N_("A major hazard must cite an item of the major-hazard "
                                  "criteria."), code="criterion_required")
    move.values.update(grade=grade, criterion=criterion)


def _grade(move: Move) -> None:
    criterion = move.values["criterion"]
    move.case.grade = move.values["grade"]
    move.case.criterion_id = criterion.id if criterion else None
    move.event.update(grade=move.values["grade"],
                      criterion_id=criterion.id if criterion else None)


def _check_facts(move: Move) -> None:
    category = str(move.params.get("category") or "")
    if category and category not in CATEGORY_KEYS:
        raise InvalidInput(N_("Choose a category."))
    move.values.update(category=category or None, enterprise=_text(move, "enterprise"),
                       location=_text(move, "location"))


def _facts(move: Move) -> None:
    case = move.case
    case.category = move.values["category"]
    case.enterprise = move.values["enterprise"]
    case.location = move.values["location"]
    move.event.update(category=case.category, enterprise=case.enterprise,
                      location=case.location)


def _check_duplicate(move: Move) -> None:
    move.values["other"] = _duplicate_target(move)


def _duplicate(move: Move) -> None:
    _link(move, move.values["other"])


def first_valid_choices(group: list[Case]) -> list[Case]:
    """Whom a reviewer may choose: the tied earliest verified reports, or, for a group
    carried over from before the rule, its earliest verified one."""
    return first_valid_ties(group) or [c for c in group if _candidate(c)][:1]


def _check_decide_first(move: Move) -> None:
    group = group_of(move.session, move.case)
    if not any(c.first_valid_open for c in group):
        raise NotAllowedNow(N_("The first valid report of this group is already clear."),
                            code="first_valid_clear")
    chosen_id = str(move.params.get("first") or "").strip().lower()
    chosen = next((c for c in group if c.id == chosen_id), None)
    if chosen is None or chosen not in first_valid_choices(group):
        raise InvalidInput(N_("Choose one of the earliest reports verified as true."),
                           code="first_valid_choice")
    move.values.update(group=group, chosen=chosen, why=_text(move, "reason", required=True))


def _decide_first(move: Move) -> None:
    chosen, group = move.values["chosen"], move.values["group"]
    for member in group:
        member.first_valid_decided_by = None
        member.first_valid_reason = None
    chosen.first_valid_decided_by = move.actor.id
    chosen.first_valid_reason = move.values["why"]
    move.session.flush()
    refresh_first_valid(move.session, move.case, move.actor, move.now,
                        decided_over={c.id for c in first_valid_ties(group)})
    # A carried-over flag (no tie by the rule) is settled by the decision too.
    for member in group:
        member.first_valid_open = False
    move.event.update(first=chosen.id, why=move.values["why"],
                      candidates=[c.id for c in first_valid_ties(group)])


# ---------------------------------------------------------------------------- the table


_states = statemachine.states

RULES: dict[str, Rule] = {
    "accept": _rule(_states("new"), "accepted", N_("Only a new case can be accepted."),
                   _no_check, _accept, "accepted", True),
    "not_accept": _rule(_states("new"), "not_accepted",
                       N_("Only a new case can be refused acceptance."),
                       _check_not_accept, _not_accept, "not_accepted", True),
    "start_verification": _rule(_states("accepted"), "verifying",
                               N_("Verification starts after the case was accepted."),
                               _no_check, _nothing, "verifying", True),
    "extend": _rule(_states("accepted", "verifying"), None,
                   N_("Only a case waiting for or under verification can be extended."),
                   _check_extend, _extend, "verification_extended", True),
    "verify": _rule(_states("verifying"), "verified",
                   N_("A result can be recorded only while the case is being verified."),
                   _check_verify, _verify, "verified", True),
    "open_rectification": _rule(_states("verified"), "rectifying",
                               N_("A rectification is opened after verification."),
                               _check_open_rectification, _nothing, "rectification_opened",
                               True, by_record=True),
    "accept_rectification": _rule(_states("rectifying"), "rectified",
                                 N_("Only a rectification under way can be accepted."),
                                 _check_accept_rectification, _nothing,
                                 "rectification_accepted", True, by_record=True),
    "reopen_rectification": _rule(_states("rectified"), "rectifying",
                                 N_("Only an accepted rectification can be reopened."),
                                 _check_reopen, _nothing, "rectification_reopened", True,
                                 by_record=True),
    # A refusal is the reviewers' word; an approver may take it back, audited and within
    # a window, and the reporter is told.
    "reopen_refusal": _rule(_states("not_accepted"), "new",
                           N_("Only a report that was not accepted can be reopened."),
                           _check_reopen_refusal, _reopen_refusal, "refusal_reopened", True,
                           roles=("approver",)),
    # Closing is the approver's second look (docs/RULES.md: approvers approve closure).
    "close": _rule(_states("not_accepted", "verified", "rectified"), "closed",
                  N_("This case cannot be closed yet."), _check_close, _nothing, "closed",
                  True, roles=("approver",)),
    "assign": _rule(OPEN_STATES, None, N_("A closed case cannot be changed."),
                   _check_assign, _assign, "assigned", False),
    "grade": _rule(OPEN_STATES, None, N_("A closed case cannot be changed."),
                  _check_grade, _grade, "graded", False),
    "facts": _rule(OPEN_STATES, None, N_("A closed case cannot be changed."),
                  _check_facts, _facts, "facts_changed", False),
    "link_duplicate": _rule(OPEN_STATES, None, N_("A closed case cannot be changed."),
                           _check_duplicate, _duplicate, "duplicate_linked", False),
    "decide_first_valid": _rule(OPEN_STATES, None, N_("A closed case cannot be changed."),
                               _check_decide_first, _decide_first, "first_valid_decided",
                               False),
}
ACTIONS = tuple(RULES)


def allowed_actions(case: Case, user: User) -> list[str]:
    """Actions whose state and role fit (guards may still refuse the parameters)."""
    return [name for name in statemachine.allowed(RULES, case.status, user)
            if not RULES[name].by_record]


def perform(session: Session, settings: Settings, case: Case, actor: User, action: str, *,
            version: Any, params: Mapping[str, Any] | None = None,
            now: dt.datetime | None = None, by_record: bool = False) -> CaseEvent:
    """Apply ``action`` to ``case`` as ``actor``; refuses without changing anything.

    ``by_record`` is for service/domain/rectification_cases.py only: the moves the records
    make."""
    if action in RULES and RULES[action].by_record and not by_record:
        raise ThroughRecords()
    rule = statemachine.check(RULES, action, case.status, actor, version, case.version)
    expected = case.version
    now = now or utcnow()
    move = Move(session, settings, case, actor, params or {}, now)
    rule.guard(move)
    # Nothing above changed the case; from here on everything is one transaction.
    session.flush()
    statemachine.bump_version(session, Case, case, expected)
    ensure_deadlines(case, settings)
    before = case.status
    if rule.target is not None:
        case.status = rule.target  # before the effect: validity of duplicates depends on it
    rule.effect(move)
    case.updated_at = now
    event = CaseEvent(case_id=case.id, kind=rule.event, user_id=actor.id,
                      visible_to_reporter=rule.visible, data=dict(move.event), created_at=now)
    session.add(event)
    audit.append(session, f"case.{action}", actor=actor, target=case.id, now=now,
                 details={"from": before, "to": case.status, "version": case.version,
                          **{k: v for k, v in move.event.items() if k != "reason"
                             or action in ("extend", "reopen_refusal")}})
    session.flush()
    return event
