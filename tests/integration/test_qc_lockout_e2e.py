"""QC lockout end to end over TCP on 127.0.0.1 (issue 11, "Show it"): a simulated Afinion 2
sends good HbA1c controls, then controls drifted +2.5 SD; the engine flags 2-2s, the
instrument's HbA1c patient results are held ``qc_lockout`` and never reach the LIS simulator,
a deviation is recorded; after a good control run and a signed corrective action the lockout
lifts, and the held results are released and reach the LIS.

The simulator draws its control values Gaussian around the lot's target (its seed fixes
them); the test asserts the values' SD scores too, so a changed draw shows up as such rather
than as a puzzling rule verdict.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drivers.transports import connector_for
from gateway.app import Gateway
from gateway.holds.qc_lockout import release_lockout_results
from gateway.people.roles import Role
from gateway.rules import QcStatus
from gateway.store import qc_lots, qc_state
from gateway.store.audit import verify
from gateway.store.engine import upgrade
from gateway.store.people import upsert_person
from gateway.store.tables import deviations, holds, qc_evaluations, qc_results, results
from gateway.store.writer import Tx, run_in_transaction
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions
from simulators.astm_models.afinion2 import QC_MATERIALS
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import free_port, gateway_config, make_config, running, wait_for

pytestmark = pytest.mark.timeout(120)

INSTRUMENT = "afinion-1"
HBA1C = [m for m in QC_MATERIALS if m.test_code == "HbA1c"]


@pytest.fixture
def site(sqlite_url: str) -> Iterator[tuple[Gateway, int, int]]:
    lis_port, port = free_port(), free_port()
    data = gateway_config(sqlite_url, [], lis_port=lis_port, batch_size=1)
    data["instruments"] = [
        {"id": INSTRUMENT, "driver": "astm_afinion2", "url": f"tcp-listen://127.0.0.1:{port}"}
    ]
    data["tests"] = [
        {"code": "HbA1c", "instrument": INSTRUMENT, "nlk": "NPU27300", "unit": "mmol/mol"},
        {"code": "CRP", "nlk": "NPU19748", "unit": "mg/L"},
    ]
    data["rules"] = {"forward_unmapped": True}  # the lipid panel etc.: only HbA1c matters here
    data["qc"] = [
        {
            "test": "HbA1c",
            "instrument": INSTRUMENT,
            "rules": "1-2s,1-3s,2-2s,R-4s",
            "levels": ["C I", "C II"],
            "schedule": "daily",
            "lockout": "hold",
        }
    ]
    gw = Gateway(make_config(data))

    def prepare(tx: Tx) -> None:
        upsert_person(tx, "sara", name="Sara Veileder", roles=[Role.SUPERVISOR], actor="test")
        for m in HBA1C:
            qc_lots.add_lot(
                tx,
                instrument_id=INSTRUMENT,
                test_code=m.test_code,
                level=m.level,
                lot=m.lot,
                person="sara",
                material=m.material,
                unit=m.unit,
                manufacturer_mean=Decimal(str(m.mean)),
                manufacturer_sd=Decimal(str(m.sd)),
            )

    upgrade(gw.engine)
    run_in_transaction(gw.engine, prepare)
    yield gw, port, lis_port
    gw.engine.dispose()


async def send(port: int, *, seed: int, patients: int = 0, controls: float | None = None) -> None:
    """One simulated Afinion session: ``patients`` patient samples, and (``controls`` not None)
    a control run of both HbA1c levels first, drifted by ``controls`` SD."""
    sim = AstmAnalyserSim(
        _profile(), AstmSimOptions(seed=seed, count=patients, operator_ids=("BH",))
    )
    if controls is not None:
        sim.run_controls(["HbA1c"], shift_sd=controls)
    connector = connector_for(f"tcp://127.0.0.1:{port}")
    await asyncio.wait_for(sim.run(connector), 40)


def _profile() -> Any:
    from drivers.registry import ASTM_PROFILES

    return next(p for p in ASTM_PROFILES if p.key == "astm_afinion2")


def status(gw: Gateway) -> QcStatus | None:
    with gw.engine.connect() as conn:
        fact = qc_state.load_qc_facts(conn).get((INSTRUMENT, "HbA1c"))
    return fact.status if fact else None


def newest_z(gw: Gateway, n: int) -> list[tuple[str, float, str]]:
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(qc_evaluations.c.level, qc_evaluations.c.z, qc_evaluations.c.verdict)
            .order_by(qc_evaluations.c.id.desc())
            .limit(n)
        ).all()
    return [(r.level, float(r.z), r.verdict) for r in reversed(rows)]


def lis_got(record: Path) -> str:
    if not record.exists():
        return ""
    return "\n".join(json.loads(line)["message"] for line in record.read_text().splitlines())


async def test_drifted_controls_lock_hba1c_out_until_good_qc_and_a_corrective_action(
    site: tuple[Gateway, int, int], tmp_path: Path
) -> None:
    gw, port, lis_port = site
    record = tmp_path / "lis.jsonl"
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)), running(gw):
        # 1. good controls: in control
        await send(port, seed=11, controls=0.0)
        await wait_for(lambda: status(gw) is QcStatus.IN_CONTROL, 20, "HbA1c in control")
        assert all(abs(z) < 2 for _, z, _ in newest_z(gw, 2))

        # 2. both levels +2.5 SD in one run: 2-2s within the run -> out of control
        await send(port, seed=12, controls=2.5)
        await wait_for(lambda: status(gw) is QcStatus.OUT_OF_CONTROL, 20, "a QC lockout")
        drifted = newest_z(gw, 2)
        assert all(z >= 2 for _, z, _ in drifted) and drifted[-1][2] == "reject"
        with gw.engine.connect() as conn:
            (evaluation,) = conn.execute(
                select(qc_evaluations.c.violations).order_by(qc_evaluations.c.id.desc()).limit(1)
            ).all()
            (lockout,) = qc_state.list_lockouts(conn)
            (deviation,) = conn.execute(
                select(deviations).where(deviations.c.kind == "qc_failure")
            ).all()
        assert "2-2s" in {v["rule"] for v in json.loads(evaluation.violations)}
        assert lockout.lifted_at is None and lockout.deviation_id == deviation.id
        assert deviation.instrument_id == INSTRUMENT and deviation.category == "equipment"

        # 3. patient samples while locked out: HbA1c held, the rest forwarded
        await send(port, seed=13, patients=12)

        def held_hba1c() -> Sequence[Any]:
            with gw.engine.connect() as conn:
                return conn.execute(
                    select(results.c.id, results.c.specimen_id, results.c.state)
                    .join(holds, holds.c.result_id == results.c.id)
                    .where(results.c.test_code == "HbA1c", holds.c.reason == "qc_lockout")
                ).all()

        def settled() -> bool:
            with gw.engine.connect() as conn:
                states = conn.execute(select(results.c.test_code, results.c.state)).all()
            return bool(states) and all(
                s.state == ("held" if s.test_code == "HbA1c" else "acknowledged") for s in states
            )

        await wait_for(settled, 30, "HbA1c held and the rest acknowledged by the LIS")
        held = held_hba1c()
        assert held, "the seed gave no HbA1c patient sample"
        # the LIS got the other tests, and no HbA1c (its NLK code is in no OBX-3 yet)
        sent = lis_got(record)
        assert "NPU19748" in sent and "NPU27300" not in sent

        # 4. a corrective action alone does not lift it ...
        lifted = run_in_transaction(
            gw.engine,
            lambda tx: qc_state.record_corrective_action(
                tx, lockout.id, text="Ny kontrollflaske åpnet, analysatoren rengjort", person="sara"
            ),
        )
        assert lifted is False and status(gw) is QcStatus.OUT_OF_CONTROL
        refused = run_in_transaction(
            gw.engine,
            lambda tx: release_lockout_results(tx, lockout.id, "sara", "kontroll godkjent"),
        )
        assert refused and not any(outcome.done for outcome in refused)
        # ... a good control run after it does
        await send(port, seed=14, controls=0.0)
        await wait_for(lambda: status(gw) is QcStatus.IN_CONTROL, 20, "the lockout to lift")
        assert all(abs(z) < 2 for _, z, _ in newest_z(gw, 2))

        # 5. the held results are released (signed by the supervisor) and reach the LIS
        outcomes = run_in_transaction(
            gw.engine,
            lambda tx: release_lockout_results(tx, lockout.id, "sara", "kontroll godkjent"),
        )
        assert len(outcomes) == len(held) and all(outcome.done for outcome in outcomes)

        def all_acknowledged() -> bool:
            with gw.engine.connect() as conn:
                return {s for (s,) in conn.execute(select(results.c.state))} == {"acknowledged"}

        await wait_for(all_acknowledged, 30, "the released HbA1c results at the LIS")
        sent = lis_got(record)
        assert "NPU27300" in sent
        assert all(row.specimen_id in sent for row in held)

    with gw.engine.connect() as conn:
        (lockout,) = qc_state.list_lockouts(conn)
        # lifted when the accepted run arrived (the corrective action was already there)
        assert lockout.lifted_at is not None and lockout.corrective_action_by == "sara"
        assert lockout.accepted_at is not None and lockout.accepted_at <= lockout.lifted_at
        assert conn.execute(select(qc_results)).all()
        assert verify(conn).ok
