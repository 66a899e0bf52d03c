"""Imported competence records take effect at once: with ``[people] enforce = true`` a result
from a certified operator is queued, one from an operator whose certification expired (or a
trainee, or an unknown ID) is held, through the gateway's real ingest path and store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from drivers.model import InboundMessage, Observation
from gateway.config import Config, parse_config
from gateway.ingest import Ingestor
from gateway.people.competence import Vocabulary, parse_competence
from gateway.rules import context_from_config
from gateway.store.competence import apply_import, person_ids
from gateway.store.recertification import recertify
from gateway.store.tables import holds, results
from gateway.store.writer import GroupCommitWriter

VALID = "01010012356"
HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"
FILE = (
    f"{HEADER}\n"
    "bente,Bente Hansen,BH,operator;verifier;supervisor,astm_afinion2,certified,2025-01-01,"
    "2030-01-01,,\n"
    "kari,Kari Nordmann,KN,operator,afinion-1,certified,2024-01-10,2025-06-30,,\n"
    "tone,Tone Strand,TS,operator,afinion-1,trainee,,,bente,\n"
)


@pytest.fixture
def config(store_url: str) -> Config:
    return parse_config(
        {
            "site": {"name": "rules"},
            "store": {"url": store_url},
            "people": {"enforce": True},
            "instruments": [
                {"id": "afinion-1", "driver": "astm_afinion2", "url": "tcp-listen://127.0.0.1:1"}
            ],
            "tests": [{"code": "HbA1c", "nlk": "NPU27300", "unit": "mmol/mol"}],
        }
    )


@pytest.fixture
def writer(engine: Engine) -> Iterator[GroupCommitWriter]:
    w = GroupCommitWriter(engine)
    w.start()
    yield w
    w.stop()


def message(n: int, operator: str) -> InboundMessage:
    now = datetime.now(UTC) - timedelta(minutes=5)
    observation = Observation(
        "afinion-1",
        "HbA1c",
        str(40 + n),
        unit="mmol/mol",
        performed_at=now,
        operator_id=operator,
        specimen_id=f"S{n}",
        patient_id=VALID,
    )
    return InboundMessage(
        "afinion-1", "astm", f"raw-{n}".encode(), now, observations=(observation,)
    )


def outcome(engine: Engine) -> dict[str, tuple[str, str, list[str]]]:
    """operator ID -> (state, performed_by, hold reasons)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(results.c.id, results.c.operator_id, results.c.state, results.c.performed_by)
        ).all()
        reasons: dict[int, list[str]] = {}
        for hold in conn.execute(select(holds.c.result_id, holds.c.reason)):
            reasons.setdefault(hold.result_id, []).append(hold.reason)
    return {r.operator_id: (r.state, r.performed_by, reasons.get(r.id, [])) for r in rows}


async def test_imported_records_decide_what_flows_and_what_is_held(
    engine: Engine, config: Config, writer: GroupCommitWriter
) -> None:
    with engine.connect() as conn:
        known = person_ids(conn)
    parsed = parse_competence(FILE, vocabulary=Vocabulary.from_config(config), known_people=known)
    assert parsed.ok, parsed.problems
    await writer.write(lambda tx: apply_import(tx, parsed, actor="hilde"))

    ingestor = Ingestor(writer, context_from_config(config))
    for n, operator in enumerate(("BH", "KN", "TS", "ZZ")):
        await ingestor.ingest(message(n, operator))
    seen = outcome(engine)
    assert seen["BH"] == ("queued", "bente", [])
    assert seen["KN"] == ("held", "kari", ["uncertified_operator"])  # recert_due passed
    assert seen["TS"] == ("held", "tone", ["awaiting_cosign"])
    assert seen["ZZ"] == ("held", "", ["uncertified_operator"])  # nobody's ID

    # Kari recertifies: her next result flows (the rules reloaded their facts)
    await writer.write(lambda tx: recertify(tx, "kari", "afinion-1", "confirmed", "SOP read"))
    await ingestor.ingest(message(9, "KN"))
    with engine.connect() as conn:
        state = conn.execute(
            select(results.c.state).where(results.c.specimen_id == "S9")
        ).scalar_one()
    assert state == "queued"
