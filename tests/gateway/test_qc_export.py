"""The Noklus-style exports: control values (with their evaluation, lot and corrective action)
and EQA samples read from a real SQLite store, written as XLSX (opened again with openpyxl:
exactly the documented columns in order, numbers as numbers, times in Oslo) and as CSV (BOM,
``;``, decimal comma or point); README's column lists are the code's; `trygg qc export`."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import Config, load_config
from gateway.qc import noklus_export as nx
from gateway.store.engine import make_engine, upgrade
from gateway.store.qc_export import export_file
from gateway.store.tables import (
    control_lots,
    eqa_rounds,
    eqa_samples,
    qc_evaluations,
    qc_lockouts,
    qc_results,
)

README = Path(__file__).resolve().parents[2] / "README.md"
T1 = datetime(2026, 12, 3, 7, 15, tzinfo=UTC)  # 08:15 in Oslo
T2 = datetime(2026, 12, 4, 7, 20, tzinfo=UTC)
#: T1 as the XLSX holds it: Oslo's wall clock, no offset (08:15)
OSLO_T1 = T1.astimezone(ZoneInfo("Europe/Oslo")).replace(tzinfo=None)
OUTSIDE = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 1 December 00:30 in Oslo: inside
BEFORE = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)  # 30 November 23:30 in Oslo: outside

SITE_TOML = """
[site]
name = "legekontor"
noklus_participant = "12345"

[store]
url = "sqlite:///{db}"

[[instruments]]
id = "afinion-1"
driver = "astm_afinion2"
url = "tcp-listen://127.0.0.1:0"
name = "Abbott Afinion 2"
serial = "AF2-0042"

[[tests]]
code = "HBA1C"
nlk = "NPU27300"
unit = "mmol/mol"

