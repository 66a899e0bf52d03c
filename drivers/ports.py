"""The ports drivers call: the gateway's sink for messages, and the worklist for host queries.

The gateway implements them (``gateway.app``, ``gateway.orders.store``); drivers see only these
protocols, so they never import the gateway.
"""

from __future__ import annotations

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


class Sink(Protocol):
    """The gateway side of a driver: durable ingest and connection state."""

    async def ingest(self, message: InboundMessage) -> Outcome: ...

    def connection_changed(self, instrument_id: str, connected: bool, detail: str) -> None: ...


class Driver(Protocol):
    """One analyser conversation over an open stream; returns when the stream ends."""

    async def serve(self, stream: ByteStream, sink: Sink) -> None: ...


Worklist = Callable[[str], Awaitable[Sequence[WorklistOrder]]]
"""Specimen ID -> the orders the host holds for it (empty when it has none)."""
