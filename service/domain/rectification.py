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
service/domain/workflow.py: the first record opens the case's rectification, the last accepted
one accepts it, the last write-off closes the case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from service.domain import audit, cases, intake, statemachine, workflow
from service.domain.models import Case, CaseEvent, SealedItem, StoredFile, User, utcnow
from service.domain.models.rectification import (
    Rectification,
    RectificationCase,
    RectificationEntry,
    RectificationFile,
)
from service.domain.rewards.money import AmountError, parse_amount
from service.domain.statemachine import NotAllowedNow
from service.platform import localtime
from service.platform.db import Database
from service.platform.errors import Forbidden, InvalidInput, Malformed, NotFound, TooLarge
from service.platform.i18n import N_
from service.platform.settings import Settings

STATES = ("opened", "in_progress", "awaiting_acceptance", "accepted", "closed")
OPEN_STATES = ("opened", "in_progress", "awaiting_acceptance")
STATE_LABELS = {
    "opened": N_("Opened (measures not decided yet)"),
    "in_progress": N_("Being rectified"),
    "awaiting_acceptance": N_("Waiting for the acceptance check"),
    "accepted": N_("Passed the acceptance check"),
    "closed": N_("Written off"),
}
PHASES = {"before": N_("Before rectification"), "after": N_("After rectification")}
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
LIMITS = {"description": 2000, "location": 300, "risk_assessment": 2000,
          "responsible_unit": 200, "responsible_person": 200, "measures": 4000,
          "contingency_plan": 4000, "interim_measures": 2000, "supervision_by": 200,
          "text": 4000, "reason": 1000, "public_text": 500}
TEXT_FIELDS = ("description", "location", "risk_assessment", "responsible_unit",
               "responsible_person", "measures", "contingency_plan", "interim_measures",
               "supervision_by")


class SamePerson(Forbidden):
    code = "same_person"
    message = N_("The acceptance check must be done by someone other than the person who "
                 "opened or handles this record or recorded the fix.")


# ---------------------------------------------------------------------------- dates and money


# Deadlines, acceptance and write-off are calendar dates in the installation's time zone.
def today(now: dt.datetime | None = None) -> dt.date:
    return localtime.today(now or utcnow())


def local_date(moment: dt.datetime) -> dt.date:
    return localtime.local(moment).date()


def week_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    """Monday and Sunday of the ISO week of ``day``."""
    monday = day - dt.timedelta(days=day.weekday())
    return monday, monday + dt.timedelta(days=6)


def parse_yuan(raw: Any) -> int | None:
    """Funds typed in yuan -> fen by the one money parser; '' -> None."""
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    try:
        return parse_amount(text)
    except AmountError:
        raise InvalidInput(N_("Enter the funds in yuan: digits (thousands may be grouped with "
                              "commas, as in 20,000.50), at most two decimals."),
                           code="funds") from None


def parse_date(raw: Any) -> dt.date | None:
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(N_("Enter a date as YYYY-MM-DD."), code="date") from None


def is_overdue(record: Rectification, on: dt.date | None = None) -> bool:
    return (record.state in OPEN_STATES and record.deadline is not None
            and record.deadline < (on or today()))


def needs_explanation(record: Rectification, on: dt.date | None = None) -> bool:
    """Overdue, and no written explanation for the deadline that ran out."""
    return is_overdue(record, on) and record.explained_deadline != record.deadline


def number(record: Rectification) -> str:
    return f"ZG-{record.found_on.year}-{record.id:04d}"


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


def _text(params: Mapping[str, Any], name: str, *, required: bool = False,
          message: str = N_("Fill in this field."), limit_name: str | None = None) -> str:
    raw = params.get(name)
    value = str(raw if raw is not None else "").strip().replace("\r\n", "\n")
    limit = LIMITS[limit_name or name]
    if len(value) > limit:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=limit)
    if required and not value:
        raise InvalidInput(message, code="required")
    return value


def _flag(params: Mapping[str, Any], name: str) -> bool:
    return str(params.get(name) or "").strip().lower() in ("1", "on", "true", "yes")


_int = statemachine.as_int


def channel_reviewer(session: Session, channel_id: int, raw: Any) -> User | None:
    """An active reviewer of the channel named by id, or None for an empty choice."""
    if raw in (None, ""):
        return None
    user_id = _int(raw)
    user = next((u for u in cases.channel_reviewers(session, channel_id) if u.id == user_id),
                None)
    if user is None:
        raise InvalidInput(N_("Choose a reviewer of this reporting line."), code="owner")
    return user


