"""The LIS simulator over real TCP on 127.0.0.1: answers, validation, faults, outages, records."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.protocols.hl7.ack import Ack, parse_ack
from drivers.protocols.hl7.mllp import MllpDecoder, frame
from gateway.errors import ConfigError, TransportError
from simulators.lis import LisSimOptions, LisSimulator, run_lis_sim, validate_basic

pytestmark = pytest.mark.timeout(30)


def oru(control_id: str, *, version: str = "2.5.1", body: str | None = None) -> bytes:
    msh = (
        "MSH|^~\\&|TRYGG|LEGEVAKT|LIS|HOSP|20240501120000+0200||ORU^R01^ORU_R01|"
        f"{control_id}|P|{version}"
    )
    if body is None:
        body = (
            "PID|1||01017012345^^^^FNR||Nordmann^Kari\r"
            "OBR|1||S-1|GLU^Glucose\r"
            "OBX|1|NM|GLU^Glucose||5.5|mmol/L|||||F"
        )
    return f"{msh}\r{body}\r".encode()


class Client:
    """A minimal MLLP client for the tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = MllpDecoder()

    async def send(self, *messages: bytes) -> None:
        self.writer.write(b"".join(frame(m) for m in messages))
        await self.writer.drain()

    async def ack(self) -> Ack | None:
        """The next ACK, or None when the LIS closed the connection."""
        while (payload := self.decoder.next_message()) is None:
            data = await self.reader.read(65536)
            if not data:
                return None
            self.decoder.receive_data(data)
        return parse_ack(payload)

    async def exchange(self, message: bytes) -> Ack | None:
        await self.send(message)
        return await self.ack()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def options(**kwargs: object) -> LisSimOptions:
    kwargs.setdefault("seed", 1)
    return LisSimOptions(host="127.0.0.1", port=0, **kwargs)  # type: ignore[arg-type]


