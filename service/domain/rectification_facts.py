"""A rectification record's vocabulary and facts: its states, the fields and evidence files
its forms send (parsed and checked), its calendar dates, funds and number.

The lowest of the rectification modules: the state machine (service/domain/rectification.py),
opening and the case's side (rectification_cases.py) and the lists and evidence uploads
(rectification_records.py) all read the record through these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from service.domain import cases, intake, statemachine
from service.domain.models import StoredFile, User, utcnow
from service.domain.models.rectification import Rectification, RectificationFile
from service.domain.rewards.money import AmountError, parse_amount
from service.platform import localtime
from service.platform.errors import InvalidInput, Malformed, TooLarge
from service.platform.i18n import N_

STATES = ("opened", "in_progress", "awaiting_acceptance", "accepted", "closed")
OPEN_STATES = ("opened", "in_progress", "awaiting_acceptance")
STATE_LABELS = {
    "opened": N_("Opened (measures not decided yet)"),
    "in_progress": N_("Being rectified"),
    "awaiting_acceptance": N_("Waiting for the acceptance check"),
    "accepted": N_("Passed the acceptance check"),
    "closed": N_("Written off"),
}
LIMITS = {"description": 2000, "location": 300, "risk_assessment": 2000,
          "responsible_unit": 200, "responsible_person": 200, "measures": 4000,
          "contingency_plan": 4000, "interim_measures": 2000, "supervision_by": 200,
          "text": 4000, "reason": 1000, "public_text": 500}
PHASES = {"before": N_("Before rectification"), "after": N_("After rectification")}
TEXT_FIELDS = ("description", "location", "risk_assessment", "responsible_unit",
               "responsible_person", "measures", "contingency_plan", "interim_measures",
               "supervision_by")


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



# ---------------------------------------------------------------------------- form fields


def text_field(params: Mapping[str, Any], name: str, *, required: bool = False,
               message: str = N_("Fill in this field."), limit_name: str | None = None) -> str:
    raw = params.get(name)
    value = str(raw if raw is not None else "").strip().replace("\r\n", "\n")
    limit = LIMITS[limit_name or name]
    if len(value) > limit:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=limit)
    if required and not value:
        raise InvalidInput(message, code="required")
    return value


def flag(params: Mapping[str, Any], name: str) -> bool:
    return str(params.get(name) or "").strip().lower() in ("1", "on", "true", "yes")


def channel_reviewer(session: Session, channel_id: int, raw: Any) -> User | None:
    """An active reviewer of the channel named by id, or None for an empty choice."""
    if raw in (None, ""):
        return None
    user_id = statemachine.as_int(raw)
    user = next((u for u in cases.channel_reviewers(session, channel_id) if u.id == user_id),
                None)
    if user is None:
        raise InvalidInput(N_("Choose a reviewer of this reporting line."), code="owner")
    return user


def parse_fields(session: Session, channel_id: int, params: Mapping[str, Any],
                 now: dt.datetime, current: dt.date | None = None) -> dict[str, Any]:
    """The record's facts from a form; every field is sent, a missing box means "no"."""
    values: dict[str, Any] = {name: text_field(params, name) for name in TEXT_FIELDS}
    if not values["description"]:
        raise InvalidInput(N_("Describe the hazard in your own words (not the report's text)."),
                           code="description_required")
    values["funds_fen"] = parse_yuan(params.get("funds"))
    deadline = parse_date(params.get("deadline"))
    if deadline is not None and deadline != current and deadline < today(now):
        raise InvalidInput(N_("The deadline cannot be in the past."), code="deadline_past")
    values["deadline"] = deadline
    values["work_stopped"] = flag(params, "work_stopped")
    values["listed_supervision"] = flag(params, "listed_supervision")
    if values["listed_supervision"] and not values["supervision_by"]:
        raise InvalidInput(N_("Name the body that lists the hazard for supervision."),
                           code="supervision_by")
    if not values["listed_supervision"]:
        values["supervision_by"] = ""
    owner = channel_reviewer(session, channel_id, params.get("owner"))
    values["owner_id"] = owner.id if owner else None
    return values


def evidence_files(session: Session, params: Mapping[str, Any], max_files: int,
                   linked: set[str]) -> list[tuple[StoredFile, str]]:
    """Evidence files named by a form, each with its phase: complete, sealed by a reviewer for
    one of the ``linked`` cases, attached nowhere yet."""
    raw_ids = params.get("files") or []
    raw_phases = params.get("phases") or []
    if isinstance(raw_ids, str):
        raw_ids = [raw_ids]
    if isinstance(raw_phases, str):
        raw_phases = [raw_phases]
    ids, phases = [str(v) for v in raw_ids if v], [str(v) for v in raw_phases]
    if len(ids) > max_files:
        raise TooLarge(N_("At most {count} files can be attached."), count=max_files)
    if len(set(ids)) != len(ids) or len(phases) not in (0, len(ids)):
        raise Malformed("files")
    chosen = []
    for index, file_id in enumerate(ids):
        phase = phases[index] if phases else "after"
        if phase not in PHASES:
            raise InvalidInput(N_("Mark each file as before or after rectification."),
                               code="phase")
        stored = session.get(StoredFile, file_id) if intake.ID.match(file_id) else None
        if (stored is None or stored.case_id not in linked or stored.author != "reviewer"
                or not stored.complete
                or session.get(RectificationFile, file_id) is not None):
            raise InvalidInput(N_("An evidence file is missing or was not fully uploaded."),
                               code="file_unknown")
        chosen.append((stored, phase))
    return chosen