[[qc]]
test = "HBA1C"
allowed_percent = 10
"""


@pytest.fixture
def site(tmp_path: Path) -> tuple[Config, Engine, Path]:
    db = tmp_path / "qc.sqlite3"
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML.format(db=db), encoding="utf-8")
    config = load_config(path)
    engine = make_engine(config.store.url)
    upgrade(engine)
    fill(engine)
    return config, engine, path


def fill(engine: Engine) -> None:
    """Two HbA1c control values (one rejected, with its lockout's corrective action), one
    value before the period, and an assessed EQA round."""
    with engine.begin() as conn:
        lot = conn.execute(
            insert(control_lots).returning(control_lots.c.id),
            {
                "instrument_id": "afinion-1",
                "test_code": "HBA1C",
                "level": "C1",
                "lot": "L123",
                "material": "Afinion HbA1c Control",
                "unit": "mmol/mol",
                "created_at": T1,
                "created_by": "hilde",
                "updated_at": T1,
                "updated_by": "hilde",
            },
        ).scalar_one()
        ids = []
        for n, (value, at) in enumerate([("40.5", T1), ("47.0", T2), ("41", BEFORE)]):
            ids.append(
                conn.execute(
                    insert(qc_results).returning(qc_results.c.id),
                    {
                        "instrument_id": "afinion-1",
                        "test_code": "HBA1C",
                        "value": value,
                        "unit": "mmol/mol",
                        "control_lot": "L123",
                        "control_level": "C1",
                        "performed_at": at,
                        "operator_id": "BH",
                        "performed_by": "bente" if n else "",
                        "fingerprint": f"fp{n}",
                        "created_at": at,
                    },
                ).scalar_one()
            )
        conn.execute(
            insert(qc_evaluations),
            {
                "qc_result_id": ids[0],
                "instrument_id": "afinion-1",
                "test_code": "HBA1C",
                "level": "C1",
                "lot_id": lot,
                "run_key": "r1",
                "target_mean": "41.0",
                "target_sd": "1.5",
                "verdict": "accept",
                "violations": "[]",
                "evaluated_at": T1,
            },
        )
        rejected = conn.execute(
            insert(qc_evaluations).returning(qc_evaluations.c.id),
            {
                "qc_result_id": ids[1],
                "instrument_id": "afinion-1",
                "test_code": "HBA1C",
                "level": "C1",
                "lot_id": lot,
                "run_key": "r2",
                "target_mean": "41.0",
                "target_sd": "1.5",
                "verdict": "reject",
                "violations": '[{"rule": "1-3s"}, {"rule": "2-2s"}]',
                "evaluated_at": T2,
            },
        ).scalar_one()
        conn.execute(
            insert(qc_lockouts),
            {
                "instrument_id": "afinion-1",
                "test_code": "HBA1C",
                "cause": "out_of_control",
                "started_at": T2,
                "evaluation_id": rejected,
                "corrective_action": "=Ny kassett; kontroll godkjent",
            },
        )
        round_id = conn.execute(
            insert(eqa_rounds).returning(eqa_rounds.c.id),
            {
                "scheme": "Noklus HbA1c",
                "provider": "Noklus",
                "shipment": "2026-4",
                "instrument_id": "afinion-1",
                "received_on": date(2026, 12, 1),
                "state": "assessed",
                "answered_at": T1,
                "answered_by": "bente",
                "assessed_at": T2,
                "assessed_by": "hilde",
                "created_at": T1,
                "created_by": "hilde",
            },
        ).scalar_one()
        conn.execute(
            insert(eqa_samples),
            {
                "round_id": round_id,
                "sample": "S1",
                "test_code": "HBA1C",
                "value": "53",
                "unit": "mmol/mol",
                "target_value": "52.5",
                "trueness": "good",
                "accuracy": "acceptable",
                "precision": "poor",
            },
        )


def export(config: Config, engine: Engine, kind: str, fmt: str, **options: str) -> bytes:
    with engine.connect() as conn:
        data, _ = export_file(
            conn,
            config,
            kind=kind,
            first=date(2026, 12, 1),
            last=date(2026, 12, 31),
            fmt=fmt,
            **options,  # type: ignore[arg-type]
        )
    return data


def test_the_qc_xlsx_has_the_documented_columns_and_typed_cells(
    site: tuple[Config, Engine, Path],
) -> None:
    config, engine, _ = site
    book = load_workbook(io.BytesIO(export(config, engine, "qc", "xlsx")))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0] == nx.QC_COLUMNS
    assert len(rows) == 3  # the value before the period is left out
    first, second = (dict(zip(nx.QC_COLUMNS, r, strict=True)) for r in rows[1:])
    assert first["site"] == "legekontor" and first["noklus_participant"] == "12345"
    assert first["instrument_model"] == "Abbott Afinion 2"
    assert first["instrument_serial"] == "AF2-0042"
    assert first["nlk_code"] == "NPU27300" and first["control_material"] == "Afinion HbA1c Control"
    assert first["value"] == 40.5 and isinstance(first["value"], float)
    assert first["target_mean"] == 41 and first["target_sd"] == 1.5
    # the [[qc]] entry's fixed 10 % limits, not 2 SD
    assert first["limit_low"] == pytest.approx(36.9) and first["limit_high"] == pytest.approx(45.1)
    assert first["performed_at"] == OSLO_T1  # Oslo, no offset
    assert first["rule_result"] == "accept" and first["operator"] == "BH"
    assert first["corrective_action"] is None
    assert second["rule_result"] == "reject" and second["violations"] == "1-3s,2-2s"
    assert second["operator"] == "bente"
    # a formula-looking text is kept as text
    assert second["corrective_action"] == "'=Ny kassett; kontroll godkjent"


def test_the_csv_is_for_norwegian_excel(site: tuple[Config, Engine, Path]) -> None:
    config, engine, _ = site
    data = export(config, engine, "qc", "csv")
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert tuple(rows[0]) == nx.QC_COLUMNS
    first = dict(zip(nx.QC_COLUMNS, rows[1], strict=True))
    assert first["value"] == "40,5" and first["target_sd"] == "1,5"
    assert first["performed_at"] == "2026-12-03 08:15:00"
    point = list(
        csv.reader(
            io.StringIO(export(config, engine, "qc", "csv", decimal="point").decode("utf-8-sig")),
            delimiter=";",
        )
    )
    assert dict(zip(nx.QC_COLUMNS, point[1], strict=True))["value"] == "40.5"


def test_the_eqa_export(site: tuple[Config, Engine, Path]) -> None:
    config, engine, _ = site
    book = load_workbook(io.BytesIO(export(config, engine, "eqa", "xlsx")))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0] == nx.EQA_COLUMNS
    (row,) = (dict(zip(nx.EQA_COLUMNS, r, strict=True)) for r in rows[1:])
    assert row["value"] == 53 and row["target_value"] == 52.5
    assert (row["trueness"], row["accuracy"], row["precision"]) == ("good", "acceptable", "poor")
    assert row["answered_at"] == OSLO_T1 and row["answered_by"] == "bente"
    text = export(config, engine, "eqa", "csv").decode("utf-8-sig")
    parsed = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert (
        tuple(parsed[0]) == nx.EQA_COLUMNS
        and parsed[1][nx.EQA_COLUMNS.index("target_value")] == "52,5"
    )


def test_the_period_is_whole_days_in_oslo() -> None:
    start, end = nx.period_bounds(date(2026, 12, 1), date(2026, 12, 31), ZoneInfo("Europe/Oslo"))
    assert start <= OUTSIDE < end and not start <= BEFORE < end


@pytest.mark.parametrize("kind", ["qc", "eqa"])
def test_readme_lists_exactly_the_exported_columns_in_order(kind: str) -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split(f"<!-- {kind}-columns -->", 1)[1].split(f"<!-- /{kind}-columns -->", 1)[0]
    documented = tuple(re.findall(r"^\| `(\w+)` \|", block, re.M))
    assert documented == nx.COLUMNS[kind]


def test_trygg_qc_export_writes_the_file(site: tuple[Config, Engine, Path], tmp_path: Path) -> None:
    _, _, path = site
    out = tmp_path / "qc.xlsx"
    result = CliRunner().invoke(
        app,
        [
            "qc",
            "export",
            "-c",
            str(path),
            "--kind",
            "qc",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-31",
            "--instrument",
            "afinion-1",
            "--format",
            "xlsx",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    assert rows[0] == nx.QC_COLUMNS and len(rows) == 3
    bad = CliRunner().invoke(
        app,
        [
            "qc",
            "export",
            "-c",
            str(path),
            "--kind",
            "lots",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-31",
            "-o",
            str(out),
        ],
    )
    assert bad.exit_code == 2