async def wait_for(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` (a port can only be probed from outside) for up to 5 s."""
    async with asyncio.timeout(5.0):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_valid_message_is_accepted_and_recorded(tmp_path: Path) -> None:
    record = tmp_path / "lis.jsonl"
    before = datetime.now(UTC)
    async with LisSimulator(options(record=record)) as sim, connect(sim.port) as client:
        ack = await client.exchange(oru("MSG-1"))
        assert ack is not None
        assert (ack.code, ack.acked_control_id) == ("AA", "MSG-1")
        assert ack.control_id.startswith("LIS")
        assert (sim.received, sim.control_ids, sim.ack_codes) == (1, ["MSG-1"], ["AA"])
    lines = record.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert set(entry) == {"received_at", "control_id", "ack_code", "message"}
    assert (entry["control_id"], entry["ack_code"]) == ("MSG-1", "AA")
    assert entry["message"] == oru("MSG-1").decode()
    received_at = datetime.fromisoformat(entry["received_at"])
    assert received_at.utcoffset() == timedelta(0)
    assert before <= received_at <= datetime.now(UTC)


async def test_record_file_is_appended_across_runs(tmp_path: Path) -> None:
    record = tmp_path / "lis.jsonl"
    for control_id in ("A", "B"):
        async with LisSimulator(options(record=record)) as sim, connect(sim.port) as client:
            assert await client.exchange(oru(control_id)) is not None
    ids = [json.loads(line)["control_id"] for line in record.read_text().splitlines()]
    assert ids == ["A", "B"]


async def test_pipelined_messages_are_answered_in_order() -> None:
    async with LisSimulator(options()) as sim, connect(sim.port) as client:
        await client.send(oru("P1"), oru("P2"), oru("P3"))
        acks = [await client.ack() for _ in range(3)]
        assert [a.acked_control_id for a in acks if a] == ["P1", "P2", "P3"]
        assert sim.control_ids == ["P1", "P2", "P3"]


async def test_several_connections_at_once() -> None:
    async with LisSimulator(options()) as sim:
        async with connect(sim.port) as one, connect(sim.port) as two:
            first, second = await asyncio.gather(one.exchange(oru("C1")), two.exchange(oru("C2")))
        assert first is not None and first.acked_control_id == "C1"
        assert second is not None and second.acked_control_id == "C2"
        assert sorted(sim.control_ids) == ["C1", "C2"]


@pytest.mark.parametrize(
    ("message", "code", "error_code", "words"),
    [
        (oru("V1", version="2.4"), "AR", "203", "version"),
        (oru("V2").replace(b"ORU^R01^ORU_R01", b"ADT^A01"), "AR", "200", "message type"),
        (oru("V3").replace(b"ORU^R01^ORU_R01", b"ORU^R30"), "AR", "201", "event"),
        (b"hello, is this the LIS?", "AR", "100", "unparseable"),
        (oru("V4", body="PID|1||1\rOBR|1||S"), "AE", "100", "OBX"),
        (oru("V5", body="OBR|1||S\rOBX|1|NM|A||1||||||F"), "AE", "100", "PID"),
        (oru("V6", body="PID|1||1\rOBX|1|NM|A||1||||||F\rOBR|1||S"), "AE", "100", "order"),
        (oru(""), "AE", "101", "MSH-10"),
    ],
)
async def test_invalid_messages_are_answered_with_the_reason(
    message: bytes, code: str, error_code: str, words: str
) -> None:
    async with LisSimulator(options()) as sim, connect(sim.port) as client:
        ack = await client.exchange(message)
        assert ack is not None
        assert ack.code == code
        assert ack.error_code == error_code
        assert words in ack.text
        assert sim.ack_codes == [code]


async def test_hl7apy_validation_is_stricter_than_basic() -> None:
    # OBR-5 (priority, ID) with components: basic lets it pass, hl7apy's strict v2.5.1 does not
    odd = oru("H2", body="PID|1||1\rOBR|1|||GLU^Glucose|R^X\rOBX|1|NM|GLU^Glucose||5|u|||||F")
    assert validate_basic(odd).code == "AA"
    async with LisSimulator(options(validate="hl7apy")) as sim, connect(sim.port) as client:
        good = await client.exchange(oru("H1"))
        assert good is not None and good.code == "AA"
        bad = await client.exchange(odd)
        assert bad is not None and bad.code == "AE"
        assert "hl7apy" in bad.text


async def test_ar_share_one_rejects_everything() -> None:
    async with LisSimulator(options(ar_share=1.0)) as sim, connect(sim.port) as client:
        for n in range(3):
            ack = await client.exchange(oru(f"R{n}"))
            assert ack is not None and ack.code == "AR"
            assert "simulated" in ack.text
        assert sim.ack_codes == ["AR", "AR", "AR"]


async def test_ae_and_ar_shares_are_mixed_and_reproducible() -> None:
    async def run() -> list[str | None]:
        opts = options(ae_share=0.3, ar_share=0.3, seed=42)
        async with LisSimulator(opts) as sim, connect(sim.port) as client:
            for n in range(40):
                assert await client.exchange(oru(f"M{n}")) is not None
            return list(sim.ack_codes)

    first = await run()
    assert {"AA", "AE", "AR"} <= set(first)
    assert 4 <= first.count("AE") <= 24 and 4 <= first.count("AR") <= 24
    assert await run() == first


async def test_drop_closes_the_connection_without_answer(tmp_path: Path) -> None:
    record = tmp_path / "lis.jsonl"
    async with LisSimulator(options(drop_share=1.0, record=record)) as sim:
        async with connect(sim.port) as client:
            assert await client.exchange(oru("D1")) is None
        assert (sim.received, sim.ack_codes) == (1, [None])
        async with connect(sim.port) as client:  # still listening
            assert await client.exchange(oru("D2")) is None
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(e["control_id"], e["ack_code"]) for e in entries] == [("D1", None), ("D2", None)]


async def test_delay_holds_the_answer_back() -> None:
    async with LisSimulator(options(delay_s=0.3)) as sim, connect(sim.port) as client:
        start = time.monotonic()
        ack = await client.exchange(oru("SLOW"))
        assert ack is not None and ack.code == "AA"
        assert time.monotonic() - start >= 0.29


async def refused(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_goes_down_after_n_messages_and_comes_back() -> None:
    async with LisSimulator(options(down_after=2, down_for_s=0.5)) as sim:
        port = sim.port
        async with connect(port) as client:
            first = await client.exchange(oru("U1"))
            second = await client.exchange(oru("U2"))
            assert first is not None and first.code == "AA"
            assert second is not None and second.code == "AA"
            assert await client.ack() is None  # the LIS hung up

        async def down() -> bool:
            return not sim.listening

        async def up() -> bool:
            return not await refused(port)

        await wait_for(down)
        down_at = time.monotonic()
        assert await refused(port)
        await wait_for(up)
        assert time.monotonic() - down_at >= 0.4
        assert sim.port == port
        async with connect(port) as client:
            again = await client.exchange(oru("U3"))
            assert again is not None and again.code == "AA"
        assert sim.outages == 1
        assert sim.control_ids == ["U1", "U2", "U3"]


async def test_outage_closes_other_connections_too() -> None:
    async with (
        LisSimulator(options(down_after=1, down_for_s=0.3)) as sim,
        connect(sim.port) as idle,
        connect(sim.port) as client,
    ):
        await asyncio.sleep(0.05)  # let the server register both connections
        assert await client.exchange(oru("X1")) is not None
        assert await idle.ack() is None


async def test_run_lis_sim_serves_until_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(run_lis_sim(LisSimOptions(host="127.0.0.1", port=port)))
    try:

        async def up() -> bool:
            assert not task.done()
            return not await refused(port)

        await wait_for(up)
        async with connect(port) as client:
            ack = await client.exchange(oru("RUN"))
            assert ack is not None and ack.code == "AA"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await refused(port)


async def test_busy_port_is_a_transport_error() -> None:
    async with LisSimulator(options()) as sim:
        with pytest.raises(TransportError, match=str(sim.port)):
            async with LisSimulator(LisSimOptions(host="127.0.0.1", port=sim.port)):
                pass


async def test_unwritable_record_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="record file"):
        async with LisSimulator(options(record=tmp_path / "missing" / "lis.jsonl")):
            pass


async def test_messages_buffered_behind_the_outage_trigger_are_not_processed() -> None:
    async with LisSimulator(options(down_after=1, down_for_s=0.2)) as sim:
        async with connect(sim.port) as client:
            await client.send(oru("B1"), oru("B2"), oru("B3"))
            first = await client.ack()
            assert first is not None and first.acked_control_id == "B1"
            assert await client.ack() is None
        assert sim.control_ids == ["B1"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ae_share": 1.5},
        {"ar_share": -0.1},
        {"ae_share": 0.6, "ar_share": 0.6},
        {"drop_share": 2.0},
        {"down_after": 0},
        {"delay_s": -1.0},
        {"validate": "strict"},
        {"port": 70000},
    ],
)
def test_options_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        LisSimOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [
        b"MSH|^~\\&|a|b|c|d|2020||ADT^A01|1|P|2.5.1\r",
        b"MSH|^~\\&|a|b|c|d|2020||ORU^R01|1|P|2.4\r",
        b"MSH|^~\\&|a|b|c|d|2020||ORU^R01||P|2.5.1\r",
        b"MSH|^~\\&|a|b|c|d|2020||ORU^R01|1|P|2.5.1\rOBX|1\rPID|1\rOBR|1\r",
        b"MSH|^~\\&|a|b|c|d|2020||ORU^R01^ORU_R01|1|P|2.5.1\rPID|1\rOBR|1\rOBX|1\r",
        b"MSH|^~\\&|a|b|c|d|2020||ORU^R01|1|P|2.5.1\rPID|1\rOBR|1\r",
    ],
)
def test_fast_validation_agrees_with_basic(message: bytes) -> None:
    from simulators.lis import validate_basic, validate_fast

    assert validate_fast(message).code == validate_basic(message).code
