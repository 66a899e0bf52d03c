"""Noklus-style exports of internal QC and EQA per instrument and period: the columns, the
rows (from the store's records and the config), and the two file formats, CSV and XLSX.

The columns are documented in README ("QC and EQA exports (Noklus)"); a test compares that
list with ``QC_COLUMNS`` and ``EQA_COLUMNS`` so the two cannot drift.

CSV is written for Norwegian Excel: UTF-8 with a byte-order mark (so æøå open right), ``;``
between fields and a decimal comma (``--decimal point`` for a full stop). XLSX cells are
typed: numbers are numbers, times are date-times in the site's zone (Europe/Oslo: Excel has no
time zones), everything else text. A text cell that Excel would run as a formula (it begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from gateway.config import Config, QcConfig, TestConfig

#: internal QC: one row per control value
QC_COLUMNS: Final = (
    "site",
    "noklus_participant",
    "instrument_id",
    "instrument_model",
    "instrument_serial",
    "analyte",
    "nlk_code",
    "control_material",
    "lot",
    "level",
    "performed_at",
    "value",
    "unit",
    "target_mean",
    "target_sd",
    "limit_low",
    "limit_high",
    "rule_result",
    "violations",
    "operator",
    "corrective_action",
)
#: EQA: one row per sample and test of a round
EQA_COLUMNS: Final = (
    "site",
    "noklus_participant",
    "instrument_id",
    "instrument_model",
    "instrument_serial",
    "scheme",
    "shipment",
    "sample",
    "analyte",
    "value",
    "unit",
    "target_value",
    "trueness",
    "accuracy",
    "precision",
    "answered_at",
    "answered_by",
    "assessed_at",
)
COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {"qc": QC_COLUMNS, "eqa": EQA_COLUMNS}

Kind = Literal["qc", "eqa"]
Decimals = Literal["comma", "point"]
Cell = str | Decimal | datetime | None
Row = dict[str, Cell]

#: control limits when the test has no fixed allowed deviation: the 2 SD (1-2s) limits
LIMIT_SD: Final = Decimal(2)
CSV_TIME: Final = "%Y-%m-%d %H:%M:%S"
XLSX_TIME: Final = "yyyy-mm-dd hh:mm:ss"
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def period_bounds(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The period from ``first`` to ``last`` (whole days in the site's zone, both included) as
    [start, end) aware datetimes."""
    start = datetime.combine(first, time(0), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


def find_test(config: Config, instrument_id: str, code: str) -> TestConfig | None:
    """The `[[tests]]` entry for ``code`` on ``instrument_id`` (its own first, then "")."""
    for wanted in (instrument_id, ""):
        for test in config.tests:
            if test.code == code and test.instrument == wanted:
                return test
    return None


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    model: str
    serial: str


def instrument_info(config: Config, instrument_id: str, serial: str = "") -> InstrumentInfo:
    """The model (the `[[instruments]]` name, else its driver key) and serial (the config's,
    else the one the instrument reported) of an instrument; unknown ones have neither."""
    for instrument in config.instruments:
        if instrument.id == instrument_id:
            return InstrumentInfo(instrument.name or instrument.driver, instrument.serial or serial)
    return InstrumentInfo("", serial)


def number(text: object) -> Decimal | None:
    """A stored decimal text as a number (None for "", qualitative values, ``<0.5``)."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, Decimal):
        return text
    if isinstance(text, int | float):
        return Decimal(str(text))
    cleaned = str(text).strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def value_cell(text: object) -> Cell:
    """A measured value: a number when it is one, else its text."""
    found = number(text)
    if found is not None:
        return found
    return "" if text is None else str(text)


def violation_names(stored: str | None) -> str:
    """The rules that fired, from the evaluation's JSON list (names or objects with a
    ``rule``), comma-separated in their order."""
    if not stored:
        return ""
    try:
        items = json.loads(stored)
    except ValueError:
        return stored
    if not isinstance(items, list):
        return stored
    names = [str(i.get("rule", "")) if isinstance(i, dict) else str(i) for i in items]
    return ",".join(n for n in names if n)


def limits(
    mean: Decimal | None, sd: Decimal | None, qc: QcConfig | None
) -> tuple[Decimal | None, Decimal | None]:
    """The control limits: the fixed allowed deviation when the `[[qc]]` entry sets one
    (± per cent of the mean, or ± an absolute amount), else mean ± 2 SD; none without a
    target."""
    if mean is None:
        return None, None
    if qc is not None and qc.allowed_percent is not None:
        half = abs(mean) * Decimal(str(qc.allowed_percent)) / 100
    elif qc is not None and qc.allowed_absolute is not None:
        half = Decimal(str(qc.allowed_absolute))
    elif sd is not None:
        half = LIMIT_SD * sd
    else:
        return None, None
    return mean - half, mean + half


def qc_rows(records: Iterable[Mapping[str, Any]], config: Config) -> list[Row]:
    """Export rows from ``gateway.store.qc_export.qc_records``' records."""
    rows: list[Row] = []
    for r in records:
        instrument = str(r["instrument_id"])
        info = instrument_info(config, instrument, str(r.get("serial", "")))
        test = find_test(config, instrument, str(r["test_code"]))
        mean, sd = number(r.get("target_mean")), number(r.get("target_sd"))
        low, high = limits(mean, sd, config.qc_for(instrument, str(r["test_code"])))
        rows.append(
            {
                "site": config.site.name,
                "noklus_participant": config.site.noklus_participant,
                "instrument_id": instrument,
                "instrument_model": info.model,
                "instrument_serial": info.serial,
                "analyte": str(r["test_code"]),
                "nlk_code": str(r.get("nlk_code") or (test.nlk if test else "")),
                "control_material": str(r.get("material", "")),
                "lot": str(r.get("lot", "")),
                "level": str(r.get("level", "")),
                "performed_at": r.get("performed_at"),
                "value": value_cell(r.get("value")),
                "unit": str(r.get("unit") or (test.unit if test else "")),
                "target_mean": mean,
                "target_sd": sd,
                "limit_low": low,
                "limit_high": high,
                "rule_result": str(r.get("verdict") or ""),
                "violations": violation_names(r.get("violations")),
                "operator": str(r.get("operator", "")),
                "corrective_action": str(r.get("corrective_action", "")),
            }
        )
    return rows


