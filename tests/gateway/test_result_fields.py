"""The result's field list is declared once: the table, the insert rows and the reads agree."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import Engine, inspect, select

from drivers.model import InboundMessage, Method, Observation
from gateway.config import TestConfig as MappingConfig
from gateway.ingest import normalise, store_message
from gateway.model import RESULT_FIELDS, Result, State
from gateway.rules import RuleContext
from gateway.store.results import BOOKKEEPING, RESULT_COLUMNS, data_row, from_row
from gateway.store.tables import results
from gateway.store.writer import run_in_transaction

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONTEXT = RuleContext(
    tests={("", "CRP"): MappingConfig(code="CRP", nlk="NPU19748", unit="mg/L", name="CRP")}
)


def test_the_field_list_follows_the_result_dataclass() -> None:
    names = [f.name for f in dataclasses.fields(Result)]
    assert list(RESULT_FIELDS) == [n for n in names if n not in {"id", "state", "holds"}]
    assert "patient_id" in RESULT_FIELDS and "abnormal_flags" in RESULT_FIELDS


def test_the_table_and_the_migrated_database_have_a_column_per_field(engine: Engine) -> None:
    data = set(results.c.keys()) - set(BOOKKEEPING)
    assert data == set(RESULT_FIELDS), "a Result field needs a results column (and a migration)"
    migrated = {c["name"] for c in inspect(engine).get_columns("results")}
    assert migrated == set(results.c.keys())


def test_a_result_reads_back_as_it_was_stored(engine: Engine) -> None:
    observation = Observation(
        instrument_id="afinion-1",
        test_code="CRP",
        value=" 12 ",
        reference_range="<5",
        abnormal_flags=("H", "A"),
        method=Method.VISUAL,
        performed_at=NOW,
        operator_id="OP7",
        specimen_id="S1",
        patient_id="01010012356",
        comment="haemolysed",
        instrument_serial="AF-123",
    )
    message = InboundMessage("afinion-1", "test", b"raw", NOW, observations=(observation,))
    run_in_transaction(engine, lambda tx: store_message(tx, message, CONTEXT))
    with engine.connect() as conn:
        row = conn.execute(select(*RESULT_COLUMNS)).one()
    stored = from_row(row)
    expected = normalise(observation, CONTEXT)
    assert stored == dataclasses.replace(expected, id=row.id, state=State.QUEUED)
    assert stored.abnormal_flags == ("H", "A") and stored.nlk_code == "NPU19748"


def test_a_data_row_has_exactly_the_fields() -> None:
    result = Result(
        "afinion-1", "CRP", "12", "NM", "mg/L", "", ("H",), Method.MEASURED, NOW, "", "S1", ""
    )
    row = data_row(result)
    assert tuple(row) == RESULT_FIELDS
    assert row["abnormal_flags"] == "H" and row["method"] == Method.MEASURED.value
