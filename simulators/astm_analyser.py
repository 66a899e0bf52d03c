"""A simulated ASTM analyser (E1381 instrument role) that sends a profile's results, asks host
queries, keeps a ledger of what the host acknowledged, and injects faults on demand.

It runs the project's own sans-IO ``Link("instrument")`` over any ByteStream: a TCP connection
to the gateway's ``tcp-listen://`` port (``connector_for("tcp://host:port")``) or the master side
of a pty pair (``PtyConnector(pair)``; the gateway opens ``pair.url(9600)``). Messages come
from the model of the analyser an ``AstmProfile`` reads (``simulators.astm_models``):
``model.sample`` -> ``model.message`` -> ``encode_message``.

The ledger lists, for every message whose last frame the host ACKed (``MessageSent``), the
specimen, the sample and the exact E1394 bytes, so a test can reconcile "what the gateway
ACKed" against its store. Faults live in ``simulators.astm_faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from drivers.analysers.astm_base import AstmProfile, format_astm_datetime
from drivers.errors import ConfigError, GatewayError, TransportError
from drivers.protocols.astm.events import (
    LinkIdle,
    MessageReceived,
    MessageSent,
    ProtocolViolation,
    SendFailed,
)
from drivers.protocols.astm.frames import ENQ, MAX_TEXT, STX
from drivers.protocols.astm.link import Link, State
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Record,
    encode_message,
    text_field,
)
from drivers.transports import ByteStream, Connector
from simulators.astm_faults import Fault, FaultKind, FaultWire, HangUp, Pause, Write
from simulators.astm_models import ANY_CONTROL, ControlRun, SimSample, model_for
from simulators.astm_models.qc import levels_of
from simulators.national_id import corrupt_fnr, make_fnr
from simulators.pty import PtyPair

_RECEIVING = (State.RECEIVING, State.CONFIRMING)


def _state(link: Link) -> State:
    # a call, so a type checker does not keep a state narrowed across awaits
    return link.state


@dataclass
class AstmSimOptions:
    """How the simulated analyser behaves. ``count=None`` runs until cancelled."""

    seed: int | None = None
    count: int | None = 10
    #: samples per second; 0 sends them back to back
    rate_per_s: float = 0.0
    qc_share: float = 0.0
    #: the analyser's drift: every control value is moved by this many SDs of its target
    #: (``simulators.astm_models.qc``); read at each control run, so a test or the demo can
    #: switch a drift on and off while the simulator runs
    qc_shift_sd: float = 0.0
    #: the test codes the drift moves; empty: every test
    qc_shift_tests: tuple[str, ...] = ()
    #: the analyser's own operator IDs (from the site's config)
    operator_ids: tuple[str, ...] = ("OP1",)
    invalid_patient_share: float = 0.0
    #: share of samples whose orders are asked for (Q record) before the result goes out
    query_share: float = 0.0
    #: patient samples' specimen IDs in turn (tubes labelled for orders the LIS placed);
    #: when they run out, or when empty, IDs are made up
    specimen_ids: tuple[str, ...] = ()
    faults: tuple[Fault, ...] = ()
    #: frame text size; below 240 makes multi-frame messages out of short ones
    max_text: int = MAX_TEXT
    #: whole-message attempts before a message the host keeps refusing is abandoned
    max_attempts: int = 3
    reconnect_delay_s: float = 0.2
    #: how long to wait for the host's reply to a query (real seconds)
    reply_timeout_s: float = 30.0
    #: the link's timers run this many times faster than the wall clock (tests)
    time_scale: float = 1.0
    sender_name: str = "TRYGG-SIM"
    serial: str = "SIM0001"
    delimiters: Delimiters = DEFAULT_DELIMITERS

    def __post_init__(self) -> None:
        for name in ("qc_share", "invalid_patient_share", "query_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"astm simulator: {name} must be 0..1")
        if not self.operator_ids:
            raise ConfigError("astm simulator: operator_ids must name at least one operator")
        if self.count is not None and self.count < 0:
            raise ConfigError("astm simulator: count must not be negative")
        if self.max_attempts < 1 or self.time_scale <= 0 or self.rate_per_s < 0:
            raise ConfigError("astm simulator: max_attempts, time_scale and rate must be > 0")


@dataclass(frozen=True, slots=True)
class AckedMessage:
    """A result message whose last frame the host acknowledged."""

    number: int
    specimen_id: str
    sample: SimSample
    raw: bytes
    acked_at: datetime
    patient_id_valid: bool


@dataclass(slots=True)
class QueryExchange:
    """One host query: the Q message the host acknowledged and what came back."""

    number: int
    specimen_id: str
    raw: bytes
    replies: list[bytes] = field(default_factory=list)
    #: the simulator refused the reply's frames (nak_storm)
    refused: bool = False
    #: the host's reply session ended (with or without a message)
    answered: bool = False
    #: no reply within reply_timeout_s, or the connection went
    lost: str = ""


@dataclass(frozen=True, slots=True)
class FailedSend:
    number: int
    specimen_id: str
    reason: str


@dataclass
class AstmLedger:
    """What the simulator sent and what the host did with it."""

    acked: list[AckedMessage] = field(default_factory=list)
    queries: list[QueryExchange] = field(default_factory=list)
    #: every SendFailed (a later attempt may still succeed)
    failures: list[FailedSend] = field(default_factory=list)
    #: message numbers given up after max_attempts
    abandoned: list[int] = field(default_factory=list)
    #: messages the host sent that answered no query of ours
    unsolicited: list[bytes] = field(default_factory=list)
    faults_fired: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    #: frames of the host's the simulator refused (nak_storm)
    refused_frames: int = 0
    connections: int = 0


@dataclass(slots=True)
class _Outgoing:
    number: int
    is_query: bool
    raw: bytes
    sample: SimSample
    patient_id_valid: bool
    faults: tuple[Fault, ...]
    attempts: int = 0
    faults_spent: bool = False


@dataclass(frozen=True, slots=True)
class _AskedControl:
    """A control run ``run_controls`` queued; ``shift_sd`` None: the options' when drawn."""

    test: str
    level: str
    shift_sd: float | None


