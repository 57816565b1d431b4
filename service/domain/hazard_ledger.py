"""The hazard ledger (隐患台账) and its statistics, for one channel and one period.

Rows are the customary columns (docs/RULES.md, rectification): found when and where, by whom
(the reporting line and case numbers, never the reporter), grade, the reviewer's own
description (never the sealed report), risk assessment, measures, funds, deadline,
contingency plan, responsible person, progress, before/after evidence, acceptance inspector
and date, closure date.

CSV starts with a UTF-8 byte-order mark so Excel opens Chinese correctly; XLSX is written by
openpyxl in write-only mode, row by row, into a spooled temporary file that is then streamed.

Statistics follow the hazards found in the period (a cohort): how many, by grade, how many
passed acceptance on or before their deadline, how many are overdue (passed late, or still open
after the deadline) and how many are still open.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain import rectification, rectification_facts, rectification_records, sheets
from service.domain.labels import LIST_SEPARATOR
from service.domain.models import Case, Channel, HazardCriterion
from service.domain.models.rectification import (
    Rectification,
    RectificationCase,
    RectificationEntry,
    RectificationFile,
)
from service.platform.errors import InvalidInput
from service.platform.i18n import N_

# (header, kind, width): kinds and widths as service/domain/sheets.py writes them.
COLUMN_SPECS = (
    (N_("No."), "text", 14), (N_("Found on"), "date", 12), (N_("Where found"), "text", 24),
    (N_("Found by (reporting line, case)"), "text", 28), (N_("Hazard grade"), "text", 14),
    (N_("Major-hazard criterion (2023)"), "text", 36),
    (N_("Hazard description"), "text", 36), (N_("Risk assessment"), "text", 28),
    (N_("Measures"), "text", 32), (N_("Funds (yuan)"), "yuan", 14),
    (N_("Funds (fen)"), "int", 14), (N_("Deadline"), "date", 12),
    (N_("Contingency plan"), "text", 24), (N_("Responsible unit"), "text", 20),
    (N_("Responsible person"), "text", 14), (N_("Interim measures"), "text", 24),
    (N_("Work stopped"), "text", 10), (N_("Listed supervision"), "text", 18),
    (N_("Progress"), "text", 48), (N_("Photos before"), "text", 30),
    (N_("Photos after"), "text", 30), (N_("Acceptance inspector"), "text", 16),
    (N_("Acceptance date"), "date", 12), (N_("Closure date"), "date", 12),
    (N_("State"), "text", 18), (N_("Overdue"), "text", 8),
)
COLUMNS = tuple(header for header, _, _ in COLUMN_SPECS)
GRADE_LABELS = {"general": N_("General hazard"), "major": N_("Major accident hazard")}
# What the photo cells say: the files are sealed, so their number and dates, and where to
# open them.
PHOTOS = N_("{count} files, added {dates}; sealed, open them on the record's page")
NO_PHOTOS = N_("none")
CRITERION = N_("Art. {article} item {item}")
PERIOD = re.compile(r"^(\d{4})(?:-(Q[1-4]|\d{2}))?$")
MAX_ROWS = 100_000


@dataclass(frozen=True)
class Period:
    label: str
    start: dt.date
    end: dt.date  # inclusive


def parse_period(text: str, start: str = "", end: str = "") -> Period:
    """'2025', '2025-Q2', '2025-06', or explicit first and last days."""
    if start or end:
        first = rectification_facts.parse_date(start)
        last = rectification_facts.parse_date(end)
        if first is None or last is None or last < first or (last - first).days > 3660:
            raise InvalidInput(N_("Choose a period: a year, a quarter, a month or two dates."),
                               code="period")
        return Period(f"{first.isoformat()}_{last.isoformat()}", first, last)
    match = PERIOD.match(text.strip())
    if match is None or not 2000 <= int(match.group(1)) <= 2100:
        raise InvalidInput(N_("Choose a period: a year, a quarter, a month or two dates."),
                           code="period")
    year, part = int(match.group(1)), match.group(2)
    if part is None:
        return Period(str(year), dt.date(year, 1, 1), dt.date(year, 12, 31))
    if part.startswith("Q"):
        quarter = int(part[1])
        first = dt.date(year, 3 * quarter - 2, 1)
    else:
        month = int(part)
        if not 1 <= month <= 12:
            raise InvalidInput(N_("Choose a period: a year, a quarter, a month or two dates."),
                               code="period")
        first = dt.date(year, month, 1)
    months = 3 if part.startswith("Q") else 1
    following = dt.date(first.year + (first.month + months - 1) // 12,
                        (first.month + months - 1) % 12 + 1, 1)
    return Period(f"{year}-{part}", first, following - dt.timedelta(days=1))


def period_choices(on: dt.date) -> list[str]:
    """This year and last: years, quarters, months (newest first)."""
    choices = []
    for year in (on.year, on.year - 1):
        choices.append(str(year))
        choices += [f"{year}-Q{q}" for q in range(4, 0, -1) if dt.date(year, 3 * q - 2, 1) <= on]
        choices += [f"{year}-{m:02d}" for m in range(12, 0, -1) if dt.date(year, m, 1) <= on]
    return choices


# ---------------------------------------------------------------------------- rows


def records_found(session: Session, channel_id: int, start: dt.date,
                  end: dt.date) -> list[tuple[Rectification, Case]]:
    rows = session.execute(
        select(Rectification, Case).join(Case, Case.id == Rectification.case_id)
        .where(Rectification.channel_id == channel_id, Rectification.found_on >= start,
               Rectification.found_on <= end)
        .order_by(Rectification.found_on, Rectification.id).limit(MAX_ROWS))
    return [(row[0], row[1]) for row in rows]


def sheet_columns(translate: Callable[..., str]) -> list[sheets.Column]:
    return [sheets.Column(translate(header), width, kind, wrap=kind == "text")
            for header, kind, width in COLUMN_SPECS]


def ledger_rows(session: Session, channel: Channel, period: Period,
                translate: Callable[..., str], on: dt.date | None = None,
                language: str = "zh_CN") -> Iterator[list[Any]]:
    """One list of values per record found in the period (text, dates, yuan, fen)."""
    on = on or rectification_facts.today()
    found = records_found(session, channel.id, period.start, period.end)
    ids = [record.id for record, _ in found]
    links: dict[int, list[str]] = {}
    progress: dict[int, list[str]] = {}
    photos: dict[tuple[int, str], list[dt.date]] = {}
    if ids:
        for link in session.scalars(select(RectificationCase).where(
                RectificationCase.rectification_id.in_(ids))
                .order_by(RectificationCase.linked_at, RectificationCase.case_id)):
            links.setdefault(link.rectification_id, []).append(link.case_id[:8])
        for entry in session.scalars(select(RectificationEntry).where(
                RectificationEntry.rectification_id.in_(ids),
                RectificationEntry.kind.in_(("on_the_spot", "progress", "extension",
                                              "explanation")))
                .order_by(RectificationEntry.id)):
            day = rectification_facts.local_date(entry.created_at).isoformat()
            label = translate(rectification.ENTRY_LABELS[entry.kind])
            progress.setdefault(entry.rectification_id, []).append(
                f"{day} {label}: {entry.text}".strip().rstrip(":"))
        for file in session.scalars(select(RectificationFile).where(
                RectificationFile.rectification_id.in_(ids))
                .order_by(RectificationFile.file_id)):
            photos.setdefault((file.rectification_id, file.phase), []).append(
                rectification_facts.local_date(file.created_at))
    people = rectification_records.users_by_id(session, [r.accepted_by for r, _ in found])
    name = channel.name_en if language == "en" and channel.name_en else channel.name_zh
    yes, no = translate(N_("yes")), translate(N_("no"))
    case_word = translate(N_("case"))

    criteria = {item.id: item for item in session.scalars(select(HazardCriterion).where(
        HazardCriterion.id.in_({case.criterion_id for _, case in found if case.criterion_id})))}
    separator = translate(LIST_SEPARATOR)

    def photo_cell(record_id: int, phase: str) -> str:
        days = photos.get((record_id, phase), [])
        if not days:
            return translate(NO_PHOTOS)
        return translate(PHOTOS, count=len(days),
                         dates=separator.join(sorted({day.isoformat() for day in days})))

    def criterion_cell(case: Case) -> str:
        item = criteria.get(case.criterion_id or 0)
        if item is None:
            return ""
        return f"{translate(CRITERION, article=item.article, item=item.item_no)} · {item.title}"

    for record, case in found:
        inspector = people.get(record.accepted_by or 0)
        supervision = (f"{yes} ({record.supervision_by})" if record.listed_supervision else no)
        yield [
            rectification_facts.number(record),
            record.found_on,
            record.location,
            f"{name} · {case_word} {', '.join(links.get(record.id, []))}",
            translate(GRADE_LABELS[case.grade]) if case.grade in GRADE_LABELS else "",
            criterion_cell(case),
            record.description,
            record.risk_assessment,
            record.measures,
            sheets.yuan(record.funds_fen),
            record.funds_fen,
            record.deadline,
            record.contingency_plan,
            record.responsible_unit,
            record.responsible_person,
            record.interim_measures,
            yes if record.work_stopped else no,
            supervision,
            "\n".join(progress.get(record.id, [])),
            photo_cell(record.id, "before"),
            photo_cell(record.id, "after"),
            (inspector.display_name or inspector.username) if inspector else "",
            record.accepted_on,
            rectification_facts.local_date(record.closed_at) if record.closed_at else None,
            translate(rectification_facts.STATE_LABELS[record.state]),
            yes if _late(record, on) else no,
        ]


def _late(record: Rectification, on: dt.date) -> bool:
    if record.deadline is None:
        return False
    if record.accepted_on is not None:
        return record.accepted_on > record.deadline
    return record.deadline < on


def csv_chunks(columns: list[sheets.Column], rows: Iterator[list[Any]]) -> Iterator[bytes]:
    return sheets.csv_chunks([column.header for column in columns], rows)


def xlsx_file(columns: list[sheets.Column], rows: Iterator[list[Any]], title: str) -> Any:
    """The workbook in a spooled temporary file (rewound), written row by row."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - streamed, closed by the caller
    sheets.write_xlsx(spool, title or "ledger", columns, [c.header for c in columns], rows)
    spool.seek(0)
    return spool


