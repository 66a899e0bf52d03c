"""ASTM E1381 (LIS1-A) low-level link state machine, sans-IO, for the host and instrument roles."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drivers.errors import LocalProtocolError, RemoteProtocolError
from drivers.protocols.astm.events import (
    Event,
    LinkIdle,
    MessageReceived,
    MessageSent,
    ProtocolViolation,
    SendFailed,
)
from drivers.protocols.astm.frames import (
    ACK,
    CR,
    ENQ,
    EOT,
    ETB,
    ETX,
    LF,
    MAX_TEXT,
    NAK,
    STX,
    FrameAssembler,
    encode_frames,
)

Role = Literal["host", "instrument"]

#: E1381 6.5.2 (timeouts): the sender waits 15 s for a reply to ENQ or to a frame, then enters
#: the termination phase.
REPLY_TIMEOUT = 15.0
#: E1381 6.5.2: the receiver waits 30 s for a frame or EOT, then regards the link as neutral.
RECEIVE_TIMEOUT = 30.0
#: E1381 6.2 (establishment): on NAK the sender "must wait at least 10 s before sending
#: another ENQ".
BUSY_RETRY = 10.0
#: E1381 6.2.1 (contention): the instrument has priority and sends ENQ again after at least 1 s.
#: Checked against the Roche cobas e 411 Host Interface Manual ("the cobas e 411 analyzer waits
#: for 1 second and replies [ENQ]"; "HOST must stop sending [ENQ]" and answer ACK or NAK).
#: The issue text gave the host 1 s and the instrument 20 s: the two roles were swapped.
INSTRUMENT_CONTENTION_RETRY = 1.0
#: E1381 6.2.1 (contention): the computer system stops trying to send, prepares to receive,
#: answers the instrument's next ENQ, and waits at least 20 s before it tries to send again
#: (the 20 s contention timer LIS hosts such as UniversaLIS also use).
HOST_CONTENTION_HOLD = 20.0
#: E1381 6.3.5 (receiver interrupts): after honouring an interrupt the sender may not re-enter
#: establishment "for at least 15 s or until the receiver has sent a message and returned the
#: link to neutral".
INTERRUPT_HOLD = 15.0
#: E1381 6.5.1 (defective frames): "If the sender attempts to send a frame unsuccessfully six
#: times, the sender must abort the message" (termination phase).
MAX_ATTEMPTS = 6
#: A frame buffer this long is handed to the decoder (which refuses it) so memory stays bounded.
MAX_FRAME_BUFFER = 1 << 16
#: Not in E1381; lenient only. A frame that stops after ETX/ETB without checksum or line end
#: (Snibe Maglumi: ``[STX]H|...L|1|N[CR][ETX]`` then silence) is taken as complete this long
#: after its last byte. The checksum and CR LF of an ordinary frame follow its ETX at line
#: speed (milliseconds), and the sender waits 15 s for our reply, so 1 s is safe both ways.
FRAME_TAIL_WAIT = 1.0
#: Stray bytes kept in one ProtocolViolation (consecutive strays are merged into one event).
MAX_STRAY_DATA = 256

#: Where a strict frame stops: LF ends it; STX, EOT or ENQ cut it short (most likely first).
_STRICT_FRAME_STOPS = (b"\n", b"\x02", b"\x04", b"\x05")
#: Where a lenient frame's text stops: ETX or ETB end it (checksum and line end are read
#: after); STX, EOT or ENQ cut it short. LF inside the text is tolerated.
_LENIENT_FRAME_STOPS = (b"\x03", b"\x17", b"\x02", b"\x04", b"\x05")
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


class State(enum.Enum):
    """Link states. Termination (send EOT, go neutral) is instantaneous here, not a state."""

    # Members are singletons compared by identity; hashing them by identity (in C) keeps the
    # table lookup, done once per frame, off Enum's Python-level __hash__.
    __hash__ = object.__hash__

    NEUTRAL = "neutral"
    ESTABLISHING = "establishing"
    SENDING = "transfer-sending"
    RECEIVING = "receiving"
    CONFIRMING = "receiving, final frame held until confirm_message()"


class Input(enum.Enum):
    """What the table is keyed on besides the state: a control byte, a frame, or a timeout."""

    __hash__ = object.__hash__  # as State.__hash__

    ENQ = "ENQ"
    ACK = "ACK"
    NAK = "NAK"
    EOT = "EOT"
    FRAME = "frame"
    OTHER = "other byte"
    TIMEOUT = "timeout"


_BYTE_INPUT = {ENQ: Input.ENQ, ACK: Input.ACK, NAK: Input.NAK, EOT: Input.EOT}


@dataclass(slots=True)
class _Outgoing:
    id: int
    message: bytes


class Link:
    """One end of an E1381 link. Feed it bytes and time; read events, bytes and deadlines.

    ``role`` decides contention (the instrument wins). ``lenient`` tolerates stray bytes
    before STX, empty sessions (ENQ then EOT, used as keep-alive), frames out of number
    sequence (reported), frames that end at ETX/ETB without checksum or line end (complete on
    the next control byte or after ``FRAME_TAIL_WAIT``), LF inside frame text, and every frame
    quirk ``decode_frame`` accepts in lenient mode. Set ``busy`` to answer ENQ with NAK.
    ``receive_data`` never raises: what the peer breaks is reported as ``ProtocolViolation``
    and the link recovers. Reads of any size are scanned in bulk, not byte by byte.
    With ``confirm=True`` the ACK to a message's last frame waits for ``confirm_message()``,
    so the driver can store the raw message before the instrument is told it arrived.
    """

    def __init__(
        self,
        role: Role,
        *,
        now: float,
        lenient: bool = False,
        max_text: int = MAX_TEXT,
        confirm: bool = False,
    ) -> None:
        if role not in ("host", "instrument"):
            raise LocalProtocolError(f"role must be 'host' or 'instrument', not {role!r}")
        if not 1 <= max_text <= MAX_TEXT:
            raise LocalProtocolError(f"max_text must be 1..{MAX_TEXT}, not {max_text}")
        self.role: Role = role
        self.lenient = lenient
        self.max_text = max_text
        self.confirm = confirm
        self.busy = False
        self._now = now
        self._state = State.NEUTRAL
        self._events: deque[Event] = deque()
        self._out = bytearray()
        self._deadline: float | None = None
        self._hold_until = now
        self._hold_for_interrupt = False
        # sender side
        self._queue: deque[_Outgoing] = deque()
        self._next_id = 1
        self._frames: list[bytes] = []
        self._frame_index = 0
        self._attempts = 0
        self._next_number = 1
        self._interrupted = False
        # receiver side
        self._assembler = FrameAssembler(lenient=lenient)
        self._frame_buf: bytearray | None = None
        self._frame_stops = _LENIENT_FRAME_STOPS if lenient else _STRICT_FRAME_STOPS
        self._tail = -1  # lenient: bytes read after the frame's ETX/ETB, -1 before it
        self._tail_deadline: float | None = None
        self._frames_in_session = 0
        self._interrupt_requested = False

    # --- public API -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state of the link."""
        return self._state

    @property
    def pending(self) -> int:
        """How many messages are queued or in transfer."""
        return len(self._queue)

    def send_message(self, message: bytes, now: float) -> int:
        """Queue ``message`` for transfer and return its id (for MessageSent / SendFailed)."""
        self._now = now
        encode_frames(message, max_text=self.max_text)  # refuse bad messages now, not later
        ident = self._next_id
        self._next_id += 1
        self._queue.append(_Outgoing(ident, message))
        self._maybe_start()
        return ident

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes from the peer (any chunking: a frame may arrive whole or byte by byte)."""
        self._now = now
        self._tail_deadline = None
        position, size = 0, len(data)
        while position < size:
            if self._frame_buf is not None:
                position = self._take_frame_bytes(data, position)
                continue
            byte = data[position]
            position += 1
            if byte == STX and self._state is State.RECEIVING:
                position = self._start_frame(data, position - 1)
                continue
            self._dispatch(_BYTE_INPUT.get(byte, Input.OTHER), data[position - 1 : position])
        if self._frame_buf is not None and self._tail >= 0:
            self._tail_deadline = now + FRAME_TAIL_WAIT
        self._maybe_start()

    def next_event(self) -> Event | None:
        """Return the next event, or None when there is none."""
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """When ``handle_timeout`` should next be called, or None if no timer runs."""
        times = [] if self._deadline is None else [self._deadline]
        if self._tail_deadline is not None:
            times.append(self._tail_deadline)
        if self._state is State.NEUTRAL and self._queue and self._hold_until > self._now:
            times.append(self._hold_until)
        return min(times, default=None)

    def handle_timeout(self, now: float) -> None:
        """Fire the timers that are due at ``now`` (calling it early is harmless)."""
        self._now = now
        if self._tail_deadline is not None and now >= self._tail_deadline:
            self._tail_deadline = None
            self._end_frame()
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._dispatch(Input.TIMEOUT, b"")
        self._maybe_start()

    def confirm_message(self, now: float) -> None:
        """Acknowledge the held last frame of a received message (only with ``confirm=True``)."""
        if self._state is not State.CONFIRMING:
            raise LocalProtocolError("no received message is waiting for confirmation")
        self._now = now
        self._state = State.RECEIVING
        self._deadline = now + RECEIVE_TIMEOUT
        self._acknowledge()
        self._maybe_start()

    def request_interrupt(self) -> None:
        """Answer the next good frame with EOT instead of ACK, asking the sender to stop."""
        if self._state not in (State.RECEIVING, State.CONFIRMING):
            raise LocalProtocolError("a receiver interrupt needs the link to be receiving")
        self._interrupt_requested = True

    # --- byte intake ----------------------------------------------------------------------

    def _start_frame(self, data: bytes, start: int) -> int:
        """A frame starts at ``data[start]`` (STX); return where to go on reading.

        A frame that ends within this read (the usual case) is handed on as one slice;
        otherwise its bytes are gathered in the frame buffer across reads.
        """
        end = self._whole_frame_end(data, start)
        if end:
            self._dispatch(Input.FRAME, data[start:end])
            return end
        self._frame_buf = bytearray((STX,))
        self._tail = -1
        return start + 1

    def _whole_frame_end(self, data: bytes, start: int) -> int:
        """Where a complete, ordinary frame starting at ``start`` ends in ``data``; 0 if not."""
        limit = min(len(data), start + MAX_FRAME_BUFFER)
        if not self.lenient:  # LF, and no STX/EOT/ENQ before it
            end = data.find(b"\n", start + 1, limit) + 1
            return end if end and not _holds_control(data, start + 1, end) else 0
        # Lenient: ETX/ETB then "C1 C2 CR"; anything else takes the careful path. The frame
        # ends at the CR, as it does there (the LF is a stray byte), so that a retransmission
        # is the same bytes however it was read and is caught as a repeat.
        stop = _first_of(data, _LENIENT_FRAME_STOPS, start + 1, limit)
        if (
            stop >= 0
            and data[stop] in (ETX, ETB)
            and data[stop + 3 : stop + 4] == b"\r"
            and data[stop + 1] in _HEX_DIGITS
            and data[stop + 2] in _HEX_DIGITS
        ):
            return stop + 4
        return 0

    def _take_frame_bytes(self, data: bytes, position: int) -> int:
        """Move frame bytes from ``data`` into the frame buffer in bulk; return where it stopped.

        Frame text is copied slice by slice up to the next byte that matters (found by one
        C-level search), so a 4 KiB read costs a few Python steps rather than one per byte.
        """
        buf = self._frame_buf
        assert buf is not None
        if self._tail >= 0:
            return self._take_tail(data, position)
        end = min(len(data), position + MAX_FRAME_BUFFER - len(buf))
        stop = _first_of(data, self._frame_stops, position, end)
        if stop < 0:
            buf += data[position:end]
            if len(buf) >= MAX_FRAME_BUFFER:
                self._end_frame()
            return end
        byte = data[stop]
        if byte in (STX, ENQ, EOT):
            # E1381 6.6: these never occur inside a frame; the frame is lost, the byte counts.
            buf += data[position:stop]
            self._frame_buf = None
            self._violation("frame cut short by a control byte", bytes(buf))
            return stop
        buf += data[position : stop + 1]
        if byte == LF:
            self._end_frame()
        else:  # lenient: ETX or ETB; the checksum and line end, if any, follow
            self._tail = 0
        return stop + 1

    def _take_tail(self, data: bytes, position: int) -> int:
        """Lenient: read what follows ETX/ETB, ``C1 C2 CR LF`` in full or in part."""
        buf = self._frame_buf
        assert buf is not None
        while position < len(data):
            byte = data[position]
            if byte in (CR, LF):
                # "ETX C1 C2 CR" or "ETX CR" ends the frame; a later LF is then a stray byte.
                buf.append(byte)
                self._end_frame()
                return position + 1
            if byte not in _HEX_DIGITS or self._tail >= 2:
                self._end_frame()  # no line end: the byte belongs to what comes next
                return position
            buf.append(byte)
            self._tail += 1
            position += 1
        return position

    def _end_frame(self) -> None:
        buf = self._frame_buf
        if buf is None:
            return
        self._frame_buf = None
        self._tail = -1
        self._tail_deadline = None
        self._dispatch(Input.FRAME, bytes(buf))

    def _dispatch(self, event: Input, data: bytes) -> None:
        handler = _TABLE.get((self._state, event))
        if handler is None:
            self._stray(data)
        else:
            handler(self, data)

    # --- helpers --------------------------------------------------------------------------

    def _send(self, byte: int) -> None:
        self._out.append(byte)

    def _violation(self, detail: str, data: bytes) -> None:
        self._events.append(ProtocolViolation(detail, data))

    def _stray(self, data: bytes) -> None:
        if data[0] == STX:
            # Even lenient, a frame outside a transfer phase is worth knowing: its data is lost.
            self._violation(f"frame start (STX) in state {self._state.value}; ignored", data)
            return
        if self.lenient:
            return
        detail = f"unexpected byte(s) in state {self._state.value}"
        last = self._events[-1] if self._events else None
        if isinstance(last, ProtocolViolation) and last.detail == detail:
            # One event for a run of stray bytes (line noise), not one per byte.
            self._events[-1] = ProtocolViolation(detail, (last.data + data)[:MAX_STRAY_DATA])
        else:
            self._violation(detail, data)

    def _to_neutral(self, *, session_ended: bool) -> None:
        self._state = State.NEUTRAL
        self._deadline = None
        self._frame_buf = None
        self._tail = -1
        self._tail_deadline = None
        if session_ended:
            self._events.append(LinkIdle())

    def _maybe_start(self) -> None:
        # E1381 6.2: "the sender ... transmits the ENQ character" to start establishment.
        if self._state is State.NEUTRAL and self._queue and self._now >= self._hold_until:
            self._send(ENQ)
            self._state = State.ESTABLISHING
            self._deadline = self._now + REPLY_TIMEOUT

    def _send_frame(self) -> None:
        self._out += self._frames[self._frame_index]
        self._deadline = self._now + REPLY_TIMEOUT

    def _begin_message(self) -> None:
        head = self._queue[0]
        self._frames = encode_frames(
            head.message, max_text=self.max_text, first_number=self._next_number
        )
        self._frame_index = 0
        self._attempts = 0
        self._send_frame()

    def _terminate(self) -> None:
        # E1381 6.4: "The sender notifies the receiver that all messages have been sent" by EOT;
        # "the sender regards the link to be in a neutral state".
        self._send(EOT)
        self._to_neutral(session_ended=True)
        if self._interrupted:
            self._interrupted = False
            self._hold_until = self._now + INTERRUPT_HOLD
            self._hold_for_interrupt = True

    def _abort(self, reason: str) -> None:
        head = self._queue.popleft()
        self._events.append(SendFailed(head.id, reason))
        self._terminate()

    # --- table handlers: neutral ----------------------------------------------------------

    def _answer_enq(self, data: bytes) -> None:
        # E1381 6.2: "The receiver, upon receiving the ENQ, prepares to receive and replies with
        # ACK"; "a receiver that is not ready replies with NAK".
        if self.busy:
            self._send(NAK)
            return
        self._send(ACK)
        self._state = State.RECEIVING
        self._deadline = self._now + RECEIVE_TIMEOUT
        self._assembler.reset()
        self._frames_in_session = 0
        self._interrupt_requested = False

    def _ignore(self, data: bytes) -> None:
        pass

    # --- table handlers: establishing -----------------------------------------------------

    def _start_transfer(self, data: bytes) -> None:
        # E1381 6.2: on ACK "the sender enters the transfer phase"; frames number from 1 (6.3.2).
        self._state = State.SENDING
        self._next_number = 1
        self._interrupted = False
        self._begin_message()

    def _busy_backoff(self, data: bytes) -> None:
        # E1381 6.2: on NAK the sender "must wait at least 10 s before sending another ENQ".
        self._to_neutral(session_ended=False)
        self._hold_until = self._now + BUSY_RETRY

    def _contention(self, data: bytes) -> None:
        # E1381 6.2.1 (contention): "The instrument has priority to transmit"; the computer system
        # "must stop trying to transmit and prepare to receive", answering the instrument's next
        # ENQ, and waits at least 20 s; the instrument "must wait at least 1 s" and sends ENQ again.
        self._to_neutral(session_ended=False)
        hold = HOST_CONTENTION_HOLD if self.role == "host" else INSTRUMENT_CONTENTION_RETRY
        self._hold_until = self._now + hold

    def _enq_unanswered(self, data: bytes) -> None:
        self._abort(f"no reply to ENQ within {REPLY_TIMEOUT:g} s")

    # --- table handlers: sending ----------------------------------------------------------

    def _frame_accepted(self, data: bytes) -> None:
        # E1381 6.3: on ACK the sender increments the frame number and sends the next frame, or
        # the next message; with nothing left it enters the termination phase.
        self._attempts = 0
        self._next_number = (self._next_number + 1) % 8
        self._frame_index += 1
        if self._frame_index < len(self._frames):
            self._send_frame()
            return
        done = self._queue.popleft()
        self._events.append(MessageSent(done.id))
        if self._queue and not self._interrupted:
            self._begin_message()
        else:
            self._terminate()

    def _receiver_interrupt(self, data: bytes) -> None:
        # E1381 6.3.5 (receiver interrupts): "the receiver ... responds to a frame with EOT instead
        # of ACK"; the sender "must treat EOT as an ACK"; here it finishes the current message,
        # then terminates and keeps off the link for 15 s or until the receiver's session ends.
        self._interrupted = True
        self._frame_accepted(data)

    def _frame_refused(self, data: bytes) -> None:
        # E1381 6.5.1: "Upon receiving a NAK or any character except an ACK or EOT, the sender
        # increments a retransmit counter and retransmits the frame"; six failures abort.
        self._attempts += 1
        if self._attempts >= MAX_ATTEMPTS:
            self._abort(f"frame refused {MAX_ATTEMPTS} times")
        else:
            self._send_frame()

    def _frame_unanswered(self, data: bytes) -> None:
        self._abort(f"no reply to frame within {REPLY_TIMEOUT:g} s")

    # --- table handlers: receiving --------------------------------------------------------

    def _frame_arrived(self, data: bytes) -> None:
        # E1381 6.3/6.5.1: the receiver checks the frame number and checksum, answers ACK to a
        # good frame and NAK to a bad one; "a frame with the same number as the previous one"
        # (our ACK was lost) is ACKed and ignored (FrameAssembler drops the repeat).
        self._deadline = self._now + RECEIVE_TIMEOUT
        try:
            message = self._assembler.feed(data)
        except RemoteProtocolError as exc:
            self._send(NAK)
            # the detail may reach a log: the bytes travel in ``data`` only (patient data)
            self._violation(exc.without_data(), data)
            return
        if self._assembler.notice is not None:  # lenient: tolerated, but worth knowing
            self._violation(self._assembler.notice, data)
        self._frames_in_session += 1
        if message is not None:
            self._events.append(MessageReceived(message))
            if self.confirm:
                self._state = State.CONFIRMING
                return
        self._acknowledge()

    def _acknowledge(self) -> None:
        if self._interrupt_requested:
            self._interrupt_requested = False
            self._send(EOT)
        else:
            self._send(ACK)

    def _end_of_transmission(self, data: bytes) -> None:
        # E1381 6.4: on EOT "the receiver ... regards the link to be in the neutral state".
        if self._state is State.CONFIRMING:
            self._violation("EOT while the last frame awaited confirmation (sender gave up)", data)
        elif self._assembler.in_message:
            self._violation("EOT inside a message; partial message discarded", data)
        elif self._frames_in_session == 0 and not self.lenient:
            self._violation("EOT right after ENQ: empty session", data)
        self._assembler.reset()
        self._to_neutral(session_ended=True)
        if self._hold_for_interrupt:
            self._hold_for_interrupt = False
            self._hold_until = self._now

    def _enq_while_receiving(self, data: bytes) -> None:
        # Not in E1381: the sender restarted. Drop any partial message and answer afresh.
        if self._assembler.in_message or not self.lenient:
            self._violation("ENQ during transfer; partial message discarded", data)
        self._to_neutral(session_ended=False)
        self._answer_enq(data)

    def _receive_timeout(self, data: bytes) -> None:
        # E1381 6.5.2: the receiver waits 30 s for a frame or EOT, "discards the last incomplete
        # message and regards the line to be in the neutral state".
        self._violation(
            f"no frame or EOT within {RECEIVE_TIMEOUT:g} s; partial message dropped", b""
        )
        self._assembler.reset()
        self._to_neutral(session_ended=True)


def _holds_control(data: bytes, start: int, end: int) -> bool:
    """True when STX, EOT or ENQ occurs in ``data[start:end]`` (they cut a frame short)."""
    return (
        data.find(b"\x02", start, end) >= 0
        or data.find(b"\x04", start, end) >= 0
        or data.find(b"\x05", start, end) >= 0
    )


def _first_of(data: bytes, needles: tuple[bytes, ...], start: int, end: int) -> int:
    """Where the first of the one-byte ``needles`` is in ``data[start:end]``; -1 if none is.

    Each ``find`` is a C scan, and each one after the first hit only searches up to it.
    """
    first = -1
    for needle in needles:
        at = data.find(needle, start, end if first < 0 else first)
        if at >= 0:
            first = at
    return first


#: The transition table: (state, input) -> handler. Anything absent is a stray byte, ignored
#: (reported as ProtocolViolation unless lenient). E1381 clauses are quoted in each handler.
_TABLE: dict[tuple[State, Input], Callable[[Link, bytes], None]] = {
    (State.NEUTRAL, Input.ENQ): Link._answer_enq,
    (State.NEUTRAL, Input.EOT): Link._ignore,  # a late EOT after our timeout: harmless
    (State.ESTABLISHING, Input.ACK): Link._start_transfer,
    (State.ESTABLISHING, Input.NAK): Link._busy_backoff,
    (State.ESTABLISHING, Input.ENQ): Link._contention,
    (State.ESTABLISHING, Input.TIMEOUT): Link._enq_unanswered,
    (State.SENDING, Input.ACK): Link._frame_accepted,
    (State.SENDING, Input.EOT): Link._receiver_interrupt,
    (State.SENDING, Input.NAK): Link._frame_refused,
    (State.SENDING, Input.ENQ): Link._frame_refused,
    (State.SENDING, Input.OTHER): Link._frame_refused,
    (State.SENDING, Input.TIMEOUT): Link._frame_unanswered,
    (State.RECEIVING, Input.FRAME): Link._frame_arrived,
    (State.RECEIVING, Input.EOT): Link._end_of_transmission,
    (State.RECEIVING, Input.ENQ): Link._enq_while_receiving,
    (State.RECEIVING, Input.TIMEOUT): Link._receive_timeout,
    (State.CONFIRMING, Input.EOT): Link._end_of_transmission,
    (State.CONFIRMING, Input.ENQ): Link._enq_while_receiving,
    (State.CONFIRMING, Input.TIMEOUT): Link._receive_timeout,
}
