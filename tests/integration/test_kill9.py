"""kill -9 of the gateway at random moments while analysers send: nothing lost, no new IDs.

The gateway runs as a real subprocess (`python -m gateway.cli run`), the simulated analysers
and the simulated LIS run here. After every kill the gateway is started again on the same
SQLite file; at the end every result an analyser got AA for must be stored, every message the
LIS saw twice must have come under the same control ID with the same content, and no result may
have reached the LIS under two control IDs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.store.audit import verify
from gateway.store.engine import make_engine
from gateway.store.queries import summary
from gateway.store.tables import results
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import free_port, gateway_config, wait_for

KILLS = int(os.environ.get("TRYGG_KILLS", "20"))


def toml_config(data: dict[str, object]) -> str:
    lines: list[str] = []
    for key in ("site", "store", "lis", "web"):
        lines.append(f"[{key}]")
        for k, v in data[key].items():  # type: ignore[attr-defined]
            lines.append(f"{k} = {json.dumps(v)}")
    for table in ("instruments", "tests"):
        for item in data[table]:  # type: ignore[attr-defined]
            lines.append(f"[[{table}]]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def start_gateway(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    lis_port, ports = free_port(), [free_port(), free_port()]
    store_url = f"sqlite:///{tmp_path / 'gw.sqlite3'}"
    data = gateway_config(store_url, ports, lis_port=lis_port, batch_size=3, ack_timeout_s=1.0)
    config_path = tmp_path / "site.toml"
    config_path.write_text(toml_config(data), encoding="utf-8")
    record = tmp_path / "lis.jsonl"
    log = tmp_path / "gateway.log"
    sims = [
        Hl7AnalyserSim(
            AnalyserSimOptions(
                instrument_id=f"inst-{i}",
                host="127.0.0.1",
                port=port,
                rate_per_s=15,
                results_min=2,
                results_max=6,
                invalid_id_share=0.05,
                seed=i,
                ack_timeout_s=2.0,
            )
        )
        for i, port in enumerate(ports)
    ]
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)):
        sim_tasks = [asyncio.create_task(s.run()) for s in sims]
        try:
            for _ in range(KILLS):
                proc = start_gateway(config_path, log)
                # kill while traffic flows: once the analysers are connected, at a random moment
                await wait_for(lambda: all(s.connected for s in sims), 30, "analysers to connect")
                await asyncio.sleep(rng.uniform(0.0, 1.5))
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
            proc = start_gateway(config_path, log)
            await asyncio.sleep(3.0)
        finally:
            for task in sim_tasks:
                task.cancel()
            await asyncio.gather(*sim_tasks, return_exceptions=True)
        engine = make_engine(store_url)
        try:

            def drained() -> bool:
                with engine.connect() as conn:
                    s = summary(conn)
                return s.by_state.get("queued", 0) + s.by_state.get("sent", 0) == 0

            await wait_for(drained, 60, "the outbox to drain after the last restart")
            proc.send_signal(signal.SIGINT)
            await asyncio.to_thread(proc.wait, 20)

            with engine.connect() as conn:
                stored = {
                    (r.instrument_id, r.specimen_id, r.test_code, r.value)
                    for r in conn.execute(select(results))
                }
                assert verify(conn).ok
        finally:
            engine.dispose()
    acked = [
        (s.options.instrument_id, o.specimen_id, o.test_code, o.value)
        for s in sims
        for o in s.ledger.acked
    ]
    assert len(acked) > 100, "the analysers should have delivered plenty between the kills"
    lost = [a for a in acked if a not in stored]
    assert lost == []

    lines = [json.loads(x) for x in record.read_text(encoding="utf-8").splitlines()]
    by_control: dict[str, set[str]] = defaultdict(set)
    control_ids_of_result: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line in lines:
        by_control[line["control_id"]].add(line["message"])
        specimen = ""
        for segment in line["message"].split("\r"):
            fields = segment.split("|")
            if fields[0] == "OBR":
                specimen = fields[3].split("^")[0]
            elif fields[0] == "OBX":
                code = fields[3].split("^")[0]
                control_ids_of_result[(specimen, code)].add(line["control_id"])
    assert all(len(texts) == 1 for texts in by_control.values()), "a control ID changed content"
    twice = {k: v for k, v in control_ids_of_result.items() if len(v) > 1}
    assert twice == {}, f"results went out under several control IDs: {list(twice.items())[:3]}"
