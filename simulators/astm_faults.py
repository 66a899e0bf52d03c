"""Faults of the ASTM analyser simulator: the named faults, their triggers, the wire rewrite.

The sans-IO link (``drivers.protocols.astm.link``) always behaves correctly; faults are applied
here, to the bytes the simulator's link hands out (``FaultWire.rewrite``), so the core stays
clean. The rewrite is pure: it returns actions (write, pause, hang up) for the I/O loop to carry
out and bytes to feed back into the link (a stand-in ACK when frames are merged).

Faults and what a correct host does about them:

* ``bad_checksum``: one frame goes out with a wrong checksum; the host NAKs and the link
  retransmits the frame intact (``every_attempt`` spoils all six tries: the simulator gives up).
* ``nak_storm``: on a query, the simulator NAKs every frame of the host's reply, so the host
  must abort after six attempts.
* ``stall``: the simulator stops before a frame for ``seconds`` (``then_close``: and hangs up).
* ``garbage``: line noise before ENQ and between frames; the host ignores it.
* ``disconnect``: the simulator hangs up after ``frame`` frames; it reconnects and sends the
  whole message again, as real analysers do.
* ``contention``: on a query, the simulator sends ENQ exactly when the host sends its ENQ for
  the reply; the instrument must win (handled by the simulator's I/O loop, not here).
* ``oversized``: frames are merged into frames of ``frame_text`` bytes (over the 247-byte
  E1381 limit); lenient hosts accept them.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from drivers.errors import ConfigError
from drivers.protocols.astm.frames import ACK, ENQ, ETX, LF, MAX_FRAME, NAK, STX, build_frame


class FaultKind(enum.StrEnum):
    """The named faults (see the module docstring)."""

    BAD_CHECKSUM = "bad_checksum"
    NAK_STORM = "nak_storm"
    STALL = "stall"
    GARBAGE = "garbage"
    DISCONNECT = "disconnect"
    CONTENTION = "contention"
    OVERSIZED = "oversized"


#: Faults that act on the host's reply to a query, so they only fire on query messages.
QUERY_FAULTS = frozenset({FaultKind.NAK_STORM, FaultKind.CONTENTION})

#: Line noise never holds the E1381 control characters: a stray ENQ, EOT or STX would start or
#: end a session and turn "noise the host must ignore" into a different fault.
NOISE_BYTES = bytes(b for b in range(256) if b >= 0x20 or b == 0x00)


@dataclass(frozen=True, slots=True)
class Fault:
    """One named fault: fires on message ``at_message`` (1-based, queries count) or, without
    it, on each message with ``probability``. The other fields tune particular kinds."""

    kind: FaultKind
    probability: float = 0.0
    at_message: int | None = None
    #: bad_checksum: the frame to spoil; stall, disconnect: how many frames go out first
    frame: int = 0
    #: bad_checksum: spoil every retransmission too, so the sender gives up after six
    every_attempt: bool = False
    #: stall: how long the simulator stays silent (real seconds)
    seconds: float = 0.5
    #: stall: hang up at the end of the stall instead of going on
    then_close: bool = False
    #: oversized: text bytes per merged frame
    frame_text: int = 480

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(f"fault {self.kind}: probability {self.probability} is not 0..1")
        if self.at_message is not None and self.at_message < 1:
            raise ConfigError(f"fault {self.kind}: at_message must be 1 or more")
        if self.frame < 0 or self.seconds < 0:
            raise ConfigError(f"fault {self.kind}: frame and seconds must not be negative")
        if self.frame_text < 1:
            raise ConfigError(f"fault {self.kind}: frame_text must be 1 or more")

    def fires(self, number: int, rng: random.Random, *, is_query: bool) -> bool:
        """Whether this fault strikes message ``number``."""
        if self.kind in QUERY_FAULTS and not is_query:
            return False
        if self.at_message is not None:
            return number == self.at_message
        return self.probability > 0 and rng.random() < self.probability


def parse_fault(text: str) -> Fault:
    """``NAME@N`` (once, at message N) or ``NAME:P`` (probability), then ``,key=value`` pairs.

    For example ``bad_checksum@3``, ``garbage:0.2``, ``stall@2,seconds=1,then_close=true``.
    """
    head, *pairs = text.strip().split(",")
    name, at, prob = head, None, 0.0
    try:
        if "@" in head:
            name, number = head.split("@", 1)
            at = int(number)
        elif ":" in head:
            name, share = head.split(":", 1)
            prob = float(share)
        kind = FaultKind(name.strip())
    except ValueError as exc:
        known = ", ".join(k.value for k in FaultKind)
        raise ConfigError(
            f"fault {text!r}: expected NAME@N or NAME:P; NAME one of {known}"
        ) from exc
    if at is None and prob == 0.0:
        at = 1
    options: dict[str, int | float | bool] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"fault {text!r}: option {pair!r} is not key=value")
        if key in ("frame", "frame_text"):
            options[key] = int(value)
        elif key == "seconds":
            options[key] = float(value)
        elif key in ("every_attempt", "then_close"):
            options[key] = value.strip().lower() in ("1", "true", "yes")
        else:
            raise ConfigError(f"fault {text!r}: unknown option {key!r}")
    return Fault(kind, probability=prob, at_message=at, **options)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Write:
    """Write these bytes to the host."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pause:
    """Stay silent this long (real seconds)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class HangUp:
    """Close the stream: the rest of the chunk is dropped, the simulator reconnects."""


Action = Write | Pause | HangUp


@dataclass(slots=True)
class Rewrite:
    """What to do with one chunk of link output: ``actions`` in order, then feed ``feed_back``
    into the link (stand-in ACKs for frames merged into a larger one)."""

    actions: list[Action] = field(default_factory=list)
    feed_back: bytes = b""


def split_output(out: bytes) -> Iterator[bytes]:
    """Cut link output into frames (STX .. LF) and single control bytes."""
    i = 0
    while i < len(out):
        if out[i] == STX:
            end = out.find(LF, i)
            end = len(out) - 1 if end < 0 else end
            yield out[i : end + 1]
            i = end + 1
        else:
            yield out[i : i + 1]
            i += 1


def noise(rng: random.Random) -> bytes:
    """1-12 bytes of line noise without E1381 control characters."""
    return bytes(rng.choice(NOISE_BYTES) for _ in range(rng.randint(1, 12)))


def spoil_checksum(frame: bytes) -> bytes:
    """The frame with its two checksum characters replaced by a different valid hex pair."""
    sent = int(frame[-4:-2], 16)
    return frame[:-4] + b"%02X" % ((sent + 1) % 256) + frame[-2:]


class FaultWire:
    """Applies the faults of the message in flight to the bytes the instrument's link sends.

    One message is in flight at a time and each session carries one message, so frame indexes
    count from the start of the message and merged frames number from 1.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        #: while set, ACKs that answer frames go out as NAK (the nak_storm fault)
        self.refuse_frames = False
        #: how many frames were refused that way
        self.refused = 0
        self.fired: list[FaultKind] = []
        self.begin_message(())

    def begin_message(self, faults: Sequence[Fault]) -> None:
        """A new message (or a clean resend, with no faults) is about to be sent."""
        self._faults = {f.kind: f for f in faults}
        self._spent: set[FaultKind] = set()
        self._frames_sent = 0
        self._last_frame = b""
        self._group: list[bytes] = []
        self._merged: dict[bytes, bytes] = {}
        self._merged_number = 1

    def _fire(self, kind: FaultKind) -> None:
        if kind not in self._spent:
            self._spent.add(kind)
            self.fired.append(kind)

    def _armed(self, kind: FaultKind) -> Fault | None:
        fault = self._faults.get(kind)
        return None if fault is None or kind in self._spent else fault

    def rewrite(self, out: bytes, *, answering_frames: bool = False) -> Rewrite:
        """Turn one chunk of link output into actions. ``answering_frames``: the chunk answers
        frames the host sent (not its ENQ), so the nak_storm fault may refuse it."""
        result = Rewrite()
        for token in split_output(out):
            if token[0] == STX:
                if self._frame(token, result):
                    return result  # hung up: the rest of the output has nowhere to go
            elif token[0] == ENQ:
                if FaultKind.GARBAGE in self._faults:
                    self._fire(FaultKind.GARBAGE)
                    result.actions.append(Write(noise(self._rng)))
                result.actions.append(Write(token))
            elif token[0] == ACK and answering_frames and self.refuse_frames:
                self.refused += 1
                result.actions.append(Write(bytes([NAK])))
            else:
                result.actions.append(Write(token))
        return result

    def _frame(self, frame: bytes, result: Rewrite) -> bool:
        retry = frame == self._last_frame
        index = self._frames_sent - 1 if retry else self._frames_sent
        if not retry:
            self._last_frame = frame
            self._frames_sent += 1
        final = frame[-5] == ETX
        if not retry:
            for kind in (FaultKind.DISCONNECT, FaultKind.STALL):
                fault = self._armed(kind)
                if fault is not None and (index == fault.frame or (final and index < fault.frame)):
                    self._fire(kind)
                    if kind is FaultKind.STALL:
                        result.actions.append(Pause(fault.seconds))
                    if kind is FaultKind.DISCONNECT or fault.then_close:
                        result.actions.append(HangUp())
                        return True
            if FaultKind.GARBAGE in self._faults and index > 0:
                self._fire(FaultKind.GARBAGE)
                result.actions.append(Write(noise(self._rng)))
        oversized = self._faults.get(FaultKind.OVERSIZED)
        if oversized is not None:
            merged = self._merge(frame, retry, final, oversized.frame_text, result)
            if merged is None:
                return False
            frame = merged
        bad = self._faults.get(FaultKind.BAD_CHECKSUM)
        if bad is not None and index == bad.frame and (not retry or bad.every_attempt):
            self._fire(FaultKind.BAD_CHECKSUM)
            frame = spoil_checksum(frame)
        result.actions.append(Write(frame))
        return False

    def _merge(
        self, frame: bytes, retry: bool, final: bool, frame_text: int, result: Rewrite
    ) -> bytes | None:
        """Collect frame texts up to ``frame_text`` bytes; None while collecting (the link gets
        a stand-in ACK), else the merged frame, renumbered."""
        if retry and frame in self._merged:
            return self._merged[frame]
        text = frame[2:-5]
        self._group.append(text)
        if not final and sum(map(len, self._group)) < frame_text:
            result.feed_back += bytes([ACK])
            return None
        merged = build_frame(self._merged_number % 8, b"".join(self._group), final=final)
        self._merged_number += 1
        self._group.clear()
        self._merged[frame] = merged
        if len(merged) > MAX_FRAME:
            self._fire(FaultKind.OVERSIZED)
        return merged
