"""The LIS simulator: takes ORU^R01 over MLLP, validates, answers AA/AE/AR, injects faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, TextIO

import hl7

from drivers.errors import ConfigError, TransportError
from drivers.mllp import Handler, MllpServer
from drivers.protocols.hl7.ack import build_ack, read_msh
from drivers.protocols.hl7.message import decode_message, normalise_segments
from drivers.transports import ByteStream, TcpListenConnector

__all__ = [
    "LisSimOptions",
    "LisSimulator",
    "Verdict",
    "run_lis_sim",
    "validate_basic",
    "validate_fast",
    "validate_hl7apy",
]


@dataclass
class LisSimOptions:
    """What the simulated LIS does; the CLI (`trygg lis-sim`) fills this from its options.

    ``ar_share`` / ``ae_share``: share of otherwise valid messages answered AR / AE.
    ``drop_share``: share of messages answered by closing the connection instead.
    ``down_after`` / ``down_for_s``: after every ``down_after`` messages, stop listening (and
    close every connection) for ``down_for_s`` seconds, then listen again on the same port.
    ``validate``: "basic" (python-hl7 parse; ORU^R01, v2.5.1, PID/OBR/OBX present and in that
    order) or "hl7apy" (basic, then full v2.5.1 structure validation with hl7apy).
    ``port`` 0 picks a free port; ``LisSimulator.port`` tells which. ``tls``: a server
    ``ssl.SSLContext`` to speak TLS with (as a LIS behind tls:// does), None for plain TCP.
    """

    host: str = "127.0.0.1"
    port: int = 2575
    record: Path | None = None
    ae_share: float = 0.0
    ar_share: float = 0.0
    delay_s: float = 0.0
    drop_share: float = 0.0
    down_after: int | None = None
    down_for_s: float = 0.0
    validate: Literal["fast", "basic", "hl7apy"] = "basic"
    seed: int | None = None
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        for name in ("ae_share", "ar_share", "drop_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"lis-sim: {name} must be between 0 and 1, not {share}")
        if self.ae_share + self.ar_share > 1.0:
            raise ConfigError("lis-sim: ae_share + ar_share must not exceed 1")
        if self.delay_s < 0 or self.down_for_s < 0:
            raise ConfigError("lis-sim: delay_s and down_for_s must not be negative")
        if self.down_after is not None and self.down_after < 1:
            raise ConfigError("lis-sim: down_after must be at least 1")
        if self.validate not in ("fast", "basic", "hl7apy"):
            raise ConfigError(
                f"lis-sim: validate must be 'basic' or 'hl7apy', not {self.validate!r}"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"lis-sim: port {self.port} is out of range")


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the LIS answers one message: ACK code, text and (for errors) a table 0357 code."""

    code: str
    text: str = ""
    error_code: str = ""
    location: str = ""


_ACCEPT = Verdict("AA")


def validate_basic(message: bytes) -> Verdict:
    """python-hl7 parse, then MSH-9 = ORU^R01, MSH-12 = 2.5.1, MSH-10 set, PID < OBR < OBX."""
    lines = normalise_segments(decode_message(message))
    try:
        parsed = hl7.parse("\r".join(lines))
        ids = [str(segment[0]) for segment in parsed]
        msh = parsed[0]
        fields = [str(f) for f in msh]
    except Exception as exc:  # python-hl7 raises untyped errors; this is its boundary
        return Verdict("AR", f"unparseable message: {exc}", "100", "MSH")
    component = parsed.separators[3] if len(parsed.separators) > 3 else "^"
    return _check_header(ids, fields, component, parsed.separators[2])


def validate_fast(message: bytes) -> Verdict:
    """The checks of ``validate_basic`` on a plain split of the lines (no full parse): for
    benchmarks, where the LIS simulator must not be the slowest part of the rig."""
    lines = normalise_segments(decode_message(message))
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        return Verdict("AR", "the message does not start with an MSH segment", "100", "MSH")
    separator = lines[0][3]
    ids = [line.split(separator, 1)[0] for line in lines]
    fields = ["MSH", separator, *lines[0].split(separator)[1:]]
    encoding = lines[0][4:8]
    return _check_header(ids, fields, encoding[0], encoding[1])


def _check_header(ids: list[str], fields: list[str], component: str, repetition: str) -> Verdict:
    def field(n: int) -> str:
        return fields[n] if n < len(fields) else ""

    msg_type = field(9).split(repetition)[0].split(component)
    msg_type += ["", "", ""]
    if msg_type[0] != "ORU":
        return Verdict("AR", f"unsupported message type {field(9)!r}", "200", "MSH-9")
    if msg_type[1] != "R01" or msg_type[2] not in ("", "ORU_R01"):
        return Verdict("AR", f"unsupported event {field(9)!r}", "201", "MSH-9")
    version = field(12).split(component)[0]
    if version != "2.5.1":
        return Verdict("AR", f"unsupported version {version!r}, expected 2.5.1", "203", "MSH-12")
    if not field(10):
        return Verdict("AE", "MSH-10 (message control ID) is empty", "101", "MSH-10")
    for required in ("PID", "OBR", "OBX"):
        if required not in ids:
            return Verdict("AE", f"required segment {required} is missing", "100", required)
    pid, obr, obx = ids.index("PID"), ids.index("OBR"), ids.index("OBX")
    if not pid < obr < obx:
        return Verdict("AE", "segments out of order: expected PID, then OBR, then OBX", "100")
    return _ACCEPT


def validate_hl7apy(message: bytes) -> Verdict:
    """``validate_basic``, then hl7apy's strict v2.5.1 ORU_R01 structure validation."""
    verdict = validate_basic(message)
    if verdict.code != "AA":
        return verdict
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    lines = normalise_segments(decode_message(message))
    # hl7apy 1.3 cannot place a second PATIENT_RESULT group (a second PID): check each
    # patient's part behind the same MSH (segment order across groups is checked above)
    groups: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("PID") or not groups:
            groups.append([])
        groups[-1].append(line)
    try:
        for group in groups:
            text = "\r".join([lines[0], *group])
            parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            parsed.validate()
    except Exception as exc:  # hl7apy's errors are untyped too; this is its boundary
        return Verdict("AE", f"hl7apy: {type(exc).__name__}: {exc}", "100")
    return _ACCEPT


class LisSimulator:
    """A simulated LIS listening for MLLP connections; an async context manager.

    ``received`` counts messages, ``control_ids`` holds their MSH-10 in arrival order and
    ``ack_codes`` the answer given to each (None when the connection was dropped instead).
    """

    def __init__(self, opts: LisSimOptions) -> None:
        self.opts = opts
        self.received = 0
        self.control_ids: list[str] = []
        self.ack_codes: list[str | None] = []
        self.outages = 0
        self._rng = random.Random(opts.seed)
        self._port = opts.port
        self._server: MllpServer | None = None
        self._outage: asyncio.Task[None] | None = None
        self._record: TextIO | None = None
        self._since_up = 0
        self._closed = asyncio.Event()
        self._validate = {
            "fast": validate_fast,
            "basic": validate_basic,
            "hl7apy": validate_hl7apy,
        }[opts.validate]

    @property
    def port(self) -> int:
        """The TCP port (the one chosen when ``opts.port`` was 0)."""
        return self._port

    @property
    def listening(self) -> bool:
        """False while simulating an outage."""
        return self._server is not None

    async def __aenter__(self) -> LisSimulator:
        if self.opts.record is not None:
            try:
                self._record = self.opts.record.open("a", encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"lis-sim: cannot open the record file {self.opts.record}: {exc}"
                ) from exc
        try:
            await self._listen()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def serve_forever(self) -> None:
        """Serve until cancelled (or ``aclose``); enters the context itself if needed."""
        if self._server is None and self._outage is None and not self._closed.is_set():
            async with self:
                await self._closed.wait()
        else:
            await self._closed.wait()

    async def aclose(self) -> None:
        """Stop listening, close every connection and the record file."""
        self._closed.set()
        if self._outage is not None:
            self._outage.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outage
            self._outage = None
        await self._stop_listening()
        if self._record is not None:
            self._record.close()
            self._record = None

    async def _listen(self) -> None:
        host = self.opts.host
        address = f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}"
        connector = TcpListenConnector(
            f"tcp-listen://{address}", host, self._port, tls=self.opts.tls
        )
        try:
            self._port = await connector.start()  # a busy port: TransportError naming it
        except TransportError:
            await connector.aclose()
            raise
        self._server = MllpServer(connector, self._handler_for)
        self._server.start()

    async def _stop_listening(self) -> None:
        """Stop listening and close every connection (their tasks end, or are cancelled)."""
        server, self._server = self._server, None
        if server is not None:
            await server.aclose()

    async def _go_down(self) -> None:
        self.outages += 1
        await self._stop_listening()
        await asyncio.sleep(self.opts.down_for_s)
        while True:
            try:
                await self._listen()
                break
            except TransportError:
                await asyncio.sleep(0.05)  # the port is still held; a real LIS would retry too
        self._outage = None

    def _handler_for(self, stream: ByteStream) -> Handler:
        return self._handle  # one handler for every connection: the counters are the LIS's

    async def _handle(self, payload: bytes) -> bytes | None:
        """The ACK for one message; None when the connection is to be closed instead."""
        if self._server is None or self._outage is not None or self._closed.is_set():
            return None  # an outage is due or under way: bytes still buffered are not processed
        received_at = datetime.now(UTC)
        self.received += 1
        self._since_up += 1
        msh = read_msh(payload)
        control_id = msh.control_id if msh is not None else ""
        self.control_ids.append(control_id)
        drop_roll, answer_roll = self._rng.random(), self._rng.random()
        if drop_roll < self.opts.drop_share:
            self.ack_codes.append(None)
            self._write_record(received_at, control_id, None, payload)
            self._maybe_go_down()
            return None
        verdict = self._validate(payload)
        if verdict.code == "AA":
            if answer_roll < self.opts.ar_share:
                verdict = Verdict("AR", "simulated rejection (ar_share)", "207")
            elif answer_roll < self.opts.ar_share + self.opts.ae_share:
                verdict = Verdict("AE", "simulated application error (ae_share)", "207")
        self.ack_codes.append(verdict.code)
        self._write_record(received_at, control_id, verdict.code, payload)
        if self.opts.delay_s:
            await asyncio.sleep(self.opts.delay_s)
        ack = build_ack(
            payload,
            verdict.code,
            control_id=f"LIS{self.received:08d}",
            now=datetime.now(UTC),
            text=verdict.text,
            sending_application="TRYGG-LIS-SIM",
            error_code=verdict.error_code,
            error_location=verdict.location,
        )
        self._maybe_go_down()  # the outage closes this connection too, after this ACK
        return ack

    def _maybe_go_down(self) -> bool:
        down_after = self.opts.down_after
        if down_after is None or self._since_up < down_after or self._outage is not None:
            return False
        self._since_up = 0
        self._outage = asyncio.create_task(self._go_down())
        return True

    def _write_record(
        self, received_at: datetime, control_id: str, ack_code: str | None, payload: bytes
    ) -> None:
        if self._record is None:
            return
        line = {
            "received_at": received_at.isoformat(),
            "control_id": control_id,
            "ack_code": ack_code,
            "message": decode_message(payload),
        }
        self._record.write(json.dumps(line) + "\n")
        self._record.flush()


async def run_lis_sim(opts: LisSimOptions) -> None:
    """Run the simulated LIS until cancelled; prints nothing (the CLI does)."""
    async with LisSimulator(opts) as sim:
        await sim.serve_forever()
