"""The ports drivers call: the gateway's sink for messages, and the worklist for host queries.

The gateway implements them (``gateway.app``, ``gateway.orders.store``); drivers see only these
protocols, so they never import the gateway.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from drivers.model import InboundMessage, WorklistOrder
from drivers.transports import ByteStream


class Outcome(Protocol):
    """What the gateway tells a driver after storing a message (for its ACK)."""

    @property
    def quarantined(self) -> bool: ...

    @property
    def error(self) -> str: ...

    @property
    def test_message(self) -> bool:
        """Its sender marked it test data (processing ID not P): it was received and is kept
        (as test data, or in quarantine if the site says so), never forwarded. Not an error:
        the ACK says received (AA), even when it is also ``quarantined``."""
        ...


class ConnectionState(enum.StrEnum):
    """What happened to an instrument's connection: a code the gateway's screens explain."""

    CONNECTED = "connected"  # detail: the peer
    CLOSED_BY_INSTRUMENT = "closed_by_instrument"
    CONNECT_FAILED = "connect_failed"  # detail: the transport error
    CONNECTION_LOST = "connection_lost"  # the stream broke while in use
    PROTOCOL_ERROR = "protocol_error"  # the instrument broke the protocol; we hung up
    IDLE_TIMEOUT = "idle_timeout"  # nothing arrived within the idle deadline; we hung up


class Sink(Protocol):
    """The gateway side of a driver: durable ingest and connection state."""

    async def ingest(self, message: InboundMessage) -> Outcome:
        """Returns once the message is durable; raises ``NotStoredError`` when it is not."""

    def connection_changed(
        self,
        instrument_id: str,
        connected: bool,
        detail: str,
        state: ConnectionState | None = None,
    ) -> None:
        """``detail`` is technical text (a peer, an error without bytes); ``state`` its code."""


@runtime_checkable
class Accepting(Protocol):
    """A sink that can tell before a message comes whether it could keep one now.

    ``Sink.ingest`` raises ``drivers.errors.NotStoredError`` for a message it could not keep;
    a protocol with a "not ready" answer (E1381: NAK to ENQ) asks ``accepting()`` first, so
    the analyser does not send what would be refused.
    """

    def accepting(self) -> bool: ...


class Driver(Protocol):
    """One analyser conversation over an open stream; returns when the stream ends.

    One driver serves every connection of its instrument, under ``connections = "parallel"``
    several at once: what belongs to one connection (link state, buffers) lives inside
    ``serve``, never on the driver.
    """

    async def serve(self, stream: ByteStream, sink: Sink) -> None: ...


Worklist = Callable[[str], Awaitable[Sequence[WorklistOrder]]]
"""Specimen ID -> the orders the host holds for it (empty when it has none)."""
