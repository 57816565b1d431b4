"""Rectification records (隐患整改): the record's state machine, every allowed move in one table.

    opened ─decide→ in_progress ─request_acceptance→ awaiting_acceptance ─accept (pass)→ accepted
    opened ─fixed_on_spot→ awaiting_acceptance (当场整改: who fixed it, how, when, evidence)
    awaiting_acceptance ─accept (fail)→ in_progress
    accepted ─write_off→ closed (an approver)
    closed ─publish | unpublish→ closed (what the public board shows of it)

``edit`` changes the facts while opened or in progress; ``progress`` (text and sealed evidence
files) while the work is not accepted; ``extend`` (a new deadline and a written reason) while in
progress; ``explain_overdue`` records the written explanation an overdue record needs before it
can ask for acceptance; ``link_case`` joins a further case of the same hazard.

The rules are service/domain/statemachine.py's, as the case workflow's are: each names the
states it starts from, the roles it needs, why it is refused elsewhere, a guard (checks,
changes nothing) and an effect. ``perform`` is the only writer: the mechanism's ``check``
refuses in its fixed order (unknown action, stale version, role, state), then the guard runs,
and only then anything changes, so a refusal leaves everything as it was. Each step bumps the
record's version (compare-and-set), writes a RectificationEntry where it has content, adds
CaseEvents to every linked case (reporter-visible kinds from service/domain/feed.py, never a
name), appends to the audit trail, and moves the linked cases through
service/domain/workflow.py (``sync_case``): the first record opens the case's rectification,
the last accepted one accepts it, the last write-off closes the case.

Beside this module: rectification_facts.py (the states, form fields, dates and number),
rectification_cases.py (opening a record from a case, the linked cases, ``sync_case``) and
rectification_records.py (access, lists and the evidence uploads).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.domain import audit, intake, statemachine
from service.domain.models import Case, CaseEvent, StoredFile, User, utcnow
from service.domain.models.rectification import (
    Rectification,
    RectificationCase,
    RectificationEntry,
    RectificationFile,
)
from service.domain.rectification_cases import can_open, linked_cases, sync_case
from service.domain.rectification_facts import (
    OPEN_STATES,
    evidence_files,
    is_overdue,
    local_date,
    needs_explanation,
    parse_date,
    parse_fields,
    text_field,
    today,
)
from service.domain.statemachine import NotAllowedNow
from service.platform.errors import Forbidden, InvalidInput
from service.platform.i18n import N_
from service.platform.settings import Settings

RESULTS = {"pass": N_("Passed"), "fail": N_("Failed")}
ENTRY_LABELS = {
    "opened": N_("Record opened"),
    "edited": N_("Facts changed"),
    "decided": N_("Measures decided"),
    "progress": N_("Progress"),
    "extension": N_("Deadline extended"),
    "explanation": N_("Overdue explanation"),
    "completed": N_("Acceptance requested"),
    "acceptance": N_("Acceptance check"),
    "written_off": N_("Written off"),
    "published": N_("Published on the public board"),
    "unpublished": N_("Taken off the public board"),
    "linked": N_("Case linked"),
    "on_the_spot": N_("Removed on the spot"),
}
# Internal (reviewer-only) case timeline entries this module adds.
INTERNAL_EVENTS = {
    "rectification_record": N_("Rectification record opened"),
    "rectification_edited": N_("Rectification record changed"),
    "rectification_explained": N_("Overdue rectification explained"),
    "rectification_completed": N_("Rectification finished, acceptance requested"),
    "rectification_item_accepted": N_("Rectification record passed its acceptance check"),
    "rectification_written_off": N_("Rectification record written off"),
    "rectification_published": N_("Rectification outcome published on the public board"),
    "rectification_linked": N_("Case linked to a rectification record"),
}


class SamePerson(Forbidden):
    code = "same_person"
    message = N_("The acceptance check must be done by someone other than the person who "
                 "opened or handles this record or recorded the fix.")


# ---------------------------------------------------------------------------- the move


@dataclass
class Move:
    session: Session
    settings: Settings
    record: Rectification
    actor: User
    params: Mapping[str, Any]
    now: dt.datetime
    values: dict[str, Any] = field(default_factory=dict)
    # (kind, reporter-visible, data) for every linked case.
    events: list[tuple[str, bool, dict[str, Any]]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    entry: RectificationEntry | None = None

    @property
    def today(self) -> dt.date:
        return today(self.now)


# A record's rule is the mechanism's own; nothing more is needed for it.
Rule = statemachine.Rule[Move]


def _case_events(move: Move) -> None:
    for case in linked_cases(move.session, move.record):
        for kind, visible, data in move.events:
            move.session.add(CaseEvent(case_id=case.id, kind=kind, user_id=move.actor.id,
                                       visible_to_reporter=visible, data=dict(data),
                                       created_at=move.now))
        move.session.flush()
        sync_case(move.session, move.settings, case, move.actor, move.now)


def _entry(move: Move, kind: str, **values: Any) -> RectificationEntry:
    entry = RectificationEntry(rectification_id=move.record.id, kind=kind,
                               user_id=move.actor.id, created_at=move.now, **values)
    move.session.add(entry)
    move.session.flush()
    move.entry = entry
    return entry


def _ref(move: Move, **data: Any) -> dict[str, Any]:
    # What a reporter-visible event carries: the record's number and plain facts, no names.
    return {"rectification": move.record.id, **data}


# ---------------------------------------------------------------------------- guards, effects


def _check_edit(move: Move) -> None:
    record = move.record
    values = parse_fields(move.session, record.channel_id, move.params, move.now,
                          current=record.deadline)
    if record.state != "opened" and values["deadline"] != record.deadline:
        raise InvalidInput(N_("Once measures are decided, the deadline changes only by an "
                              "extension with a written reason."), code="deadline_locked")
    move.values["fields"] = values


def _apply(move: Move) -> list[str]:
    changed = []
    for name, value in move.values["fields"].items():
        if getattr(move.record, name) != value:
            setattr(move.record, name, value)
            changed.append(name)
    move.details["changed"] = changed
    return changed


def _edit(move: Move) -> None:
    changed = _apply(move)
    _entry(move, "edited", text=", ".join(changed))
    move.events.append(("rectification_edited", False, _ref(move, changed=changed)))


def _check_decide(move: Move) -> None:
    values = parse_fields(move.session, move.record.channel_id, move.params, move.now)
    missing = [name for name in ("responsible_unit", "responsible_person", "measures",
                                 "contingency_plan") if not values[name]]
    if values["funds_fen"] is None or values["deadline"] is None:
        missing.append("funds" if values["funds_fen"] is None else "deadline")
    if missing:
        raise InvalidInput(N_("Fill in all five guarantees first: responsible unit and "
                              "person, measures, funds, deadline and contingency plan."),
                           code="guarantees_incomplete")
    if values["deadline"] < move.today:
        raise InvalidInput(N_("The deadline cannot be in the past."), code="deadline_past")
    move.values["fields"] = values


def _decide(move: Move) -> None:
    _apply(move)
    record = move.record
    record.state = "in_progress"
    record.decided_at = move.now
    record.first_deadline = record.deadline
    assert record.deadline is not None
    _entry(move, "decided", deadline_after=record.deadline)
    move.events.append(("measures_decided", True,
                        _ref(move, deadline=record.deadline.isoformat())))


def _evidence(move: Move) -> list[tuple[StoredFile, str]]:
    linked = {c.id for c in linked_cases(move.session, move.record)}
    return evidence_files(move.session, move.params, move.settings.max_files, linked)


def _check_on_spot(move: Move) -> None:
    params = move.params
    who = text_field(params, "responsible_person", required=True,
                     message=N_("Name who removed the hazard."))
    unit = text_field(params, "responsible_unit")
    how = text_field(params, "measures", required=True,
                     message=N_("Describe how the hazard was removed."))
    on = parse_date(params.get("date"))
    if on is None or on > move.today or on < move.record.found_on:
        raise InvalidInput(N_("The day the hazard was removed lies between the report and "
                              "today."), code="fixed_on")
    files = _evidence(move)
    held = move.session.scalar(select(func.count()).select_from(RectificationFile).where(
        RectificationFile.rectification_id == move.record.id)) or 0
    if not files and not held:
        raise InvalidInput(N_("Attach evidence (a photo or document) of the removed hazard."),
                           code="evidence_required")
    move.values.update(who=who, unit=unit, how=how, on=on, files=files,
                       text=text_field(params, "text"))


def _on_spot(move: Move) -> None:
    record = move.record
    record.on_the_spot = True
    record.fixed_on = move.values["on"]
    record.responsible_person = move.values["who"]
    if move.values["unit"]:
        record.responsible_unit = move.values["unit"]
    record.measures = move.values["how"]
    # Nothing is left to schedule: no deadline, no funds plan; the check follows.
    record.deadline = None
    record.decided_at = move.now
    record.state = "awaiting_acceptance"
    entry = _entry(move, "on_the_spot", on_date=move.values["on"],
                   text=move.values["text"] or move.values["how"])
    for stored, phase in move.values["files"]:
        move.session.add(RectificationFile(file_id=stored.id, rectification_id=record.id,
                                           entry_id=entry.id, phase=phase,
                                           created_at=move.now))
    move.details.update(date=move.values["on"].isoformat(),
                        files=[stored.id for stored, _ in move.values["files"]])
    move.events.append(("rectification_on_spot", True, _ref(move)))


def _check_progress(move: Move) -> None:
    files = _evidence(move)
    text = text_field(move.params, "text")
    if not text and not files:
        raise InvalidInput(N_("Describe the progress or attach evidence."), code="required")
    move.values.update(text=text, files=files)


def _progress(move: Move) -> None:
    entry = _entry(move, "progress", text=move.values["text"])
    for stored, phase in move.values["files"]:
        move.session.add(RectificationFile(file_id=stored.id, rectification_id=move.record.id,
                                           entry_id=entry.id, phase=phase,
                                           created_at=move.now))
    move.details["files"] = [stored.id for stored, _ in move.values["files"]]
    move.events.append(("rectification_progress", True, _ref(move)))


def _check_extend(move: Move) -> None:
    new = parse_date(move.params.get("deadline"))
    current = move.record.deadline
    if new is None or (current is not None and new <= current):
        raise InvalidInput(N_("An extension needs a new deadline later than the current one."),
                           code="deadline_not_later")
    if new < move.today:
        raise InvalidInput(N_("The deadline cannot be in the past."), code="deadline_past")
    move.values.update(deadline=new, reason=text_field(
        move.params, "reason", required=True, message=N_("Give a reason."), limit_name="reason"))


def _extend(move: Move) -> None:
    record = move.record
    before = record.deadline
    record.deadline = move.values["deadline"]
    _entry(move, "extension", text=move.values["reason"], deadline_before=before,
           deadline_after=record.deadline)
    move.details.update(before=before.isoformat() if before else None,
                        after=record.deadline.isoformat() if record.deadline else None)
    move.events.append(("rectification_deadline", True,
                        _ref(move, deadline=move.values["deadline"].isoformat())))


def _check_explain(move: Move) -> None:
    if not is_overdue(move.record, move.today):
        raise NotAllowedNow(N_("This record is not overdue."), code="not_overdue")
    move.values["text"] = text_field(move.params, "text", required=True,
                                     message=N_("Write the explanation."), limit_name="text")


def _explain(move: Move) -> None:
    move.record.explained_deadline = move.record.deadline
    _entry(move, "explanation", text=move.values["text"], deadline_before=move.record.deadline)
    move.events.append(("rectification_explained", False, _ref(move)))


def _check_request(move: Move) -> None:
    if needs_explanation(move.record, move.today):
        raise InvalidInput(N_("This record is overdue: give a written explanation first."),
                           code="explanation_needed")
    move.values["text"] = text_field(move.params, "text")


def _request(move: Move) -> None:
    move.record.state = "awaiting_acceptance"
    _entry(move, "completed", text=move.values["text"])
    move.events.append(("rectification_completed", False, _ref(move)))


def _check_accept(move: Move) -> None:
    record, actor = move.record, move.actor
    recorders = set(move.session.scalars(select(RectificationEntry.user_id).where(
        RectificationEntry.rectification_id == record.id,
        RectificationEntry.kind == "on_the_spot")))
    if actor.id in {record.opened_by, record.owner_id} | recorders:
        raise SamePerson()
    result = str(move.params.get("result") or "")
    if result not in RESULTS:
        raise InvalidInput(N_("Choose the result of the acceptance check."), code="result")
    on = parse_date(move.params.get("date"))
    if on is None or on > move.today or on < local_date(record.created_at):
        raise InvalidInput(N_("The acceptance date lies between the record's opening and "
                              "today."), code="acceptance_date")
    note = text_field(move.params, "text", required=result == "fail",
                      message=N_("Say what is still missing."))
    move.values.update(result=result, on=on, text=note)


def _accept(move: Move) -> None:
    record = move.record
    result, on = move.values["result"], move.values["on"]
    _entry(move, "acceptance", result=result, on_date=on, text=move.values["text"])
    move.details.update(result=result, date=on.isoformat())
    if result == "pass":
        record.state = "accepted"
        record.accepted_by = move.actor.id
        record.accepted_on = on
        move.events.append(("rectification_item_accepted", False, _ref(move)))
    else:
        record.state = "in_progress"
        move.events.append(("rectification_failed", True, _ref(move)))


def _write_off(move: Move) -> None:
    record = move.record
    record.state = "closed"
    record.closed_by = move.actor.id
    record.closed_at = move.now
    _entry(move, "written_off", on_date=move.today)
    move.events.append(("rectification_written_off", False, _ref(move)))


def _check_publish(move: Move) -> None:
    move.values["text"] = text_field(move.params, "public_text", required=True,
                                     message=N_("Write the text the public will read."))


def _publish(move: Move) -> None:
    record = move.record
    record.public_text = move.values["text"]
    record.published_by = move.actor.id
    record.published_at = move.now
    _entry(move, "published", text=move.values["text"])
    move.events.append(("rectification_published", False, _ref(move)))


def _check_unpublish(move: Move) -> None:
    if move.record.public_text is None:
        raise NotAllowedNow(N_("This record is not on the public board."),
                            code="not_published")


def _unpublish(move: Move) -> None:
    record = move.record
    record.public_text = None
    record.published_by = None
    record.published_at = None
    _entry(move, "unpublished")


def _check_link(move: Move) -> None:
    raw = str(move.params.get("case_id") or "").strip().lower()
    case = move.session.get(Case, raw) if intake.ID.match(raw) else None
    if (case is None or not case.ready or case.channel_id != move.record.channel_id
            or not can_open(case)):
        raise InvalidInput(N_("Name a case of the same reporting line verified as true or "
                              "partly true."), code="case_unknown")
    if move.session.get(RectificationCase, (move.record.id, case.id)) is not None:
        raise InvalidInput(N_("This case is linked already."), code="already_linked")
    move.values["case"] = case


def _link(move: Move) -> None:
    record, case = move.record, move.values["case"]
    move.session.add(RectificationCase(rectification_id=record.id, case_id=case.id,
                                       linked_by=move.actor.id, linked_at=move.now))
    move.session.flush()
    _entry(move, "linked", text=case.id)
    move.details["case"] = case.id
    # The newly linked case's reporter learns what the others already know.
    move.session.add(CaseEvent(case_id=case.id, kind="rectification_linked",
                               user_id=move.actor.id, visible_to_reporter=False,
                               data=_ref(move), created_at=move.now))
    if record.state != "opened" and record.deadline is not None:
        move.session.add(CaseEvent(case_id=case.id, kind="measures_decided",
                                   user_id=move.actor.id, visible_to_reporter=True,
                                   data=_ref(move, deadline=record.deadline.isoformat()),
                                   created_at=move.now))


_nothing = statemachine.nothing
_states = statemachine.states

RULES: dict[str, Rule] = {
    "fixed_on_spot": Rule(_states("opened"),
                          N_("A fix on the spot is recorded instead of deciding measures, right "
                             "after the record was opened."), _check_on_spot, _on_spot),
    "edit": Rule(_states("opened", "in_progress"),
                 N_("The record's facts can be changed only until the work is finished."),
                 _check_edit, _edit),
    "decide": Rule(_states("opened"),
                   N_("Measures are decided once, right after the record was opened."),
                   _check_decide, _decide),
    "progress": Rule(_states(*OPEN_STATES),
                     N_("Progress is recorded only until the work passed its acceptance "
                        "check."), _check_progress, _progress),
    "extend": Rule(_states("in_progress"),
                   N_("Only a rectification under way can get a later deadline."),
                   _check_extend, _extend),
    "explain_overdue": Rule(_states("in_progress", "awaiting_acceptance"),
                            N_("Only a rectification under way can be explained as overdue."),
                            _check_explain, _explain),
    "request_acceptance": Rule(_states("in_progress"),
                               N_("Acceptance is requested when the decided work is done."),
                               _check_request, _request),
    "accept": Rule(_states("awaiting_acceptance"),
                   N_("Only a record waiting for its acceptance check can be checked."),
                   _check_accept, _accept),
    # Write-off is the approver's second look, as closing a case is.
    "write_off": Rule(_states("accepted"),
                      N_("Only a record that passed its acceptance check can be written off."),
                      _nothing, _write_off, roles=("approver",)),
    "publish": Rule(_states("closed"),
                    N_("Only a written-off record can be published."),
                    _check_publish, _publish, roles=("reviewer", "approver")),
    "unpublish": Rule(_states("closed"),
                      N_("Only a written-off record can be taken off the public board."),
                      _check_unpublish, _unpublish, roles=("reviewer", "approver")),
    "link_case": Rule(_states(*OPEN_STATES),
                      N_("Cases are linked only until the work passed its acceptance check."),
                      _check_link, _link),
}
ACTIONS = tuple(RULES)
# Reporter-visible event kinds this module writes (all in service/domain/feed.py).
VISIBLE_EVENTS = ("measures_decided", "rectification_progress", "rectification_deadline",
                  "rectification_failed", "rectification_on_spot")


def allowed_actions(record: Rectification, user: User) -> list[str]:
    return statemachine.allowed(RULES, record.state, user)


def perform(session: Session, settings: Settings, record: Rectification, actor: User,
            action: str, *, version: Any, params: Mapping[str, Any] | None = None,
            now: dt.datetime | None = None) -> RectificationEntry | None:
    """Apply ``action`` to ``record`` as ``actor``; refuses without changing anything."""
    rule = statemachine.check(RULES, action, record.state, actor, version, record.version)
    expected = record.version
    now = now or utcnow()
    move = Move(session, settings, record, actor, params or {}, now)
    rule.guard(move)
    # Nothing above changed anything; from here on everything is one transaction.
    session.flush()
    before = record.state
    statemachine.bump_version(session, Rectification, record, expected)
    rule.effect(move)
    record.updated_at = now
    session.flush()
    _case_events(move)
    audit.append(session, f"rectification.{action}", actor=actor, target=str(record.id),
                 now=now, details={"from": before, "to": record.state,
                                   "version": record.version, **move.details})
    session.flush()
    return move.entry
