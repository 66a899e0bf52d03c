"""End to end over TCP on 127.0.0.1: an ASTM analyser (generic LIS2-A2) -> gateway -> LIS."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drivers.protocols.astm.records import encode_message, parse_message
from gateway.app import Gateway
from gateway.store.audit import verify
from gateway.store.queries import summary
from gateway.store.tables import qc_results, quarantine, raw_messages, results
from simulators.astm_models.astm_generic import MODEL as GENERIC_MODEL
from simulators.lis import LisSimOptions, LisSimulator
from simulators.national_id import make_fnr
from tests.drivers.test_astm_host import AstmInstrument
from tests.integration.helpers import (
    connect,
    free_port,
    gateway_config,
    make_config,
    running,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gateway(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, int, int]]:
    """A gateway with one ASTM instrument listening on TCP, and the LIS port it forwards to."""
    lis_port, port = free_port(), free_port()
    data = gateway_config(sqlite_url, [], lis_port=lis_port)
    data["instruments"] = [
        {"id": "astm-1", "driver": "astm_generic", "url": f"tcp-listen://127.0.0.1:{port}"}
    ]
    made = Gateway(make_config(data))
    yield made, port, lis_port
    made.engine.dispose()


async def test_astm_results_are_stored_forwarded_and_queries_answered(
    gateway: tuple[Gateway, int, int], tmp_path: Path
) -> None:
    gw, port, lis_port = gateway
    rng = random.Random(7)
    now = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
    patients = [
        GENERIC_MODEL.sample(rng, operator_id="op1", qc=False, patient_id=make_fnr(rng), now=now)
        for _ in range(4)
    ]
    control = GENERIC_MODEL.sample(rng, operator_id="op1", qc=True, patient_id="", now=now)
    messages = [encode_message(GENERIC_MODEL.message(s)) for s in [*patients, control]]
    broken = messages[0].replace(b"|20260202090000|", b"|02.02.2026|")  # R.13 not a date
    query = b"H|\\^&|||SIM^1^S1\rQ|1|^NO-SUCH-SAMPLE||^^^ALL||||||||O\rL|1|N\r"
    record = tmp_path / "lis.jsonl"

    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)), running(gw):
        stream = await connect(port)
        instrument = AstmInstrument(stream, max_text=100)  # multi-frame messages
        await instrument.send(*messages, broken)  # each ACKed only once stored
        await instrument.send(query)
        (answer,) = await instrument.receive(1)
        await stream.aclose()
        n_results = sum(len(s.values) for s in patients)

        def forwarded() -> bool:
            with gw.engine.connect() as conn:
                return summary(conn).by_state.get("acknowledged", 0) == n_results

        await wait_for(forwarded, 30, "every ASTM result to be acknowledged by the LIS")

    reply = parse_message(answer)
    assert [r.type for r in reply] == ["H", "Q", "L"] and reply[1].value(13) == "X"
    with gw.engine.connect() as conn:
        s = summary(conn)
        assert s.received == n_results and s.quarantined == 1
        assert verify(conn).ok
        stored = {
            (r.specimen_id, r.test_code, r.value, r.patient_id)
            for r in conn.execute(select(results))
        }
        field = conn.execute(select(quarantine.c.field)).scalar_one()
        n_qc = conn.execute(select(func.count()).select_from(qc_results)).scalar_one()
        raws = conn.execute(select(raw_messages.c.raw, raw_messages.c.outcome)).all()
    assert stored == {
        (s.specimen_id, code, value, s.patient_id) for s in patients for code, value, _ in s.values
    }
    assert field == "R.13"
    assert n_qc == len(control.values)
    assert sorted(bytes(r.raw) for r in raws) == sorted([*messages, broken, query])
    assert {bytes(r.raw): r.outcome for r in raws}[query] == "stored"
    sent = "\n".join(json.loads(line)["message"] for line in record.read_text().splitlines())
    for sample in patients:
        assert sample.specimen_id in sent and sample.patient_id in sent