def iter_file(handle: Any, size: int = 64 * 1024) -> Iterator[bytes]:
    try:
        while chunk := handle.read(size):
            yield chunk
    finally:
        handle.close()


# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Counts:
    found: int = 0
    general: int = 0
    major: int = 0
    ungraded: int = 0
    on_time: int = 0
    overdue: int = 0
    open: int = 0


def cohort_counts(session: Session, channel_id: int, start: dt.date, end: dt.date,
                  on: dt.date | None = None) -> Counts:
    """The hazards found from ``start`` to ``end`` and what became of them by ``on``."""
    on = on or rectification_facts.today()
    found = records_found(session, channel_id, start, end)
    general = sum(1 for _, case in found if case.grade == "general")
    major = sum(1 for _, case in found if case.grade == "major")
    # A hazard removed on the spot and accepted has no deadline to miss: on time.
    on_time = sum(1 for record, _ in found if record.accepted_on is not None
                  and (record.on_the_spot or (record.deadline is not None
                                              and record.accepted_on <= record.deadline)))
    overdue = sum(1 for record, _ in found if _late(record, on))
    still_open = sum(1 for record, _ in found if record.state in rectification_facts.OPEN_STATES)
    return Counts(len(found), general, major, len(found) - general - major, on_time, overdue,
                  still_open)


