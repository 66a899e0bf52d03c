"""The LIS worker's pipe protocol: a closed set of frozen frames, its version, and their codec.

A frame is a 4-byte big-endian length, then a pickle of exactly one of the dataclasses below.
Pickle keeps the hot path cheap (the child sends a store command for every LIS message), but
the decoder's ``find_class`` knows these classes (and the two NamedTuples they carry) and
nothing else: a frame cannot name a function, so decoding one never runs code, and a frame of
any other type is refused as ``UnknownFrame``.

    parent -> child   Hello (first), Wake, Done / Failed (the answer to command ``number``)
    child -> parent   Ready (first), Enqueue, HoldUnbuildable, MarkSent, Settle, Status

Each side checks the other's ``version`` before anything else. Change a frame, change
``PROTOCOL_VERSION``.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from typing import IO

from gateway.errors import RemoteProtocolError
from gateway.lis.outbox import CarriedResult, PendingMessage

PROTOCOL_VERSION = 2

_HEADER = struct.Struct(">I")
#: our frames are small (a command, a status); a longer one means the stream is not ours
MAX_FRAME = 1 << 24


class UnknownFrame(RemoteProtocolError):
    """The other end sent something that is not one of our frames (or not in its place)."""


# -- parent -> child ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The parent's first frame: its protocol version and what the child needs to run."""

    version: int
    store_url: str
    lis_config: str  # ``LisConfig`` as JSON (validated again by the child)
    log_level: int


@dataclass(frozen=True, slots=True)
class Wake:
    """Results were queued: look for them now."""


@dataclass(frozen=True, slots=True)
class Done:
    """Command ``number`` committed; ``value`` is what its store function returned."""

    number: int
    value: int | None


@dataclass(frozen=True, slots=True)
class Failed:
    """Command ``number`` failed in the parent's writer (nothing of it was committed)."""

    number: int
    error: str


# -- child -> parent ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The child's first frame, once it accepted the parent's ``Hello``."""

    version: int


#: one packed message for ``Enqueue``: control ID, message text, the results it carries
Packed = tuple[str, str, tuple[CarriedResult, ...]]


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Store packed messages in the outbox (``outbox.enqueue``)."""

    number: int
    built: tuple[Packed, ...]


@dataclass(frozen=True, slots=True)
class HoldUnbuildable:
    """Hold results whose message could not be built (``outbox.hold_unbuildable``)."""

    number: int
    batch: tuple[CarriedResult, ...]
    error: str
    #: the field at fault, when the builder named one
    field: str = ""


@dataclass(frozen=True, slots=True)
class MarkSent:
    """A message is going out (``outbox.mark_sent``)."""

    number: int
    pending: PendingMessage


@dataclass(frozen=True, slots=True)
class Settle:
    """The LIS answered a message (``outbox.settle``)."""

    number: int
    pending: PendingMessage
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Status:
    """The forwarder's counters, for the dashboard and the live view."""

    connected: bool
    last_error: str
    sent: int
    acknowledged: int
    rejected: int
    retries: int


StoreCommand = Enqueue | HoldUnbuildable | MarkSent | Settle
ToChild = Hello | Wake | Done | Failed
ToParent = Ready | StoreCommand | Status

TO_CHILD: frozenset[type] = frozenset({Hello, Wake, Done, Failed})
TO_PARENT: frozenset[type] = frozenset({Ready, Enqueue, HoldUnbuildable, MarkSent, Settle, Status})

#: every class a frame may contain, by the (module, name) a pickle names it with
_CLASSES: dict[tuple[str, str], type] = {
    (cls.__module__, cls.__qualname__): cls
    for cls in (*TO_CHILD, *TO_PARENT, PendingMessage, CarriedResult)
}


class _FrameUnpickler(pickle.Unpickler):
    """An unpickler that can build our frame classes and plain values, and nothing else."""

    def find_class(self, module: str, name: str) -> type:
        cls = _CLASSES.get((module, name))
        if cls is None:
            raise UnknownFrame(f"{module}.{name} is not part of the worker protocol")
        return cls


def encode_frame(frame: ToChild | ToParent) -> bytes:
    payload = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def decode_frame(payload: bytes, allowed: frozenset[type]) -> object:
    """The frame in ``payload`` if its type is in ``allowed``; else ``UnknownFrame``."""
    try:
        frame = _FrameUnpickler(io.BytesIO(payload)).load()
    except UnknownFrame:
        raise
    except Exception as exc:  # pickle raises many types on bad bytes; this is the one boundary
        raise UnknownFrame(f"an undecodable frame ({type(exc).__name__})") from exc
    if type(frame) not in allowed:
        raise UnknownFrame(f"a {type(frame).__name__} is not a frame this side accepts")
    return frame


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(stream: IO[bytes], allowed: frozenset[type]) -> object | None:
    """The next frame from a blocking stream, or None at end of stream; ``UnknownFrame`` when
    what comes is not a frame of a type in ``allowed``."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise UnknownFrame(f"a frame of {size} bytes is not one of ours")
    payload = _read_exactly(stream, size)
    return None if payload is None else decode_frame(payload, allowed)
