"""The deviation register's export: CSV (``;``, UTF-8 with BOM, as Excel in Norway opens it)
and XLSX (openpyxl), for the practice meeting (a period's deviations) and the annual quality
review (a year; the second sheet counts them per category, kind and state).

The columns (``COLUMNS``, in this order, named as here in both languages: the file is read by
people and scripts alike): id, created_at, kind, category, responsible_function, instrument,
summary, detail, immediate_action, cause, corrective_action, corrective_action_needed (yes/no),
state, created_by, updated_by, updated_at, closed_by, closed_at. Times are the site's
(Europe/Oslo) wall-clock time, ``YYYY-MM-DD HH:MM:SS``; XLSX holds them as date-time cells.

The rows come scrubbed (``gateway.privacy.scrub_deviations``: a national ID inside a text is
masked). A text that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``) gets a leading apostrophe in the CSV and is stored as text in the XLSX.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

COLUMNS: Final = (
    "id",
    "created_at",
    "kind",
    "category",
    "responsible_function",
    "instrument",
    "summary",
    "detail",
    "immediate_action",
    "cause",
    "corrective_action",
    "corrective_action_needed",
    "state",
    "created_by",
    "updated_by",
    "updated_at",
    "closed_by",
    "closed_at",
)
#: the row dict's key of each column where it differs (``gateway.store.deviations.as_dict``)
_SOURCE: Final = {"responsible_function": "responsible"}
_TIMES: Final = frozenset({"created_at", "updated_at", "closed_at"})
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
#: the second sheet's groupings
SUMMARY_KEYS: Final = ("category", "kind", "state")


class PeriodError(ValueError):
    """A period that cannot be read (the text says which field)."""


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days ``first`` to ``last`` inclusive, in the site's time zone."""

    first: date
    last: date

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[since, until) as aware datetimes: the first day's midnight to the day after last."""
        since = datetime.combine(self.first, time(), zone)
        until = datetime.combine(self.last + timedelta(days=1), time(), zone)
        return since, until

    @property
    def label(self) -> str:
        if self.first == date(self.first.year, 1, 1) and self.last == date(self.first.year, 12, 31):
            return str(self.first.year)
        return f"{self.first.isoformat()}_{self.last.isoformat()}"


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise PeriodError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from exc


def period_of(first: str = "", last: str = "", year: str = "", *, today: date) -> Period:
    """The period asked for: ``year`` (a whole year), or ``first``..``last`` (either may be
    left out: from the first deviation's year start / up to today). Nothing: this year."""
    if year.strip():
        if first.strip() or last.strip():
            raise PeriodError("year: give a year or from/to, not both")
        if not year.strip().isdigit() or not 2000 <= int(year) <= 2100:
            raise PeriodError(f"year: {year!r} is not a year")
        number = int(year)
        return Period(date(number, 1, 1), date(number, 12, 31))
    if not first.strip() and not last.strip():
        return Period(date(today.year, 1, 1), date(today.year, 12, 31))
    start = _day(first, "from") if first.strip() else date(2000, 1, 1)
    end = _day(last, "to") if last.strip() else today
    if end < start:
        raise PeriodError("to: the period ends before it starts")
    return Period(start, end)


def _local(value: str, zone: ZoneInfo) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(zone).replace(tzinfo=None)


def _cell(row: Mapping[str, Any], column: str, zone: ZoneInfo) -> Any:
    """A column's value: times as local naive datetimes, yes/no, text as stored."""
    value = row.get(_SOURCE.get(column, column))
    if column in _TIMES:
        return _local(str(value or ""), zone)
    if column == "corrective_action_needed":
        return "yes" if value else "no"
    return "" if value is None else value


def table(rows: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> list[list[Any]]:
    """The rows as the export's cells (header not included)."""
    return [[_cell(row, column, zone) for column in COLUMNS] for row in rows]


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime(TIME_FORMAT)
    shown = str(value)
    return "'" + shown if shown.startswith(_FORMULA_START) else shown


def to_csv(rows: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> bytes:
    """The CSV file: UTF-8 with BOM, ``;`` between fields, CRLF lines, the header first."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for cells in table(rows, zone):
        writer.writerow([_csv_text(v) for v in cells])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def summary(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """(grouping, value, count) per category, kind and state: the review's second sheet."""
    found: list[tuple[str, str, int]] = []
    for key in SUMMARY_KEYS:
        counts: dict[str, int] = {}
        for row in rows:
            counts[str(row.get(key, ""))] = counts.get(str(row.get(key, "")), 0) + 1
        found.extend((key, value, n) for value, n in sorted(counts.items()))
    return found


def to_xlsx(
    rows: Sequence[Mapping[str, Any]],
    zone: ZoneInfo,
    *,
    period: Period,
    site: str = "",
) -> bytes:
    """The XLSX workbook: sheet "deviations" (the columns), sheet "summary" (counts per
    category, kind and state over the period, with the period and the site on top)."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "deviations"
    sheet.append(list(COLUMNS))
    for cells in table(rows, zone):
        sheet.append(cells)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            elif isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text, never a formula
    sheet.freeze_panes = "A2"
    for index, column in enumerate(COLUMNS, 1):
        wide = column in {"summary", "detail", "immediate_action", "cause", "corrective_action"}
        sheet.column_dimensions[get_column_letter(index)].width = 40 if wide else 16
    counts = book.create_sheet("summary")
    counts.append(["site", site])
    counts.append(["from", period.first.isoformat()])
    counts.append(["to", period.last.isoformat()])
    counts.append(["deviations", len(rows)])
    counts.append([])
    counts.append(["grouping", "value", "count"])
    for grouping, value, n in summary(rows):
        counts.append([grouping, value, n])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def filename(period: Period, extension: str) -> str:
    """``avvik_2026.xlsx``, ``avvik_2026-01-01_2026-03-31.csv``."""
    return f"avvik_{period.label}.{extension}"
