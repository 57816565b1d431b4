"""Spreadsheets auditors can use: one writer for the hazard ledger, the reward exports and
the audit trail.

A column has a kind: text, a whole number, an amount in yuan (a number with two decimals and
the 0.00 format; the exact fen stay in a column of their own), a date or a date-time (real
date cells, not text). The XLSX gets column widths, a frozen header row and an auto-filter;
the CSV carries the same values written out (amounts as 1234.50, dates as ISO 8601).

Text that a spreadsheet would run as a formula is quoted in both.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from service.platform.i18n import Catalogs

# Spreadsheet programs run a cell that starts with these as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # Excel then reads the CSV as UTF-8 (Chinese otherwise comes out garbled)
FORMATS = {"yuan": "0.00", "date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm:ss",
           "int": "0"}


@dataclass(frozen=True)
class Column:
    header: str
    width: float = 14
    kind: str = "text"  # text | int | yuan | date | datetime
    wrap: bool = False


def safe_text(value: str | None) -> str:
    text = value or ""
    return "'" + text if text.startswith(FORMULA_START) else text


def yuan(fen: int | None) -> Decimal | None:
    """Fen as an exact yuan amount with two decimals."""
    return None if fen is None else Decimal(fen).scaleb(-2).quantize(Decimal("0.01"))


def cell_text(value: Any) -> str:
    """The CSV form of a value (what the XLSX cell holds, written out)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return safe_text(value)
    return str(value)


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]],
               batch: int = 1000) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow([safe_text(h) for h in header])
    pending = 0
    for row in rows:
        writer.writerow([cell_text(value) for value in row])
        pending += 1
        if pending >= batch:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode("utf-8")


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # A spreadsheet cell has no zone; the header names it.
        return value.replace(tzinfo=None)
    return value


def write_xlsx(handle: IO[bytes], title: str, columns: Sequence[Column],
               header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write the workbook (write-only: row by row, flat memory) to ``handle``; rows written."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31] or "Sheet1")
    for index, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    top = Alignment(vertical="top", wrap_text=True)
    heads = []
    for text in header:
        cell = WriteOnlyCell(sheet, value=safe_text(text))
        cell.font = bold
        cell.alignment = top
        heads.append(cell)
    sheet.append(heads)
    wrap = Alignment(vertical="top", wrap_text=True)
    count = 0
    for row in rows:
        cells = []
        for column, value in zip(columns, row, strict=True):
            cell = WriteOnlyCell(sheet, value=_xlsx_value(value))
            if column.kind in FORMATS and value is not None:
                cell.number_format = FORMATS[column.kind]
            if column.wrap:
                cell.alignment = wrap
            cells.append(cell)
        sheet.append(cells)
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
    book.save(handle)
    return count


@functools.lru_cache(maxsize=1)
def _catalogs() -> Catalogs:
    return Catalogs.load()


def translate(language: str, message: str) -> str:
    """A message in a given language, for files made outside a page (exports, the command
    line)."""
    return _catalogs().gettext(language)(message)
