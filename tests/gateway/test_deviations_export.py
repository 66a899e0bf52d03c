"""The deviation export: the XLSX opens with openpyxl and has the documented columns and the
review's counts; the CSV is UTF-8 with BOM and ``;``; times are Oslo's; texts stay texts."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from gateway.deviations import export
from gateway.privacy import scrub_deviations

OSLO = ZoneInfo("Europe/Oslo")
README = Path(__file__).resolve().parents[2] / "README.md"


def documented() -> list[str]:
    """The columns as README's table lists them, in order."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- deviations-columns -->", 1)[1].split("<!-- /deviations-columns -->")[0]
    return re.findall(r"^\| `(\w+)` \|", block, re.M)


DOCUMENTED = documented()


def deviation(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": n,
        "created_at": datetime(2026, 7, 1, 10, 0, tzinfo=UTC).isoformat(),  # 12:00 in Oslo
        "kind": "manual",
        "category": "equipment",
        "responsible": "Utstyrsansvarlig",
        "instrument": "afinion-1",
        "result_id": None,
        "summary": "Kassett feil vei",
        "detail": "Pasient 01010012356 måtte tas på nytt",
        "immediate_action": "Ny prøve",
        "cause": "",
        "corrective_action": "",
        "corrective_action_needed": True,
        "state": "open",
        "created_by": "ola",
        "updated_at": "",
        "updated_by": "",
        "closed_at": "",
        "closed_by": "",
        **fields,
    }


ROWS = scrub_deviations(
    [
        deviation(1),
        deviation(
            2,
            kind="quarantine",
            category="it",
            state="closed",
            cause='=HYPERLINK("http://x")',
            corrective_action="Ingen: engangsfeil",
            corrective_action_needed=False,
            closed_by="siri",
            closed_at=datetime(2026, 12, 1, 8, 5, tzinfo=UTC).isoformat(),
        ),
    ]
)
PERIOD = export.Period(date(2026, 1, 1), date(2026, 12, 31))


def test_the_columns_are_the_documented_ones() -> None:
    assert list(export.COLUMNS) == DOCUMENTED


def test_xlsx_opens_with_the_columns_and_the_counts() -> None:
    book = load_workbook(io.BytesIO(export.to_xlsx(ROWS, OSLO, period=PERIOD, site="lab")))
    assert book.sheetnames == ["deviations", "summary"]
    sheet = book["deviations"]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == DOCUMENTED
    first = dict(zip(DOCUMENTED, values[1], strict=True))
    assert first["created_at"] == datetime(2026, 7, 1, 12, 0, tzinfo=OSLO).replace(
        tzinfo=None
    )  # summer
    assert first["detail"] == "Pasient 010100***** måtte tas på nytt"  # scrubbed
    assert first["responsible_function"] == "Utstyrsansvarlig"
    second = dict(zip(DOCUMENTED, values[2], strict=True))
    assert second["closed_at"] == datetime(2026, 12, 1, 9, 5, tzinfo=OSLO).replace(tzinfo=None)
    assert second["corrective_action_needed"] == "no"
    # a text a spreadsheet would run stays a text
    assert sheet.cell(row=3, column=list(DOCUMENTED).index("cause") + 1).data_type == "s"
    summary = [list(r) for r in book["summary"].iter_rows(values_only=True)]
    assert ["deviations", 2] in [r[:2] for r in summary]
    assert ["category", "equipment", 1] in summary and ["category", "it", 1] in summary
    assert ["kind", "quarantine", 1] in summary and ["state", "closed", 1] in summary
    assert ["from", "2026-01-01"] in [r[:2] for r in summary]


def test_csv_is_utf8_with_bom_and_semicolons() -> None:
    body = export.to_csv(ROWS, OSLO)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == DOCUMENTED
    first = dict(zip(DOCUMENTED, rows[1], strict=True))
    assert first["created_at"] == "2026-07-01 12:00:00"
    assert first["summary"] == "Kassett feil vei" and "*****" in first["detail"]
    second = dict(zip(DOCUMENTED, rows[2], strict=True))
    assert second["cause"].startswith("'=")  # never a formula in Excel
    assert (second["updated_at"], second["corrective_action_needed"]) == ("", "no")
    assert "01010012356" not in body.decode("utf-8")


def test_periods() -> None:
    today = date(2026, 12, 7)
    assert export.period_of(year="2025", today=today) == export.Period(
        date(2025, 1, 1), date(2025, 12, 31)
    )
    assert export.period_of(today=today) == PERIOD
    assert export.period_of("2026-11-01", "2026-11-30", today=today).label == (
        "2026-11-01_2026-11-30"
    )
    assert export.period_of("2026-11-01", today=today).last == today
    since, until = export.Period(date(2026, 3, 29), date(2026, 3, 29)).bounds(OSLO)
    assert until.astimezone(UTC) - since.astimezone(UTC) == timedelta(hours=23)  # DST day
    for bad in ({"first": "01.11.2026"}, {"year": "20x6"}, {"year": "2026", "first": "2026-01-01"}):
        with pytest.raises(export.PeriodError):
            export.period_of(**bad, today=today)
    with pytest.raises(export.PeriodError):
        export.period_of("2026-12-01", "2026-11-01", today=today)
    assert export.filename(PERIOD, "xlsx") == "avvik_2026.xlsx"
