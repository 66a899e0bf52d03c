"""The idle deadline: a connection that says nothing for too long is given up.

A socket whose peer went silent (a pulled cable, a rebooted analyser, a port scan) would keep a
driver's read waiting for ever. ``IdleDeadline`` wraps a stream so that a read raises
``IdleTimeout`` once nothing has arrived for ``idle_s`` seconds, or for ``partial_s`` while the
driver says a message is half received (``mark_partial``). The session then closes the
connection and accepts the next. Protocols with their own receive timers (ASTM E1381's 30 s
receiver timeout) need not mark anything: the idle deadline is about silence, not framing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers.errors import TransportError
from drivers.transports.base import DEFAULT_READ_SIZE, ByteStream

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_PARTIAL_TIMEOUT_S",
    "ConnectionEnded",
    "IdleDeadline",
    "IdleLimits",
    "IdleTimeout",
    "mark_partial",
]

#: a connection silent this long is closed (an analyser with nothing to send reconnects)
DEFAULT_IDLE_TIMEOUT_S = 300.0
#: silence allowed inside a half-received message: E1381 gives a receiver 30 s, MLLP nothing
DEFAULT_PARTIAL_TIMEOUT_S = 30.0


class ConnectionEnded(TransportError):
    """The gateway ended this connection (the session's policy), not the peer."""


class IdleTimeout(ConnectionEnded):
    """Nothing arrived within the idle deadline: the peer is silent or gone."""


@dataclass(frozen=True, slots=True)
class IdleLimits:
    """Seconds of silence allowed: ``idle_s`` between messages, ``partial_s`` inside one.

    None switches that deadline off (keepalive still finds a peer that is gone).
    """

    idle_s: float | None = DEFAULT_IDLE_TIMEOUT_S
    partial_s: float | None = DEFAULT_PARTIAL_TIMEOUT_S


class IdleDeadline:
    """A ByteStream whose reads give up after the idle deadline; see the module docstring.

    ``clock`` is monotonic seconds (the deadline counts from the last bytes that arrived, or
    from the wrapping). ``end(error)`` makes the pending and every later read and write raise
    ``error``: the session ends a connection this way, so the driver stops as on a broken
    stream (an unfinished block is not kept as the peer's, and no ACK goes out after it).
    """

    def __init__(
        self,
        stream: ByteStream,
        limits: IdleLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._limits = limits
        self._clock = clock
        self._last = clock()
        self.partial = False
        self._ended: ConnectionEnded | None = None
        self._waiting: asyncio.Timeout | None = None

    @property
    def peer(self) -> str:
        return self._stream.peer

    @property
    def silent_for(self) -> float:
        """Seconds since bytes last arrived."""
        return max(0.0, self._clock() - self._last)

    def _limit(self) -> float | None:
        return self._limits.partial_s if self.partial else self._limits.idle_s

    def end(self, error: ConnectionEnded) -> None:
        """End the connection: the pending read (if any) and all later ones raise ``error``."""
        if self._ended is None:
            self._ended = error
        if self._waiting is not None and not self._waiting.expired():
            self._waiting.reschedule(asyncio.get_running_loop().time())

    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        while True:
            if self._ended is not None:
                raise self._ended
            limit = self._limit()
            remaining = None if limit is None else self._last + limit - self._clock()
            if remaining is not None and remaining <= 0:
                state = "inside a message" if self.partial else "idle"
                raise IdleTimeout(
                    f"{self.peer}: nothing received for {limit:g} s ({state}); closing"
                )
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout_at(
                    None if remaining is None else loop.time() + remaining
                ) as waiting:
                    self._waiting = waiting
                    data = await self._stream.read(max_bytes)
            except TimeoutError:
                continue  # the deadline (or end()) came: the loop says which
            finally:
                self._waiting = None
            self._last = self._clock()
            return data

    async def write(self, data: bytes) -> None:
        if self._ended is not None:
            raise self._ended
        await self._stream.write(data)

    async def aclose(self) -> None:
        await self._stream.aclose()


def mark_partial(stream: ByteStream, partial: bool) -> None:
    """Tell the stream's idle deadline (if it has one) whether a message is half received."""
    if isinstance(stream, IdleDeadline):
        stream.partial = partial