def parse_fields(session: Session, channel_id: int, params: Mapping[str, Any],
                 now: dt.datetime, current: dt.date | None = None) -> dict[str, Any]:
    """The record's facts from a form; every field is sent, a missing box means "no"."""
    values: dict[str, Any] = {name: _text(params, name) for name in TEXT_FIELDS}
    if not values["description"]:
        raise InvalidInput(N_("Describe the hazard in your own words (not the report's text)."),
                           code="description_required")
    values["funds_fen"] = parse_yuan(params.get("funds"))
    deadline = parse_date(params.get("deadline"))
    if deadline is not None and deadline != current and deadline < today(now):
        raise InvalidInput(N_("The deadline cannot be in the past."), code="deadline_past")
    values["deadline"] = deadline
    values["work_stopped"] = _flag(params, "work_stopped")
    values["listed_supervision"] = _flag(params, "listed_supervision")
    if values["listed_supervision"] and not values["supervision_by"]:
        raise InvalidInput(N_("Name the body that lists the hazard for supervision."),
                           code="supervision_by")
    if not values["listed_supervision"]:
        values["supervision_by"] = ""
    owner = channel_reviewer(session, channel_id, params.get("owner"))
    values["owner_id"] = owner.id if owner else None
    return values


# ---------------------------------------------------------------------------- linked cases


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


def _case_can_join(case: Case) -> bool:
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
    """Evidence files named by the form: complete, sealed by a reviewer for a linked case,
    attached nowhere yet."""
    raw_ids = move.params.get("files") or []
    raw_phases = move.params.get("phases") or []
    if isinstance(raw_ids, str):
        raw_ids = [raw_ids]
    if isinstance(raw_phases, str):
        raw_phases = [raw_phases]
    ids, phases = [str(v) for v in raw_ids if v], [str(v) for v in raw_phases]
    if len(ids) > move.settings.max_files:
        raise TooLarge(N_("At most {count} files can be attached."),
                       count=move.settings.max_files)
    if len(set(ids)) != len(ids) or len(phases) not in (0, len(ids)):
        raise Malformed("files")
    linked = {c.id for c in linked_cases(move.session, move.record)}
    chosen = []
    for index, file_id in enumerate(ids):
        phase = phases[index] if phases else "after"
        if phase not in PHASES:
            raise InvalidInput(N_("Mark each file as before or after rectification."),
                               code="phase")
        stored = move.session.get(StoredFile, file_id) if intake.ID.match(file_id) else None
        if (stored is None or stored.case_id not in linked or stored.author != "reviewer"
                or not stored.complete
                or move.session.get(RectificationFile, file_id) is not None):
            raise InvalidInput(N_("An evidence file is missing or was not fully uploaded."),
                               code="file_unknown")
        chosen.append((stored, phase))
    return chosen


def _check_on_spot(move: Move) -> None:
    params = move.params
    who = _text(params, "responsible_person", required=True,
                message=N_("Name who removed the hazard."))
    unit = _text(params, "responsible_unit")
    how = _text(params, "measures", required=True,
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
                       text=_text(params, "text"))


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
    text = _text(move.params, "text")
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
    move.values.update(deadline=new, reason=_text(
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
    move.values["text"] = _text(move.params, "text", required=True,
                                message=N_("Write the explanation."), limit_name="text")


def _explain(move: Move) -> None:
    move.record.explained_deadline = move.record.deadline
    _entry(move, "explanation", text=move.values["text"], deadline_before=move.record.deadline)
    move.events.append(("rectification_explained", False, _ref(move)))


def _check_request(move: Move) -> None:
    if needs_explanation(move.record, move.today):
        raise InvalidInput(N_("This record is overdue: give a written explanation first."),
                           code="explanation_needed")
    move.values["text"] = _text(move.params, "text")


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
    note = _text(move.params, "text", required=result == "fail",
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
    move.values["text"] = _text(move.params, "public_text", required=True,
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
            or not _case_can_join(case)):
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


# ---------------------------------------------------------------------------- opening


def can_open(case: Case) -> bool:
    return _case_can_join(case)


def open_record(session: Session, settings: Settings, case: Case, actor: User,
                params: Mapping[str, Any], now: dt.datetime | None = None) -> Rectification:
    """A new record for a verified (true or partly true) hazard, opened by a reviewer of the
    case's channel. A further record of the same case is another item of the rectification."""
    if not actor.has_role("reviewer") or case.channel_id not in cases.case_channels(
            session, actor):
        raise Forbidden()
    if not _case_can_join(case):
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


# ---------------------------------------------------------------------------- access, lists


def get_record(session: Session, database: Database | None, user: User,
               record_id: Any) -> Rectification:
    """The record if ``user`` holds a case role in its channel; else the 404 of an unknown id,
    audited."""
    number_ = _int(record_id)
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


# ---------------------------------------------------------------------------- evidence files
# Sealed in the reviewer's browser with a linked case's key, exactly like a reporter's file
# (docs/PROTOCOL.md, STREAM): the server checks form and size, never sees the content.


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
