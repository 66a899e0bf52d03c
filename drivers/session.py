"""Drives one instrument: opens its stream by URL, runs its driver, reconnects with back-off.

The session is the only place that knows about both the transport and the sink; drivers see a
``ByteStream`` and a ``Sink``, protocol cores see neither.

A listening instrument (``tcp-listen://``) keeps accepting while it serves, so a silent
connection never holds the port: what happens to a second connection is the ``connections``
policy (``newest``: it replaces the open one; ``single``: it is refused while one is open;
``parallel``: each is served at once). Every network connection has an idle deadline
(``IdleLimits``): one that says nothing for too long is closed and the session accepts again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, get_args, runtime_checkable
from urllib.parse import urlsplit

from drivers.errors import ConfigError, GatewayError, ProtocolError, loggable
from drivers.model import ConnectionPolicy
from drivers.ports import ConnectionState, Driver, Sink
from drivers.transports import ByteStream, Connector, connector_for
from drivers.transports.base import traced
from drivers.transports.deadline import ConnectionEnded, IdleDeadline, IdleLimits, IdleTimeout

log = logging.getLogger(__name__)

CONNECTION_POLICIES: tuple[str, ...] = get_args(ConnectionPolicy)
#: ``parallel``: connections served at once on one port; more are refused (a port scan)
MAX_PARALLEL = 32
#: a serial line has no second peer and no half-open socket: its link's own timers suffice
_NO_IDLE_DEADLINE = frozenset({"serial"})


@runtime_checkable
class Listening(Protocol):
    """A connector that listens (tcp-listen://): ``start`` binds and returns the port."""

    async def start(self) -> int: ...


class Superseded(ConnectionEnded):
    """A newer connection on the same port replaced this one (``connections = "newest"``)."""


@dataclass(eq=False, slots=True)
class _Connection:
    stream: IdleDeadline | ByteStream
    peer: str
    #: replaced by a newer one: no longer shown, its end only logged
    superseded: bool = False


class InstrumentSession:
    """Supervises one instrument: connect, serve, back off, reconnect, until cancelled.

    ``idle`` is the idle deadline of every connection (not of serial lines); ``connections``
    the policy for a second connection on a listening URL (others have one at a time). The
    one ``driver`` serves every connection: under ``parallel`` several at once, so a driver
    keeps its link state per ``serve`` call (``drivers.ports.Driver``).
    """

    def __init__(
        self,
        instrument_id: str,
        url: str,
        driver: Driver,
        sink: Sink,
        *,
        trace: bool = False,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        connector_factory: Callable[[str], Connector] = connector_for,
        idle: IdleLimits | None = None,
        connections: ConnectionPolicy = "newest",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if connections not in CONNECTION_POLICIES:
            raise ConfigError(
                f"connections: {connections!r} is not one of "
                f"{', '.join(repr(p) for p in CONNECTION_POLICIES)}"
            )
        self.instrument_id = instrument_id
        self.url = url
        self._driver = driver
        self._sink = sink
        self._trace = trace
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._connector = connector_factory(url)
        self._idle = None if urlsplit(url).scheme in _NO_IDLE_DEADLINE else (idle or IdleLimits())
        self._policy: ConnectionPolicy = connections
        self._clock = clock or time.monotonic  # the idle deadlines' clock
        self._wire = logging.getLogger(f"trygg.wire.{instrument_id}")
        #: the connections being served and shown (superseded ones leave at once)
        self._open: list[_Connection] = []
        #: connections refused since the port was last free
        self._refused = 0

    async def listen(self) -> int | None:
        """Bind now if the connector listens; returns the port (None: it does not listen).

        Raises ``TransportError`` when the address cannot be bound: at start that is fatal
        for the caller, while ``run`` keeps retrying what can come back (an outbound connect,
        a serial port that is unplugged).
        """
        if isinstance(self._connector, Listening):
            return await self._connector.start()
        return None

    async def aclose(self) -> None:
        """Release the connector (a listening socket) of a session that will not run."""
        await self._connector.aclose()

    async def run(self) -> None:
        try:
            if isinstance(self._connector, Listening):
                await self._accept_loop()
            else:
                await self._connect_loop()
        finally:
            await self._connector.aclose()

    # --- one connection at a time (tcp://, serial://) ----------------------------------------

    async def _connect_loop(self) -> None:
        while True:
            await self._serve(self._admit(await self._connect()))

    async def _connect(self) -> ByteStream:
        """The next stream; each failure is shown, then retried after a growing delay (with
        jitter), from ``retry_initial_s`` again after every success."""
        delay = self._retry_initial_s
        while True:
            try:
                return await self._connector.connect()
            except GatewayError as exc:
                self._sink.connection_changed(
                    self.instrument_id, False, loggable(exc), ConnectionState.CONNECT_FAILED
                )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._retry_max_s)

    # --- a listening port: accept while serving ----------------------------------------------

    async def _accept_loop(self) -> None:
        async with asyncio.TaskGroup() as group:
            while True:
                stream = await self._connect()
                if not await self._make_room(stream):
                    continue
                connection = self._admit(stream)
                group.create_task(
                    self._serve(connection), name=f"instrument-{self.instrument_id} {stream.peer}"
                )

    async def _make_room(self, stream: ByteStream) -> bool:
        """Apply the policy to a new connection; False when it was refused (and closed)."""
        if not self._open:
            return True
        peer, held = stream.peer, ", ".join(c.peer for c in self._open)
        if self._policy == "newest":
            for old in self._open:
                silent = old.stream.silent_for if isinstance(old.stream, IdleDeadline) else 0.0
                log.warning(
                    "instrument %s: a new connection from %s replaces the one from %s "
                    '(silent for %.0f s; connections = "newest"); closing the old one',
                    self.instrument_id,
                    peer,
                    old.peer,
                    silent,
                )
                old.superseded = True
                if isinstance(old.stream, IdleDeadline):
                    old.stream.end(Superseded(f"{old.peer}: replaced by {peer}"))
                else:
                    await old.stream.aclose()
            self._open.clear()
            return True
        if self._policy == "parallel" and len(self._open) < MAX_PARALLEL:
            return True
        why = (
            f'{held} is connected (connections = "single")'
            if self._policy == "single"
            else f"{len(self._open)} connections are open already (at most {MAX_PARALLEL})"
        )
        # a sender retrying in a loop is refused again and again: warn once per open spell
        self._refused += 1
        log.log(
            logging.WARNING if self._refused == 1 else logging.DEBUG,
            "instrument %s: refused a connection from %s: %s",
            self.instrument_id,
            peer,
            why,
        )
        await stream.aclose()
        return False

    # --- serving one connection --------------------------------------------------------------

    def _admit(self, stream: ByteStream) -> _Connection:
        """Wrap the new stream (trace, idle deadline), show it connected."""
        peer = stream.peer
        if self._trace:
            stream = traced(stream, self._wire)
        if self._idle is not None:
            stream = IdleDeadline(stream, self._idle, clock=self._clock)
        connection = _Connection(stream, peer)
        self._open.append(connection)
        self._show(ConnectionState.CONNECTED, "")
        return connection

    async def _serve(self, connection: _Connection) -> None:
        stream = connection.stream
        try:
            await self._driver.serve(stream, self._sink)
            detail, state = (
                "the instrument closed the connection",
                ConnectionState.CLOSED_BY_INSTRUMENT,
            )
        except GatewayError as exc:
            detail = loggable(exc)  # shown and logged: never the raw bytes
            if isinstance(exc, IdleTimeout):
                state = ConnectionState.IDLE_TIMEOUT
            elif isinstance(exc, ProtocolError):
                state = ConnectionState.PROTOCOL_ERROR
            else:
                state = ConnectionState.CONNECTION_LOST
            if not isinstance(exc, Superseded):  # that one was logged when it was replaced
                log.warning("instrument %s: %s", self.instrument_id, detail)
        finally:
            await stream.aclose()
            if connection in self._open:
                self._open.remove(connection)
            if not self._open and self._refused:
                if self._refused > 1:
                    log.warning(
                        "instrument %s: %d connections were refused while %s was open",
                        self.instrument_id,
                        self._refused,
                        connection.peer,
                    )
                self._refused = 0
        if not connection.superseded:
            self._show(state, detail)

    def _show(self, state: ConnectionState, detail: str) -> None:
        """Tell the sink: connected (with every open peer) while any is open, else ``state``."""
        if self._open:
            peers = ", ".join(c.peer for c in self._open)
            self._sink.connection_changed(
                self.instrument_id, True, peers, ConnectionState.CONNECTED
            )
        else:
            self._sink.connection_changed(self.instrument_id, False, detail, state)
