"""The MLLP server: the receive loop over one ByteStream, and an accept loop that runs it per peer.

The loop hands every payload to a handler and frames and writes the reply it returns (the ACK);
a block that breaks the framing (longer than the limit, or cut off by a hang-up) goes to a
second callback, to be kept in quarantine, before the loop gives up on the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from drivers.errors import GatewayError, RemoteProtocolError, loggable
from drivers.protocols.hl7.mllp import DEFAULT_MAX_SIZE, MllpDecoder, frame
from drivers.transports.base import ByteStream, Connector
from drivers.transports.deadline import mark_partial

__all__ = ["Broken", "Handler", "MllpServer", "serve_mllp"]

log = logging.getLogger(__name__)

#: payload -> the reply to frame and send back (an ACK), or None to hang up instead
Handler = Callable[[bytes], Awaitable[bytes | None]]
#: the broken block's bytes and what is wrong with them -> (kept somewhere) nothing
Broken = Callable[[bytes, RemoteProtocolError], Awaitable[None]]

#: how long ``MllpServer.aclose`` lets its connections finish before cancelling them
CLOSE_GRACE_S = 1.0


async def serve_mllp(
    stream: ByteStream,
    on_message: Handler,
    on_broken: Broken,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> None:
    """Answer every MLLP payload on ``stream`` with what ``on_message`` returns, until the peer
    closes or ``on_message`` returns None.

    A block over ``max_size`` bytes, or one the peer left unfinished when it closed, goes to
    ``on_broken`` (its bytes and the error), and the error is then raised: the caller hangs up
    and the sender starts afresh. The stream is not closed here. While a block is half
    received, the stream's idle deadline (``drivers.transports.IdleDeadline``) is told so.
    """
    decoder = MllpDecoder(max_size=max_size)
    while data := await stream.read():
        decoder.receive_data(data)
        while True:
            try:
                payload = decoder.next_message()
            except RemoteProtocolError as exc:
                await on_broken(exc.data or data, exc)
                raise
            if payload is None:
                break
            reply = await on_message(payload)
            if reply is None:
                return
            await stream.write(frame(reply))
        # bytes of an unfinished block wait: the shorter, half-received deadline applies
        mark_partial(stream, decoder.buffered > 0)
    # A clean hang-up inside a block is the peer's doing: keep what it sent. (A reset or our
    # own shutdown is not: the sender got no ACK and sends the message again.)
    unfinished = decoder.take_unfinished()
    if unfinished:
        cut_off = RemoteProtocolError(
            f"the peer closed the connection inside an MLLP block ({len(unfinished)} bytes)",
            field="mllp",
            data=unfinished,
        )
        await on_broken(unfinished, cut_off)
        raise cut_off


class MllpServer:
    """Accepts peers from a listening connector and runs ``serve_mllp`` for each, until closed.

    ``handler_for(stream)`` gives the handler for one connection. A connection that breaks ends
    alone (logged without its bytes); ``aclose`` stops listening and closes every connection.
    """

    def __init__(
        self,
        connector: Connector,
        handler_for: Callable[[ByteStream], Handler],
        *,
        on_broken: Broken | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self._connector = connector
        self._handler_for = handler_for
        self._on_broken = on_broken or _drop
        self._max_size = max_size
        self._streams: set[ByteStream] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        """How many peers are connected now."""
        return len(self._streams)

    def start(self) -> None:
        """Start accepting in a task of its own (the connector should already be listening)."""
        if self._accepting is None:
            self._accepting = asyncio.create_task(self._accept(), name="mllp-accept")

    async def aclose(self) -> None:
        """Stop accepting, close the connector and every connection; idempotent."""
        accepting, self._accepting = self._accepting, None
        if accepting is not None:
            accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await accepting
        await self._connector.aclose()
        for stream in list(self._streams):
            await stream.aclose()  # a pending read returns b"": its loop ends by itself...
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S)
            for task in stuck:  # ...unless its handler is busy (a delay, a slow write)
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)

    async def _accept(self) -> None:
        while True:
            try:
                stream = await self._connector.connect()
            except GatewayError as exc:
                log.debug("%s: stopped accepting: %s", self._connector.url, loggable(exc))
                return
            self._streams.add(stream)
            task = asyncio.create_task(self._serve(stream), name=f"mllp-peer {stream.peer}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, stream: ByteStream) -> None:
        try:
            await serve_mllp(
                stream, self._handler_for(stream), self._on_broken, max_size=self._max_size
            )
        except GatewayError as exc:
            log.debug("%s: %s: hanging up: %s", self._connector.url, stream.peer, loggable(exc))
        finally:
            self._streams.discard(stream)
            await stream.aclose()


async def _drop(raw: bytes, exc: RemoteProtocolError) -> None:
    """The default for a broken block: nothing is kept (the loop still hangs up)."""
