"""The demo lab's answer to a lockout that is not the drift story's (a random false rejection):
it is seen and said, the supervisor documents the check after ``RESPONSE_S``, the analyser is
asked to run that test's controls again, and once a run is accepted the lockout lifts and the
story says so. A real gateway (its store and writer thread) and a real simulated analyser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drivers.model import InboundMessage, Observation
from drivers.registry import ASTM_PROFILES
from gateway.app import Gateway
from gateway.config import load_config
from gateway.demo.qc import RESPONSE_S, SUPERVISOR, QcStory
from gateway.ingest import store_message
from gateway.people.roles import Role
from gateway.rule_context import current_context
from gateway.rules import context_from_config
from gateway.store import people, qc_lots
from gateway.store.engine import upgrade
from gateway.store.tables import qc_lockouts
from gateway.store.writer import Tx, run_in_transaction
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions

SITE = """
[site]
name = "demo-qc"
[store]
url = "sqlite:///{db}"
[[instruments]]
id = "afinion-1"
driver = "astm_afinion2"
url = "tcp-listen://127.0.0.1:5998"
[[instruments]]
id = "sysmex-1"
driver = "astm_sysmex_xn"
url = "tcp-listen://127.0.0.1:5997"
[[tests]]
code = "WBC"
instrument = "sysmex-1"
[[qc]]
test = "WBC"
instrument = "sysmex-1"
levels = ["normal"]
"""
T0 = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(db=tmp_path / "demo.sqlite3"), encoding="utf-8")
    gw = Gateway(load_config(path))
    upgrade(gw.engine)

    def setup(tx: Tx) -> None:
        people.upsert_person(tx, SUPERVISOR, name="Bente", roles=[Role.SUPERVISOR], actor="t")
        qc_lots.add_lot(
            tx, instrument_id="sysmex-1", test_code="WBC", level="normal", lot="82151402",
            person="demo", manufacturer_mean="7.0", manufacturer_sd="0.2",
        )  # fmt: skip

    run_in_transaction(gw.engine, setup, T0)
    gw.writer.start()
    yield gw
    gw.writer.stop()
    gw.engine.dispose()


def control(gw: Gateway, value: str, at: datetime) -> None:
    obs = Observation("sysmex-1", "WBC", value, performed_at=at, is_qc=True,
                      control_lot="82151402", control_level="normal")  # fmt: skip
    message = InboundMessage("sysmex-1", "astm", value.encode(), at, observations=(obs,))
    base = context_from_config(gw.config)
    run_in_transaction(
        gw.engine, lambda tx: store_message(tx, message, current_context(tx, base)), at
    )


def lockout(gw: Gateway) -> Any:
    with gw.engine.connect() as conn:
        return conn.execute(select(qc_lockouts)).one()


def sim(key: str, seed: int) -> AstmAnalyserSim:
    (profile,) = [p for p in ASTM_PROFILES if p.key == key]
    return AstmAnalyserSim(profile, AstmSimOptions(seed=seed))


async def test_another_lockout_is_checked_rerun_and_lifted(gateway: Gateway) -> None:
    sysmex, afinion = sim("astm_sysmex_xn", 1), sim("astm_afinion2", 2)
    story = QcStory(
        sim=afinion, instrument_id="afinion-1", test_code="HbA1c", drift_at=1e9, fix_at=1e9,
        language="nb", others={"sysmex-1": sysmex, "afinion-1": afinion},
    )  # fmt: skip
    control(gateway, "7.1", T0)
    control(gateway, "6.3", T0 + timedelta(minutes=5))  # -3.5 SD: 1-3s
    locked = lockout(gateway)
    assert locked.lifted_at is None

    await story.step(gateway, 0.0)
    assert story.log == [
        f"sysmex-1: WBC-kontrollen er avvist (sperre {locked.id}); veilederen sjekker "
        "instrumentet og kjører kontrollen på nytt"
    ]
    await story.step(gateway, RESPONSE_S - 1)  # not yet: nobody has acted
    assert lockout(gateway).corrective_action_by == ""
    assert sysmex.controls_pending == 0
    await story.step(gateway, RESPONSE_S + 2.5)
    assert lockout(gateway).corrective_action_by == SUPERVISOR
    assert "bente dokumenterte korrigerende tiltak" in story.log[-1]
    assert sysmex.controls_pending > 0  # the controls are asked for again
    assert afinion.controls_pending == 0  # the story's analyser is left alone

    control(gateway, "7.05", T0 + timedelta(minutes=20))  # accepted: the lockout lifts
    assert lockout(gateway).lifted_at is not None
    await story.step(gateway, RESPONSE_S + 5.0)
    assert story.log[-1] == (
        f"sysmex-1: ny kontrollserie for WBC er godkjent, sperre {locked.id} er opphevet"
    )
    assert story.phase == "before"  # the drift story itself did not move
