"""When the gateway cannot keep a message, the drivers do not acknowledge it.

The sink here refuses the way the gateway does when its store is broken: ``ingest`` raises
``NotStoredError`` and ``accepting()`` says no. HL7 answers AR (HL7 table 0008: rejected for a
reason unrelated to content; the sender keeps the message); ASTM leaves the message's last frame
unanswered and, while the sink is not accepting, answers ENQ with NAK (E1381: not ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from drivers.analysers.astm_host import AstmHostDriver
from drivers.analysers.generic_hl7 import Hl7MllpReceiver
from drivers.analysers.profiles.astm_generic import GENERIC
from drivers.errors import NotStoredError
from drivers.mllp import MllpClient
from drivers.model import InboundMessage
from drivers.ports import Accepting
from drivers.protocols.astm.frames import ACK, NAK, encode_frames
from tests.drivers.test_astm_host import (
    AstmInstrument,
    StoredOutcome,
    message_for,
    sample,
    tcp_pair,
)

pytestmark = pytest.mark.timeout(30)


@dataclass
class GatedSink:
    """Refuses every message while ``broken``; ``accepting()`` tells, as the gateway does."""

    broken: bool = True
    announce: bool = True  # whether accepting() reports the breakage before a message
    tried: list[InboundMessage] = field(default_factory=list)

    def accepting(self) -> bool:
        return not (self.broken and self.announce)

    async def ingest(self, message: InboundMessage) -> StoredOutcome:
        self.tried.append(message)
        if self.broken:
            raise NotStoredError("the store failed its check: not stored")
        return StoredOutcome(False, "")

    def connection_changed(
        self, instrument_id: str, connected: bool, detail: str, state: object = None
    ) -> None:
        pass


def test_the_gated_sink_is_seen_as_accepting() -> None:
    assert isinstance(GatedSink(), Accepting)


async def test_astm_last_frame_is_not_acknowledged_when_the_store_refuses() -> None:
    listener, instrument_side = await tcp_pair()
    host_side = await listener.connect()
    sink = GatedSink(announce=False)  # broke while the message was on its way
    driver = AstmHostDriver("astm-1", GENERIC)
    task = asyncio.create_task(driver.serve(host_side, sink))
    instrument = AstmInstrument(instrument_side, max_text=100)
    message = message_for(sample(n=3))
    frames = encode_frames(message, max_text=100)
    assert len(frames) > 1
    try:
        ident = instrument.link.send_message(message, time.monotonic())
        pumping = asyncio.create_task(instrument.pump(lambda: False))
        with pytest.raises(NotStoredError):
            await asyncio.wait_for(task, 10)  # the driver gives up; the session hangs up
        await asyncio.sleep(0.2)  # whatever the host still sent has arrived
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
        assert len(sink.tried) == 1
        assert not instrument.sent(ident)
        # ENQ and every frame but the last were ACKed; the last frame got no answer at all
        assert instrument.wire_in.count(ACK) == len(frames)
        assert NAK not in instrument.wire_in
    finally:
        await instrument_side.aclose()
        await host_side.aclose()
        await listener.aclose()


async def test_astm_enq_gets_nak_while_the_store_is_broken_then_ack() -> None:
    listener, instrument_side = await tcp_pair()
    host_side = await listener.connect()
    sink = GatedSink()
    task = asyncio.create_task(AstmHostDriver("astm-1", GENERIC).serve(host_side, sink))
    instrument = AstmInstrument(instrument_side)
    try:
        ident = instrument.link.send_message(message_for(sample(n=4)), time.monotonic())
        await instrument.pump(lambda: NAK in instrument.wire_in)
        assert instrument.wire_in == bytearray([NAK])  # not ready: no frame was sent
        assert sink.tried == [] and not instrument.sent(ident)
        sink.broken = False
        instrument.link.handle_timeout(time.monotonic() + 11)  # the sender's 10 s wait, skipped
        await instrument.pump(lambda: instrument.sent(ident))
        assert len(sink.tried) == 1
    finally:
        await instrument_side.aclose()
        await host_side.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await listener.aclose()


async def test_hl7_gets_ar_while_the_store_refuses_and_aa_after() -> None:
    listener, client_side = await tcp_pair()
    host_side = await listener.connect()
    sink = GatedSink()
    task = asyncio.create_task(Hl7MllpReceiver("inst-0").serve(host_side, sink))
    client = MllpClient(client_side, ack_timeout_s=5)
    stamp = datetime(2026, 12, 8, 9, 0, tzinfo=UTC).strftime("%Y%m%d%H%M%S")
    payload = (
        f"MSH|^~\\&|AN|SN|TRYGG|LAB|{stamp}||ORU^R01^ORU_R01|M1|P|2.5.1\r"
        "PID|1||01010012356^^^^NNNOR\rOBR|1||S1|CRP^CRP^L\rOBX|1|NM|CRP^CRP^L||5|mg/L|||||F\r"
    ).encode()
    try:
        refused = await client.exchange(payload, control_id="M1")
        assert refused.code == "AR" and refused.error_code == "207"
        assert refused.text  # says why, without the message's content
        assert "01010012356" not in refused.text
        sink.broken = False
        accepted = await client.exchange(payload, control_id="M1")  # the sender resends
        assert accepted.code == "AA"
        assert len(sink.tried) == 2
    finally:
        await client_side.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await host_side.aclose()
        await listener.aclose()