#: longest wait between looks at the work queue: ``run_controls`` may add work from outside
_POLL_S = 0.25


class _ConnectionLost(Exception):
    """The stream closed or broke, or a fault hung up."""


def query_message(
    specimen_id: str,
    now: datetime,
    *,
    sender: str = "TRYGG-SIM",
    serial: str = "SIM0001",
    delimiters: Delimiters = DEFAULT_DELIMITERS,
) -> bytes:
    """H, Q, L asking the host for the orders of one specimen (LIS2-A2 request information).

    Q.3 starting range ID ``^SPECIMEN`` (patient ID component empty), Q.5 ``ALL`` tests,
    Q.13 request information status ``O`` (orders), as in the corpus's queries.
    """
    empty = text_field("")
    header = Record(
        "H",
        (
            ((delimiters.definition,),),
            empty,
            empty,
            ((sender, serial),),
            *([empty] * 6),
            text_field("P"),
            text_field("LIS2-A2"),
            text_field(format_astm_datetime(now)),
        ),
    )
    query = Record(
        "Q",
        (
            text_field("1"),
            (("", specimen_id),),
            empty,
            text_field("ALL"),
            *([empty] * 7),
            text_field("O"),
        ),
    )
    end = Record("L", (text_field("1"), text_field("N")))
    return encode_message([header, query, end], delimiters)


class PtyConnector:
    """A Connector over a pty pair's master side: each connect() "plugs the cable in" again."""

    def __init__(self, pair: PtyPair) -> None:
        self._pair = pair

    @property
    def url(self) -> str:
        return f"pty-master://{self._pair.slave_path}"

    async def connect(self) -> ByteStream:
        return self._pair.master_stream()

    async def aclose(self) -> None:
        pass


