"""A QC series from CSV (`run,level,value[,time]`), pure: text in, rows or a located error out."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime

REQUIRED = ("run", "level", "value")
OPTIONAL = ("time",)


class SeriesError(ValueError):
    """A bad line: its number (1 = the header), the column, and a catalogue key with a detail."""

    def __init__(self, line: int, column: str, key: str, detail: str = "") -> None:
        super().__init__(line, column, key, detail)
        self.line, self.column, self.key, self.detail = line, column, key, detail

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.key} {self.detail}".strip()


@dataclass(frozen=True)
class Row:
    """One control value: the line it came from, the run, the level, the value, the time."""

    line: int
    run: str
    level: str
    value: float
    time: datetime | None


def parse_series(text: str) -> list[Row]:
    """The rows of a series in file order; SeriesError names the first bad line and column."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise SeriesError(1, "run", "qc.series.empty")
    names = [h.strip().lower() for h in header]
    for column in REQUIRED:
        if column not in names:
            raise SeriesError(1, column, "qc.series.missing_column")
    for column in names:
        if column not in REQUIRED + OPTIONAL:
            raise SeriesError(1, column, "qc.series.unknown_column")
    where = {name: names.index(name) for name in names}
    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    for line, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue  # blank lines are allowed
        if len(fields) != len(names):
            raise SeriesError(line, names[min(len(fields), len(names) - 1)], "qc.series.fields")
        cell = {name: fields[i].strip() for name, i in where.items()}
        for column in ("run", "level"):
            if not cell[column]:
                raise SeriesError(line, column, "qc.series.blank")
        value = _number(cell["value"], line)
        time = _time(cell["time"], line) if cell.get("time") else None
        key = (cell["run"], cell["level"])
        if key in seen:
            raise SeriesError(line, "level", "qc.series.duplicate", str(seen[key]))
        seen[key] = line
        rows.append(Row(line, cell["run"], cell["level"], value, time))
    return rows


def _number(raw: str, line: int) -> float:
    try:
        value = (
            float(raw.replace(",", ".")) if raw.count(",") == 1 and "." not in raw else float(raw)
        )
    except ValueError:
        raise SeriesError(line, "value", "qc.series.not_number", raw) from None
    if not math.isfinite(value):
        raise SeriesError(line, "value", "qc.series.not_number", raw)
    return value


def _time(raw: str, line: int) -> datetime:
    try:
        stamp = datetime.fromisoformat(raw)
    except ValueError:
        raise SeriesError(line, "time", "qc.series.bad_time", raw) from None
    if stamp.tzinfo is None:
        raise SeriesError(line, "time", "qc.series.naive_time", raw)
    return stamp
