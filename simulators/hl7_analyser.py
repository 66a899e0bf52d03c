"""A simulated analyser that sends results as HL7 v2 ORU^R01 over MLLP and waits for each ACK.

It keeps a ledger of every message it got AA for, so a run can be reconciled against the
gateway's store ("lost" must be 0). Faults on demand: invalid patient IDs, unmapped tests,
garbage bytes between frames, and duplicate deliveries.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivers.errors import GatewayError, TransportError
from drivers.mllp import MllpClient
from drivers.protocols.hl7.message import format_ts
from drivers.transports import ByteStream, TcpConnector
from simulators.national_id import corrupt_fnr, make_fnr

#: (instrument test code, name, unit, low, high, decimals): plausible POC/bench tests
TESTS: tuple[tuple[str, str, str, float, float, int], ...] = (
    ("CRP", "C-reaktivt protein", "mg/L", 1, 150, 0),
    ("HBA1C", "HbA1c", "mmol/mol", 28, 90, 0),
    ("WBC", "Leukocytter", "10*9/L", 2.0, 18.0, 1),
    ("HGB", "Hemoglobin", "g/dL", 9.0, 17.5, 1),
    ("GLU", "Glukose", "mmol/L", 3.5, 15.0, 1),
    ("ALB", "Albumin urin", "mg/L", 2, 300, 0),
)


@dataclass
class SimObservation:
    specimen_id: str
    test_code: str
    value: str


@dataclass
class AnalyserSimOptions:
    instrument_id: str
    host: str
    port: int
    rate_per_s: float = 2.0
    results_min: int = 5
    results_max: int = 20
    invalid_id_share: float = 0.03
    unmapped_share: float = 0.02
    garbage_share: float = 0.0
    broken_share: float = 0.0
    duplicate_share: float = 0.0
    operator_id: str = "OP1"
    serial: str = "SIM-0001"
    seed: int | None = None
    ack_timeout_s: float = 10.0
    max_messages: int | None = None


@dataclass
class Ledger:
    """What the simulator sent and what the gateway acknowledged."""

    sent_messages: int = 0
    acked_messages: int = 0
    error_acks: int = 0
    acked: list[SimObservation] = field(default_factory=list)
    unacked: list[SimObservation] = field(default_factory=list)


class Hl7AnalyserSim:
    """Connects to the gateway (tcp), sends ORU^R01 messages at a rate, waits for ACKs."""

    def __init__(self, options: AnalyserSimOptions) -> None:
        self.options = options
        self.ledger = Ledger()
        self._rng = random.Random(options.seed)
        self._seq = 0
        self._patients = [make_fnr(self._rng) for _ in range(50)]
        self.connected = False

    def build_message(self, now: datetime) -> tuple[str, bytes, list[SimObservation]]:
        """One ORU^R01 v2.5.1 as this analyser would send it (also used by the benchmark).

        A message carries 5-20 results: one patient/specimen group per up to six tests.
        """
        opts = self.options
        self._seq += 1
        control_id = f"{opts.instrument_id[:8]}{self._seq:010d}"
        stamp = format_ts(now.astimezone(UTC))
        count = self._rng.randint(opts.results_min, opts.results_max)
        segments = [
            f"MSH|^~\\&|{opts.instrument_id}|{opts.serial}|TRYGG|LAB|{stamp}||ORU^R01^ORU_R01|"
            f"{control_id}|P|2.5.1"
        ]
        sent: list[SimObservation] = []
        group = 0
        while len(sent) < count:
            group += 1
            specimen = f"{opts.instrument_id[:6]}-{self._seq:08d}-{group}"
            patient = self._rng.choice(self._patients)
            if self._rng.random() < opts.invalid_id_share:
                patient = corrupt_fnr(patient)
            segments.append(f"PID|{group}||{patient}^^^^NNNOR")
            segments.append(f"OBR|{group}||{specimen}|PANEL^Panel^L|||{stamp}")
            for index, (code, name, unit, low, high, decimals) in enumerate(TESTS):
                if len(sent) >= count:
                    break
                if self._rng.random() < opts.unmapped_share:
                    code, name = f"X{code}", "Ukjent analyse"
                value = f"{self._rng.uniform(low, high):.{decimals}f}"
                segments.append(
                    f"OBX|{index + 1}|NM|{code}^{name}^L||{value}|{unit}|{low}-{high}||||F|||"
                    f"{stamp}||{opts.operator_id}||{opts.serial}"
                )
                sent.append(SimObservation(specimen, code, value))
        return control_id, ("\r".join(segments) + "\r").encode("utf-8"), sent

    async def run(self) -> None:
        """Send until cancelled (or max_messages); reconnect when the gateway goes away."""
        opts = self.options
        interval = 1.0 / opts.rate_per_s if opts.rate_per_s > 0 else 0.0
        address = f"[{opts.host}]:{opts.port}" if ":" in opts.host else f"{opts.host}:{opts.port}"
        connector = TcpConnector(f"tcp://{address}", opts.host, opts.port)
        while opts.max_messages is None or self.ledger.sent_messages < opts.max_messages:
            try:
                stream = await connector.connect()
            except TransportError:
                self.connected = False
                await asyncio.sleep(0.5)
                continue
            self.connected = True
            try:
                await self._send_loop(stream, interval)
            except GatewayError:
                pass  # the gateway hung up, broke the link or did not answer: connect again
            finally:
                self.connected = False
                await stream.aclose()

    async def _send_loop(self, stream: ByteStream, interval: float) -> None:
        opts = self.options
        client = MllpClient(stream, ack_timeout_s=opts.ack_timeout_s)
        while opts.max_messages is None or self.ledger.sent_messages < opts.max_messages:
            control_id, payload, observations = self.build_message(datetime.now(UTC))
            if self._rng.random() < opts.broken_share:
                # a framed message that is not HL7: the gateway must quarantine it and answer AE
                control_id, observations = "", []
                payload = b"MSH|^~\\&|" + opts.instrument_id.encode() + b"|\xff\xfe garbled line"
            if self._rng.random() < opts.garbage_share:
                await stream.write(b"\x00\xffNOISE\r\n")
            repeats = 2 if self._rng.random() < opts.duplicate_share else 1
            for _ in range(repeats):
                self.ledger.sent_messages += 1
                self.ledger.unacked.extend(observations)
                ack = await client.exchange(payload, control_id=control_id)
                if observations:
                    del self.ledger.unacked[-len(observations) :]
                if ack.code == "AA":
                    self.ledger.acked_messages += 1
                    self.ledger.acked.extend(observations)
                else:
                    self.ledger.error_acks += 1
            if interval:
                await asyncio.sleep(interval * self._rng.uniform(0.5, 1.5))
