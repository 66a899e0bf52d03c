"""In-process stream pairs (memory://NAME) with a fault injector: split, delay, corrupt, drop."""

from __future__ import annotations

import asyncio
import random
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult

from drivers.errors import ConfigError, TransportError
from drivers.transports.base import DEFAULT_READ_SIZE, check_read_size

Direction = Literal["both", "a_to_b", "b_to_a"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong on the wire; each direction keeps its own byte count and random stream.

    ``split``: deliver each write in chunks of at most this many bytes (each chunk is one read).
    ``delay_s``: the writer waits this long before each chunk is delivered.
    ``corrupt_every``: XOR the Nth, 2Nth, 3Nth ... byte of the direction with a non-zero mask
    drawn from ``random.Random(seed)``, so a given seed always corrupts the same way.
    ``drop_after_bytes``: after this many bytes in a direction, the link is cut: both ends read
    what was delivered, then ``b""``; later writes raise ``TransportError``.
    ``direction``: which way the faults apply; ``a`` is the first end of ``memory_pair`` (the end
    ``MemoryHub.register_memory_pair`` returns), ``b`` the other (the connector's end).
    """

    split: int | None = None
    delay_s: float = 0.0
    corrupt_every: int | None = None
    drop_after_bytes: int | None = None
    seed: int = 0
    direction: Direction = "both"

    def __post_init__(self) -> None:
        if self.split is not None and self.split < 1:
            raise ValueError(f"Faults.split must be at least 1, got {self.split}")
        if self.delay_s < 0:
            raise ValueError(f"Faults.delay_s must not be negative, got {self.delay_s}")
        if self.corrupt_every is not None and self.corrupt_every < 1:
            raise ValueError(f"Faults.corrupt_every must be at least 1, got {self.corrupt_every}")
        if self.drop_after_bytes is not None and self.drop_after_bytes < 0:
            raise ValueError(
                f"Faults.drop_after_bytes must not be negative, got {self.drop_after_bytes}"
            )
        if self.direction not in ("both", "a_to_b", "b_to_a"):
            raise ValueError(f"Faults.direction must be both, a_to_b or b_to_a: {self.direction}")


class _Pipe:
    """One direction of a pair: queued chunks, an end-of-stream flag, and the fault state."""

    def __init__(self, faults: Faults | None) -> None:
        self.chunks: deque[bytes] = deque()
        self.closed = False
        self.changed = asyncio.Event()
        self.faults = faults
        self.delivered = 0
        self.rng = random.Random(faults.seed if faults else 0)

    def close(self, *, discard: bool = False) -> None:
        self.closed = True
        if discard:
            self.chunks.clear()
        self.changed.set()

    def pieces(self, data: bytes) -> Iterator[bytes]:
        size = self.faults.split if self.faults and self.faults.split else len(data)
        for start in range(0, len(data), size):
            yield data[start : start + size]

    def corrupt(self, chunk: bytes) -> bytes:
        every = self.faults.corrupt_every if self.faults else None
        if not every:
            return chunk
        out = bytearray(chunk)
        # Stream offsets o with (o + 1) % every == 0, i.e. the every-th byte, the 2*every-th, ...
        first = (every - 1 - self.delivered) % every
        for index in range(first, len(out), every):
            out[index] ^= self.rng.randrange(1, 256)
        return bytes(out)


class _Link:
    """The two pipes of a pair; cutting the link ends both directions."""

    def __init__(self, name: str, faults: Faults | None) -> None:
        self.name = name
        direction = faults.direction if faults else "both"
        self.a_to_b = _Pipe(faults if direction in ("both", "a_to_b") else None)
        self.b_to_a = _Pipe(faults if direction in ("both", "b_to_a") else None)
        self.cut = False

    def sever(self) -> None:
        self.cut = True
        self.a_to_b.close()
        self.b_to_a.close()


class MemoryStream:
    """One end of an in-process pair; a ByteStream."""

    def __init__(self, link: _Link, end: Literal["a", "b"]) -> None:
        self._link = link
        self._end = end
        self._inbox = link.b_to_a if end == "a" else link.a_to_b
        self._outbox = link.a_to_b if end == "a" else link.b_to_a
        self._closed = False

    @property
    def peer(self) -> str:
        other = "b" if self._end == "a" else "a"
        return f"memory://{self._link.name}#{other}"

    @property
    def name(self) -> str:
        return f"memory://{self._link.name}#{self._end}"

    def __repr__(self) -> str:
        return f"<MemoryStream {self.name}>"

    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        check_read_size(max_bytes)
        if self._closed:
            raise TransportError(f"{self.name}: read on a closed stream")
        inbox = self._inbox
        while not inbox.chunks:
            if inbox.closed:
                return b""
            inbox.changed.clear()
            await inbox.changed.wait()
        chunk = inbox.chunks.popleft()
        if len(chunk) > max_bytes:
            inbox.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        return chunk

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise TransportError(f"{self.name}: write on a closed stream")
        pipe = self._outbox
        faults = pipe.faults
        for piece in pipe.pieces(bytes(data)):
            if faults and faults.delay_s:
                await asyncio.sleep(faults.delay_s)
            if self._closed:
                raise TransportError(f"{self.name}: write on a closed stream")
            if self._link.cut:
                raise TransportError(f"{self.name}: write failed: link dropped")
            if pipe.closed:
                raise TransportError(f"{self.name}: write failed: peer closed")
            limit = faults.drop_after_bytes if faults else None
            if limit is not None and pipe.delivered + len(piece) >= limit:
                piece = piece[: limit - pipe.delivered]
                self._deliver(pipe, piece)
                self._link.sever()
                return  # the writer is not told: the rest of this write is lost on the wire
            self._deliver(pipe, piece)

    @staticmethod
    def _deliver(pipe: _Pipe, piece: bytes) -> None:
        if piece:
            pipe.chunks.append(pipe.corrupt(piece))
            pipe.delivered += len(piece)
            pipe.changed.set()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._outbox.close()
        self._inbox.close(discard=True)


def memory_pair(name: str, faults: Faults | None = None) -> tuple[MemoryStream, MemoryStream]:
    """Two connected ends ``(a, b)``; what one writes the other reads, through ``faults``."""
    if not _NAME.match(name):
        raise ValueError(f"memory pair name must match {_NAME.pattern}, got {name!r}")
    link = _Link(name, faults)
    return MemoryStream(link, "a"), MemoryStream(link, "b")


class MemoryHub:
    """Named pairs waiting for a memory://NAME connector.

    An explicit object rather than a module-level dict (convention 9): the composition root or a
    test makes one and hands it to ``connector_for(url, memory=hub)``, so nothing leaks between
    tests or between two gateways in one process.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, MemoryStream] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._waiting

    def register_memory_pair(self, name: str, faults: Faults | None = None) -> MemoryStream:
        """Make a pair; keep end ``b`` for the next memory://NAME connect(); return end ``a``."""
        if name in self._waiting:
            raise ValueError(f"memory://{name} is already registered and not yet connected")
        a, b = memory_pair(name, faults)
        self._waiting[name] = b
        return a

    def take(self, name: str) -> MemoryStream:
        """Hand out the waiting end of ``name`` (once); TransportError if none is registered."""
        try:
            return self._waiting.pop(name)
        except KeyError:
            raise TransportError(f"memory://{name}: no pair registered under this name") from None


def parse_memory_url(url: str, parts: SplitResult) -> str:
    """Check a memory://NAME URL; return NAME."""
    name = parts.netloc
    if not name:
        raise ConfigError(f"transport URL {url!r}: name: missing (expected memory://NAME)")
    if not _NAME.match(name):
        raise ConfigError(f"transport URL {url!r}: name: must match {_NAME.pattern}")
    if parts.path:
        raise ConfigError(f"transport URL {url!r}: path: not allowed (expected memory://NAME)")
    if parts.query or parts.fragment:
        raise ConfigError(f"transport URL {url!r}: query: memory:// takes no parameters")
    return name


class MemoryConnector:
    """memory://NAME: connect() takes the end registered under NAME in the hub."""

    def __init__(self, url: str, name: str, hub: MemoryHub) -> None:
        self._url = url
        self._name = name
        self._hub = hub
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"<MemoryConnector {self._url}>"

    async def connect(self) -> MemoryStream:
        if self._closed:
            raise TransportError(f"{self._url}: connector is closed")
        return self._hub.take(self._name)

    async def aclose(self) -> None:
        self._closed = True
