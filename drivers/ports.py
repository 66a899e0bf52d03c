"""The ports drivers call: the gateway's sink for messages, and the worklist for host queries.

The gateway implements them (``gateway.app``, ``gateway.orders.store``); drivers see only these
protocols, so they never import the gateway.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

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


class Sink(Protocol):
    """The gateway side of a driver: durable ingest and connection state."""

    async def ingest(self, message: InboundMessage) -> Outcome: ...

    def connection_changed(
        self,
        instrument_id: str,
        connected: bool,
        detail: str,
        state: ConnectionState | None = None,
    ) -> None:
        """``detail`` is technical text (a peer, an error without bytes); ``state`` its code."""


class Driver(Protocol):
    """One analyser conversation over an open stream; returns when the stream ends."""

    async def serve(self, stream: ByteStream, sink: Sink) -> None: ...


Worklist = Callable[[str], Awaitable[Sequence[WorklistOrder]]]
"""Specimen ID -> the orders the host holds for it (empty when it has none)."""
