"""Drives one instrument: opens its stream by URL, runs its driver, reconnects with back-off.

The session is the only place that knows about both the transport and the sink; drivers see a
``ByteStream`` and a ``Sink``, protocol cores see neither.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from drivers.errors import GatewayError, ProtocolError, loggable
from drivers.ports import ConnectionState, Driver, Sink
from drivers.transports import Connector, connector_for
from drivers.transports.base import traced

log = logging.getLogger(__name__)


@runtime_checkable
class Listening(Protocol):
    """A connector that listens (tcp-listen://): ``start`` binds and returns the port."""

    async def start(self) -> int: ...


class InstrumentSession:
    """Supervises one instrument: connect, serve, back off, reconnect, until cancelled."""

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
    ) -> None:
        self.instrument_id = instrument_id
        self.url = url
        self._driver = driver
        self._sink = sink
        self._trace = trace
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._connector = connector_factory(url)

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
        delay = self._retry_initial_s
        wire = logging.getLogger(f"trygg.wire.{self.instrument_id}")
        try:
            while True:
                try:
                    stream = await self._connector.connect()
                except GatewayError as exc:
                    self._sink.connection_changed(
                        self.instrument_id, False, loggable(exc), ConnectionState.CONNECT_FAILED
                    )
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self._retry_max_s)
                    continue
                delay = self._retry_initial_s
                self._sink.connection_changed(
                    self.instrument_id, True, stream.peer, ConnectionState.CONNECTED
                )
                if self._trace:
                    stream = traced(stream, wire)
                try:
                    await self._driver.serve(stream, self._sink)
                    detail, state = (
                        "the instrument closed the connection",
                        ConnectionState.CLOSED_BY_INSTRUMENT,
                    )
                except GatewayError as exc:
                    detail = loggable(exc)  # shown and logged: never the raw bytes
                    state = (
                        ConnectionState.PROTOCOL_ERROR
                        if isinstance(exc, ProtocolError)
                        else ConnectionState.CONNECTION_LOST
                    )
                    log.warning("instrument %s: %s", self.instrument_id, detail)
                finally:
                    await stream.aclose()
                self._sink.connection_changed(self.instrument_id, False, detail, state)
        finally:
            await self._connector.aclose()