class AstmAnalyserSim:
    """The simulated analyser. ``run(connector)`` until done; ``serve(stream)`` for one stream."""

    def __init__(self, profile: AstmProfile, options: AstmSimOptions) -> None:
        self.profile = profile
        self.model = model_for(profile)
        self.options = options
        self.ledger = AstmLedger()
        self._rng = random.Random(options.seed)
        self._labelled = 0  # specimen_ids used so far
        self._wire = FaultWire(self._rng)
        self._numbers = 0
        self._samples = 0
        self._backlog: deque[_Outgoing] = deque()
        self._current: _Outgoing | None = None
        self._current_id = 0
        self._current_faults: tuple[Fault, ...] = ()
        self._awaiting: QueryExchange | None = None
        self._reply_deadline = 0.0
        self._host_session_seen = False
        self._contention_armed = False
        self._force_next = False
        self._next_due = 0.0
        #: control runs asked for (``run_controls``): sent next, before the random samples
        self._controls: deque[_AskedControl] = deque()

    # --- public ---------------------------------------------------------------------------

    def run_controls(
        self,
        tests: Iterable[str] = (),
        *,
        levels: Iterable[str] = (),
        shift_sd: float | None = None,
    ) -> int:
        """Ask for control runs now: every level (or ``levels``) of the control of each of
        ``tests`` (empty: every control of the model), sent next, ahead of the random samples
        and on top of ``count``; one run per lot and level (a CBC control run measures all
        its parameters). ``shift_sd`` drifts these runs by that many SDs (on
        ``qc_shift_tests``); None: the options' ``qc_shift_sd`` when each run is drawn.
        Returns how many runs were queued; ``ConfigError`` for a test without a control."""
        materials = self.model.qc_materials
        wanted = tuple(tests) or tuple(dict.fromkeys(m.test_code for m in materials))
        chosen = tuple(levels)
        runs: list[_AskedControl] = []
        covered: set[tuple[str, str]] = set()  # (lot, level): one run measures a whole lot
        for test in wanted:
            known = levels_of(materials, test)
            if not known:
                raise ConfigError(f"astm simulator: {self.profile.key} has no control for {test!r}")
            lots = {m.level: m.lot for m in materials if m.test_code == test}
            for level in chosen or known:
                if level not in known:
                    raise ConfigError(f"astm simulator: {test!r} has no control level {level!r}")
                if (lots[level], level) in covered:
                    continue
                covered.add((lots[level], level))
                runs.append(_AskedControl(test, level, shift_sd))
        self._controls.extend(runs)
        return len(runs)

    @property
    def controls_pending(self) -> int:
        """Control runs asked for (``run_controls``) and not yet drawn."""
        return len(self._controls)

    @property
    def finished(self) -> bool:
        """Every sample was sent (or abandoned) and no query waits for its reply."""
        count = self.options.count
        return (
            count is not None
            and self._samples >= count
            and not self._controls
            and not self._backlog
            and self._current is None
            and self._awaiting is None
        )

    async def run(self, connector: Connector) -> AstmLedger:
        """Connect, send everything, reconnect after a hang-up; return the ledger when done."""
        try:
            while not self.finished:
                try:
                    stream = await connector.connect()
                except TransportError:
                    await asyncio.sleep(self.options.reconnect_delay_s)
                    continue
                if await self.serve(stream):
                    break
                await asyncio.sleep(self.options.reconnect_delay_s)
        finally:
            await connector.aclose()
        return self.ledger

    async def serve(self, stream: ByteStream) -> bool:
        """Talk over one stream; True when all work is done, False when the stream was lost
        (the message in flight is then sent again, whole, on the next stream)."""
        self.ledger.connections += 1
        link = Link(
            "instrument",
            now=self._now(),
            lenient=self.profile.lenient,
            max_text=self.options.max_text,
        )
        inbox: asyncio.Queue[bytes] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(stream, inbox))
        try:
            await self._converse(link, stream, inbox)
            return True
        except _ConnectionLost:
            self._connection_lost()
            return False
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await stream.aclose()

    # --- the conversation -----------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() * self.options.time_scale

    async def _converse(self, link: Link, stream: ByteStream, inbox: asyncio.Queue[bytes]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._check_reply_deadline(loop.time())
            await self._settle(link, stream)
            if self.finished and link.state is State.NEUTRAL and not link.pending:
                return
            try:
                async with asyncio.timeout(self._wait_s(link, loop.time())):
                    data = await inbox.get()
            except TimeoutError:
                link.handle_timeout(self._now())
                continue
            if not data:
                raise _ConnectionLost
            await self._receive(link, stream, data)

    async def _receive(self, link: Link, stream: ByteStream, data: bytes) -> None:
        if self._contention_armed and link.state is State.NEUTRAL and ENQ in data:
            # The host's ENQ for the query reply is here: answer it with an ENQ of our own
            # before the link sees it, so both ENQs cross (E1381 6.2 contention).
            cut = data.index(ENQ)
            if cut:
                link.receive_data(data[:cut], self._now())
                await self._settle(link, stream)
            self._contention_armed = False
            self._force_next = True
            await self._settle(link, stream)
            self._force_next = False
            if _state(link) is State.ESTABLISHING:
                self._note_fault(FaultKind.CONTENTION)
            data = data[cut:]
        # only ACKs that answer frames may be refused, never the ACK to an ENQ
        answering_frames = link.state in _RECEIVING and STX in data
        link.receive_data(data, self._now())
        if self._awaiting is not None and link.state in _RECEIVING:
            self._host_session_seen = True
        await self._write(link, stream, answering_frames=answering_frames)

    async def _settle(self, link: Link, stream: ByteStream) -> None:
        """Handle events, queue the next message, write what the link has, until quiet."""
        while True:
            handled = self._handle_events(link)
            self._start_next(link)
            wrote = await self._write(link, stream)
            if not handled and not wrote:
                return

    async def _write(
        self, link: Link, stream: ByteStream, *, answering_frames: bool = False
    ) -> bool:
        wrote = False
        while out := link.data_to_send():
            wrote = True
            rewrite = self._wire.rewrite(out, answering_frames=answering_frames)
            self._collect_fired()
            for action in rewrite.actions:
                if isinstance(action, Write):
                    await self._send(stream, action.data)
                elif isinstance(action, Pause):
                    await asyncio.sleep(action.seconds)
                elif isinstance(action, HangUp):
                    raise _ConnectionLost
            if rewrite.feed_back:
                link.receive_data(rewrite.feed_back, self._now())
        return wrote

    async def _send(self, stream: ByteStream, data: bytes) -> None:
        try:
            await stream.write(data)
        except GatewayError as exc:
            raise _ConnectionLost from exc

    @staticmethod
    async def _pump(stream: ByteStream, inbox: asyncio.Queue[bytes]) -> None:
        try:
            while data := await stream.read():
                inbox.put_nowait(data)
        except GatewayError:
            pass
        inbox.put_nowait(b"")

    def _wait_s(self, link: Link, loop_now: float) -> float | None:
        waits: list[float] = []
        deadline = link.next_deadline()
        if deadline is not None:
            waits.append((deadline - self._now()) / self.options.time_scale)
        if self._current is None and self._awaiting is None:
            if self._controls:
                waits.append(0.0)
            elif self._more_samples():
                waits.append(self._next_due - loop_now)
        if not self.finished:
            waits.append(_POLL_S)
        if self._awaiting is not None:
            waits.append(self._reply_deadline - loop_now)
        return max(0.0, min(waits)) if waits else None

    # --- messages -------------------------------------------------------------------------

    def _more_samples(self) -> bool:
        return self.options.count is None or self._samples < self.options.count

    def _start_next(self, link: Link) -> None:
        if self._current is not None or (self._awaiting is not None and not self._force_next):
            return
        if not self._backlog and self._controls:
            self._new_sample(self._controls.popleft())  # asked for: now, outside the rate
        elif not self._backlog:
            loop_now = asyncio.get_running_loop().time()
            if not self._more_samples() or loop_now < self._next_due:
                return
            self._new_sample()
            rate = self.options.rate_per_s
            self._next_due = max(self._next_due, loop_now) + (1.0 / rate if rate else 0.0)
        self._force_next = False
        message = self._backlog.popleft()
        self._current = message
        self._current_id = link.send_message(message.raw, self._now())
        # Faults strike a message's first attempt only: the resend after a fault goes clean.
        self._current_faults = () if message.faults_spent else message.faults
        self._wire.begin_message(self._current_faults)
        message.faults_spent = True

    def _new_sample(self, asked: _AskedControl | None = None) -> None:
        opts, rng = self.options, self._rng
        if asked is None:
            self._samples += 1
            qc = rng.random() < opts.qc_share
        else:
            qc = True  # on top of count
        control = self._control_run(asked) if qc else ANY_CONTROL
        valid = True
        patient = ""
        if not qc:
            patient = make_fnr(rng)
            if rng.random() < opts.invalid_patient_share:
                patient, valid = corrupt_fnr(patient), False
        now = datetime.now(UTC)
        sample = self.model.sample(
            rng,
            operator_id=rng.choice(opts.operator_ids),
            qc=qc,
            patient_id=patient,
            now=now,
            control=control,
        )
        if not qc and self._labelled < len(opts.specimen_ids):
            sample = replace(sample, specimen_id=opts.specimen_ids[self._labelled])
            self._labelled += 1
        if rng.random() < opts.query_share:
            raw = query_message(
                sample.specimen_id,
                now,
                sender=opts.sender_name,
                serial=opts.serial,
                delimiters=opts.delimiters,
            )
            self._backlog.append(self._outgoing(raw, sample, valid, is_query=True))
        records = self.model.message(sample, opts.delimiters)
        raw = encode_message(records, opts.delimiters, encoding=self.profile.encoding)
        self._backlog.append(self._outgoing(raw, sample, valid, is_query=False))

    def _control_run(self, asked: _AskedControl | None) -> ControlRun:
        """The control run to draw: the one asked for, or any; the drift as set now."""
        opts = self.options
        shift = opts.qc_shift_sd if asked is None or asked.shift_sd is None else asked.shift_sd
        test, level = (asked.test, asked.level) if asked is not None else ("", "")
        return ControlRun(test, level, shift, tuple(opts.qc_shift_tests))

    def _outgoing(self, raw: bytes, sample: SimSample, valid: bool, *, is_query: bool) -> _Outgoing:
        self._numbers += 1
        number = self._numbers
        faults = tuple(
            f for f in self.options.faults if f.fires(number, self._rng, is_query=is_query)
        )
        return _Outgoing(number, is_query, raw, sample, valid, faults)

    # --- events ---------------------------------------------------------------------------

    def _handle_events(self, link: Link) -> bool:
        handled = False
        while (event := link.next_event()) is not None:
            handled = True
            if isinstance(event, MessageSent):
                self._sent(event)
            elif isinstance(event, SendFailed):
                self._failed(event)
            elif isinstance(event, MessageReceived):
                self._received(event.message)
            elif isinstance(event, LinkIdle):
                self._idle()
            elif isinstance(event, ProtocolViolation):
                self.ledger.violations.append(event.detail)
        return handled

    def _sent(self, event: MessageSent) -> None:
        message = self._current
        if message is None or event.id != self._current_id:
            return
        self._current = None
        specimen = message.sample.specimen_id
        if not message.is_query:
            self.ledger.acked.append(
                AckedMessage(
                    message.number,
                    specimen,
                    message.sample,
                    message.raw,
                    datetime.now(UTC),
                    message.patient_id_valid,
                )
            )
            return
        exchange = QueryExchange(message.number, specimen, message.raw)
        self.ledger.queries.append(exchange)
        self._awaiting = exchange
        self._host_session_seen = False
        self._reply_deadline = asyncio.get_running_loop().time() + self.options.reply_timeout_s
        kinds = {f.kind for f in self._current_faults}
        if FaultKind.NAK_STORM in kinds:
            self._wire.refuse_frames = True
            exchange.refused = True
            self._note_fault(FaultKind.NAK_STORM)
        self._contention_armed = FaultKind.CONTENTION in kinds

    def _failed(self, event: SendFailed) -> None:
        message = self._current
        if message is None or event.id != self._current_id:
            return
        self._current = None
        self.ledger.failures.append(
            FailedSend(message.number, message.sample.specimen_id, event.reason)
        )
        message.attempts += 1
        if message.attempts < self.options.max_attempts:
            self._backlog.appendleft(message)
        else:
            self.ledger.abandoned.append(message.number)

    def _received(self, message: bytes) -> None:
        if self._awaiting is not None and not self._awaiting.answered:
            self._awaiting.replies.append(message)
        else:
            self.ledger.unsolicited.append(message)

    def _idle(self) -> None:
        # LinkIdle also follows our own EOT; only the end of the host's session answers.
        if self._awaiting is not None and self._host_session_seen:
            self._awaiting.answered = True
            self._end_query()

    def _end_query(self) -> None:
        self._awaiting = None
        self._host_session_seen = False
        self._contention_armed = False
        self._wire.refuse_frames = False
        self.ledger.refused_frames += self._wire.refused
        self._wire.refused = 0

    def _check_reply_deadline(self, loop_now: float) -> None:
        if self._awaiting is not None and loop_now >= self._reply_deadline:
            self._awaiting.lost = f"no reply within {self.options.reply_timeout_s:g} s"
            self._end_query()

    def _connection_lost(self) -> None:
        if self._current is not None:
            self._backlog.appendleft(self._current)  # real analysers resend the whole message
            self._current = None
        if self._awaiting is not None:
            self._awaiting.lost = "connection lost before the reply"
            self._end_query()
        self._force_next = False

    def _note_fault(self, kind: FaultKind) -> None:
        self.ledger.faults_fired[kind.value] += 1

    def _collect_fired(self) -> None:
        for kind in self._wire.fired:
            self._note_fault(kind)
        self._wire.fired.clear()