def eqa_rows(records: Iterable[Mapping[str, Any]], config: Config) -> list[Row]:
    """Export rows from ``gateway.store.qc_export.eqa_records``' records."""
    rows: list[Row] = []
    for r in records:
        instrument = str(r["instrument_id"])
        info = instrument_info(config, instrument)
        test = find_test(config, instrument, str(r["test_code"]))
        rows.append(
            {
                "site": config.site.name,
                "noklus_participant": config.site.noklus_participant,
                "instrument_id": instrument,
                "instrument_model": info.model,
                "instrument_serial": info.serial,
                "scheme": str(r["scheme"]),
                "shipment": str(r["shipment"]),
                "sample": str(r["sample"]),
                "analyte": str(r["test_code"]),
                "value": value_cell(r.get("value")),
                "unit": str(r.get("unit") or (test.unit if test else "")),
                "target_value": value_cell(r.get("target_value")),
                "trueness": str(r.get("trueness", "")),
                "accuracy": str(r.get("accuracy", "")),
                "precision": str(r.get("precision", "")),
                "answered_at": r.get("answered_at"),
                "answered_by": str(r.get("answered_by", "")),
                "assessed_at": r.get("assessed_at"),
            }
        )
    return rows


def _safe_text(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_cell(cell: Cell, *, decimal: Decimals, zone: ZoneInfo) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Decimal):
        shown = format(cell, "f")
        return shown.replace(".", ",") if decimal == "comma" else shown
    if isinstance(cell, datetime):
        return cell.astimezone(zone).strftime(CSV_TIME)
    return _safe_text(cell)


def write_csv(
    rows: Sequence[Row], columns: Sequence[str], *, zone: ZoneInfo, decimal: Decimals = "comma"
) -> bytes:
    """The rows as CSV for Norwegian Excel: UTF-8 with BOM, ``;``, decimal comma (or point),
    a header row of the column names, times ``YYYY-MM-DD HH:MM:SS`` in ``zone``."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c), decimal=decimal, zone=zone) for c in columns])
    return out.getvalue().encode("utf-8-sig")


def write_xlsx(
    rows: Sequence[Row], columns: Sequence[str], *, zone: ZoneInfo, title: str = "QC"
) -> bytes:
    """The rows as an XLSX workbook: one sheet, a header row, typed cells (numbers as
    numbers, times as date-times in ``zone`` without an offset, the rest text)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(list(columns))
    for row in rows:
        cells: list[object] = []
        for column in columns:
            cell = row.get(column)
            if isinstance(cell, Decimal):
                cells.append(float(cell))
            elif isinstance(cell, datetime):
                cells.append(cell.astimezone(zone).replace(tzinfo=None))
            elif cell is None:
                cells.append(None)
            else:
                cells.append(_safe_text(cell))
        sheet.append(cells)
    for column_cells in sheet.iter_cols(min_row=2):
        for c in column_cells:
            if isinstance(c.value, datetime):
                c.number_format = XLSX_TIME
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def file_name(kind: Kind, first: date, last: date, instrument: str, fmt: str) -> str:
    """``noklus-qc-afinion-1-2026-12-01-2026-12-31.xlsx`` (instrument "": ``all``)."""
    return f"noklus-{kind}-{instrument or 'all'}-{first.isoformat()}-{last.isoformat()}.{fmt}"
