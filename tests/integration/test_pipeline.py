"""End to end on loopback: simulated analysers -> gateway -> simulated LIS, on both stores."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.app import Gateway
from gateway.config import Config
from gateway.store.audit import verify
from gateway.store.queries import summary
from gateway.store.tables import deviations, outbox, quarantine, results
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import free_port, gateway_config, make_config, wait_for


def sims_for(ports: list[int], messages: int, **kw: object) -> list[Hl7AnalyserSim]:
    return [
        Hl7AnalyserSim(
            AnalyserSimOptions(
                instrument_id=f"inst-{i}",
                host="127.0.0.1",
                port=port,
                rate_per_s=0,
                max_messages=messages,
                invalid_id_share=0.1,
                unmapped_share=0.0,
                seed=i,
                **kw,  # type: ignore[arg-type]
            )
        )
        for i, port in enumerate(ports)
    ]


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(gateway.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def lis_lines(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("worker", ["process", "inline"])
async def test_results_flow_to_the_lis_and_are_acknowledged(
    make_gateway: Callable[[Config], Gateway], store_url: str, tmp_path: Path, worker: str
) -> None:
    lis_port, ports = free_port(), [free_port(), free_port()]
    record = tmp_path / "lis.jsonl"
    config = make_config(gateway_config(store_url, ports, lis_port=lis_port, worker=worker))
    gateway = make_gateway(config)
    sims = sims_for(ports, 15)
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)), running(gateway):
        await asyncio.gather(*(asyncio.wait_for(s.run(), 30) for s in sims))
        acked = sum(len(s.ledger.acked) for s in sims)

        def settled() -> bool:
            with gateway.engine.connect() as conn:
                s = summary(conn)
            return s.by_state.get("queued", 0) + s.by_state.get("sent", 0) == 0

        await wait_for(settled, 30, "the outbox to drain")
    with gateway.engine.connect() as conn:
        s = summary(conn)
        assert s.received == acked
        assert s.by_state.get("acknowledged", 0) + s.by_state.get("held", 0) == acked
        assert s.by_state.get("held", 0) == s.held_by_reason.get("invalid_patient_id", 0) > 0
        assert verify(conn).ok
        n_outbox = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    lines = lis_lines(record)
    assert len(lines) == n_outbox
    assert {line["ack_code"] for line in lines} == {"AA"}
    assert len({line["control_id"] for line in lines}) == len(lines)
    # every acknowledged result's specimen is in a message the LIS received
    text = "\n".join(line["message"] for line in lines)
    for sim in sims:
        for obs in sim.ledger.acked[:20]:
            assert obs.specimen_id in text


async def test_lis_down_then_back_everything_arrives_in_order(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str, tmp_path: Path
) -> None:
    lis_port, ports = free_port(), [free_port()]
    record = tmp_path / "lis.jsonl"
    config = make_config(gateway_config(sqlite_url, ports, lis_port=lis_port))
    gateway = make_gateway(config)
    sims = sims_for(ports, 10)
    sims[0].options.invalid_id_share = 0.0
    async with running(gateway):
        await asyncio.wait_for(sims[0].run(), 30)
        await asyncio.sleep(1.0)  # the forwarder keeps failing to connect meanwhile
        with gateway.engine.connect() as conn:
            waiting = summary(conn)
        assert waiting.by_state.get("acknowledged", 0) == 0
        assert waiting.by_state.get("queued", 0) + waiting.by_state.get("sent", 0) > 0
        async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)):

            def all_acked() -> bool:
                with gateway.engine.connect() as conn:
                    return summary(conn).by_state.get("acknowledged", 0) == waiting.received

            await wait_for(all_acked, 30, "every result to be acknowledged")
    with gateway.engine.connect() as conn:
        in_order = list(conn.execute(select(outbox.c.control_id).order_by(outbox.c.id)).scalars())
    received = [line["control_id"] for line in lis_lines(record)]
    assert received == in_order


async def test_rejected_messages_become_deviations_and_are_not_retried(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str, tmp_path: Path
) -> None:
    lis_port, ports = free_port(), [free_port()]
    record = tmp_path / "lis.jsonl"
    config = make_config(gateway_config(sqlite_url, ports, lis_port=lis_port))
    gateway = make_gateway(config)
    sims = sims_for(ports, 4)
    sims[0].options.invalid_id_share = 0.0
    options = LisSimOptions("127.0.0.1", lis_port, record=record, ar_share=1.0)
    async with LisSimulator(options), running(gateway):
        await asyncio.wait_for(sims[0].run(), 30)

        def all_rejected() -> bool:
            with gateway.engine.connect() as conn:
                s = summary(conn)
            return s.by_state.get("rejected", 0) == s.received > 0

        await wait_for(all_rejected, 30, "every result to be rejected")
        await asyncio.sleep(0.5)  # would-be retries would show up in the record now
    with gateway.engine.connect() as conn:
        n_outbox = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
        n_dev = conn.execute(select(func.count()).select_from(deviations)).scalar_one()
        states = set(conn.execute(select(results.c.state)).scalars())
    assert states == {"rejected"}
    assert n_dev == n_outbox
    assert len(lis_lines(record)) == n_outbox


async def test_a_garbled_message_is_quarantined_and_answered_ae(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str
) -> None:
    port = free_port()
    gateway = make_gateway(make_config(gateway_config(sqlite_url, [port], lis_port=None)))
    async with running(gateway):
        sim = sims_for([port], 10, broken_share=1.0)[0]
        await asyncio.wait_for(sim.run(), 30)
    assert sim.ledger.error_acks == 10 and sim.ledger.acked_messages == 0
    with gateway.engine.connect() as conn:
        s = summary(conn)
    assert s.quarantined == 10 and s.received == 0


async def test_an_endless_mllp_block_is_kept_in_quarantine_and_the_link_hung_up(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str
) -> None:
    port = free_port()
    data = gateway_config(sqlite_url, [port], lis_port=None)
    data["instruments"][0]["options"] = {"max_bytes": 200}
    gateway = make_gateway(make_config(data))
    async with running(gateway):
        for _ in range(100):  # the listening port opens just after the gateway is ready
            with contextlib.suppress(ConnectionRefusedError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            await asyncio.sleep(0.05)
        writer.write(b"\x0bMSH|^~\\&|BENCH" + b"x" * 400)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # hung up
        writer.close()
    with gateway.engine.connect() as conn:
        (row,) = conn.execute(select(quarantine.c.field, quarantine.c.instrument_id)).all()
    assert (row.field, row.instrument_id) == ("mllp", "inst-0")


@pytest.mark.parametrize("batch_size", [1, 20])
async def test_batch_size_controls_results_per_message(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str, tmp_path: Path, batch_size: int
) -> None:
    lis_port, ports = free_port(), [free_port()]
    record = tmp_path / "lis.jsonl"
    config = make_config(
        gateway_config(sqlite_url, ports, lis_port=lis_port, batch_size=batch_size)
    )
    gateway = make_gateway(config)
    sim = sims_for(ports, 5)[0]
    sim.options.invalid_id_share = 0.0
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)), running(gateway):
        await asyncio.wait_for(sim.run(), 30)
        total = len(sim.ledger.acked)

        def done() -> bool:
            with gateway.engine.connect() as conn:
                return summary(conn).by_state.get("acknowledged", 0) == total

        await wait_for(done, 30, "all acknowledged")
    counts = [
        line["message"].count("\rOBX|") + line["message"].startswith("OBX|")
        for line in lis_lines(record)
    ]
    assert max(counts) <= batch_size
    assert sum(counts) == total
    if batch_size > 1:
        assert max(counts) > 1


@pytest.mark.parametrize("window", [1, 4])
@pytest.mark.parametrize(
    "lis_faults",
    [{"drop_share": 0.4, "seed": 3}, {"down_after": 3, "down_for_s": 0.8, "seed": 4}],
    ids=["dropped-connections", "lis-outages"],
)
async def test_retries_reuse_the_control_id_and_keep_order(
    make_gateway: Callable[[Config], Gateway],
    sqlite_url: str,
    tmp_path: Path,
    lis_faults: dict[str, float],
    window: int,
) -> None:
    lis_port, ports = free_port(), [free_port()]
    record = tmp_path / "lis.jsonl"
    data = gateway_config(sqlite_url, ports, lis_port=lis_port, ack_timeout_s=0.3, window=window)
    gateway = make_gateway(make_config(data))
    sim = sims_for(ports, 6)[0]
    sim.options.invalid_id_share = 0.0
    options = LisSimOptions("127.0.0.1", lis_port, record=record, **lis_faults)  # type: ignore[arg-type]
    async with LisSimulator(options), running(gateway):
        await asyncio.wait_for(sim.run(), 30)
        total = len(sim.ledger.acked)

        def done() -> bool:
            with gateway.engine.connect() as conn:
                return summary(conn).by_state.get("acknowledged", 0) == total

        await wait_for(done, 60, "all acknowledged despite the faults")
    lines = lis_lines(record)
    assert gateway.forwarder is not None and gateway.forwarder.retries > 0
    first_seen: list[str] = []
    texts: dict[str, set[str]] = {}
    for line in lines:
        texts.setdefault(line["control_id"], set()).add(line["message"])
        if line["control_id"] not in first_seen:
            first_seen.append(line["control_id"])
    if "drop_share" in lis_faults:
        assert len(lines) > len(first_seen)  # dropped answers: the LIS saw some twice...
    assert all(len(t) == 1 for t in texts.values())  # ...under the same ID, unchanged
    with gateway.engine.connect() as conn:
        in_order = list(conn.execute(select(outbox.c.control_id).order_by(outbox.c.id)).scalars())
    assert first_seen == in_order


async def test_every_message_the_gateway_sends_passes_hl7apy_strict(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str, tmp_path: Path
) -> None:
    """The LIS simulator checks each ORU^R01 against hl7apy's strict v2.5.1 structure."""
    lis_port, ports = free_port(), [free_port()]
    record = tmp_path / "lis.jsonl"
    config = make_config(gateway_config(sqlite_url, ports, lis_port=lis_port, batch_size=7))
    gateway = make_gateway(config)
    sim = sims_for(ports, 4)[0]
    sim.options.invalid_id_share = 0.0
    options = LisSimOptions("127.0.0.1", lis_port, record=record, validate="hl7apy")
    async with LisSimulator(options), running(gateway):
        await asyncio.wait_for(sim.run(), 30)
        total = len(sim.ledger.acked)

        def settled() -> bool:
            with gateway.engine.connect() as conn:
                s = summary(conn)
            return s.by_state.get("acknowledged", 0) + s.by_state.get("rejected", 0) == total

        await wait_for(settled, 60, "every result to be answered")
    lines = lis_lines(record)
    assert lines and {line["ack_code"] for line in lines} == {"AA"}, [
        line for line in lines if line["ack_code"] != "AA"
    ][:1]