def yearly(session: Session, channel_id: int, year: int,
           on: dt.date | None = None) -> list[tuple[str, Counts]]:
    """Q1..Q4 and the whole year."""
    rows = []
    for quarter in range(1, 5):
        period = parse_period(f"{year}-Q{quarter}")
        rows.append((f"Q{quarter}", cohort_counts(session, channel_id, period.start,
                                                  period.end, on)))
    rows.append((str(year), cohort_counts(session, channel_id, dt.date(year, 1, 1),
                                          dt.date(year, 12, 31), on)))
    return rows


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    value: int
    series: str


SERIES = (("found", N_("Found")), ("on_time", N_("Rectified on time")),
          ("overdue", N_("Overdue")), ("open", N_("Still open")))


def chart(rows: list[tuple[str, Counts]], height: int = 200) -> dict[str, Any]:
    """Geometry of a grouped bar chart (one group per quarter) for an inline SVG."""
    quarters = rows[:4]
    top = max([getattr(c, key) for _, c in quarters for key, _ in SERIES] + [1])
    bar, gap, group_gap, left = 18, 4, 28, 40
    bars, labels = [], []
    for index, (label, counts) in enumerate(quarters):
        x0 = left + index * (len(SERIES) * (bar + gap) + group_gap)
        labels.append((x0 + (len(SERIES) * (bar + gap)) // 2, label))
        for position, (key, _) in enumerate(SERIES):
            value = getattr(counts, key)
            size = round(value * height / top)
            bars.append(Bar(x0 + position * (bar + gap), 10 + height - size, bar, size, value,
                            key))
    width = left + 4 * (len(SERIES) * (bar + gap) + group_gap)
    return {"bars": bars, "labels": labels, "width": width, "height": height + 40,
            "base": 10 + height, "top": top, "left": left, "series": SERIES}

