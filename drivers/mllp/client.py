"""The MLLP client: send HL7 messages over a ByteStream and await each ACK, matched by MSA-2."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from drivers.errors import AckTimeout, LocalProtocolError, RemoteProtocolError, TransportError
from drivers.protocols.hl7.ack import Ack, parse_ack, read_msh
from drivers.protocols.hl7.mllp import DEFAULT_MAX_SIZE, MllpDecoder, frame
from drivers.transports.base import ByteStream

__all__ = ["MllpClient"]

log = logging.getLogger(__name__)


class MllpClient:
    """Sends MLLP-framed messages over one stream; each waits for the ACK whose MSA-2 is its
    MSH-10 (HL7 v2.5.1 section 2.9.2), for at most ``ack_timeout_s`` from its send.

    Stop-and-wait is ``exchange``; a sender that keeps several messages in flight uses ``send``
    and ``next_ack`` (ACKs may then come in any order). The client does not own the stream:
    whoever opened it closes it.
    """

    __slots__ = ("_decoder", "_stream", "_timeout", "_waiting")

    def __init__(
        self, stream: ByteStream, *, ack_timeout_s: float, max_size: int = DEFAULT_MAX_SIZE
    ) -> None:
        if ack_timeout_s <= 0:
            raise ValueError("ack_timeout_s must be positive")
        self._stream = stream
        self._timeout = ack_timeout_s
        self._decoder = MllpDecoder(max_size=max_size)
        # control ID -> deadline (event-loop time); kept in send order, so the first entry is
        # always the one whose deadline comes first (every message has the same timeout)
        self._waiting: dict[str, float] = {}

    @property
    def stream(self) -> ByteStream:
        """The stream the client writes to and reads from."""
        return self._stream

    @property
    def waiting(self) -> int:
        """How many sent messages are still waiting for their ACK."""
        return len(self._waiting)

    async def send(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Frame ``(control_id, payload)`` pairs and write them in one write; each then waits
        for its ACK. ``control_id`` is the payload's MSH-10 ("" for a message too broken to
        have one: then any ACK answers it)."""
        ids: list[str] = []
        blocks: list[bytes] = []
        for control_id, payload in messages:
            ids.append(control_id)
            blocks.append(frame(payload))
        if not blocks:
            return
        await self._stream.write(blocks[0] if len(blocks) == 1 else b"".join(blocks))
        # the clock starts once the bytes are handed to the OS, not while they queue behind a
        # slow peer
        deadline = asyncio.get_running_loop().time() + self._timeout
        waiting = self._waiting
        for control_id in ids:
            waiting.pop(control_id, None)  # a resend goes to the back of the line
            waiting[control_id] = deadline

    async def next_ack(self, *, strict: bool = False) -> Ack:
        """The next ACK that names a waiting message; that message stops waiting.

        An ACK naming no waiting message is skipped (a repeated ACK for something settled
        before), or with ``strict`` refused with ``RemoteProtocolError`` (field ``MSA-2``).
        Raises ``AckTimeout`` when the oldest waiting message is past its deadline,
        ``TransportError`` when the stream breaks or the peer hangs up, and
        ``RemoteProtocolError`` when the answer is no ACK or its block is oversized.
        """
        waiting = self._waiting
        if not waiting:
            raise LocalProtocolError("next_ack: no message is waiting for an ACK")
        decoder = self._decoder
        while True:
            block = decoder.next_message()
            if block is None:
                await self._read_more()
                continue
            ack = parse_ack(block)
            named = ack.acked_control_id
            if named in waiting:
                del waiting[named]
                return ack
            if "" in waiting:
                del waiting[""]  # the broken message that could not be named
                return ack
            if strict:
                raise RemoteProtocolError(
                    f"the ACK names {named!r}, a message not awaiting one "
                    "(MSA-2 is not the MSH-10 of a sent message)",
                    field="MSA-2",
                    data=block,
                )
            log.warning("ignoring an ACK for %s: no such message is waiting", named)

    async def exchange(self, payload: bytes, *, control_id: str | None = None) -> Ack:
        """Send one message and return its ACK (stop-and-wait). ``control_id`` defaults to the
        payload's MSH-10; an ACK naming another message is refused (``RemoteProtocolError``,
        field ``MSA-2``)."""
        if control_id is None:
            msh = read_msh(payload)
            control_id = msh.control_id if msh is not None else ""
        await self.send([(control_id, payload)])
        return await self.next_ack(strict=True)

    async def _read_more(self) -> None:
        oldest, deadline = next(iter(self._waiting.items()))
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AckTimeout(f"no ACK for {oldest or 'the message'} within {self._timeout} s")
        try:
            async with asyncio.timeout(remaining):
                data = await self._stream.read()
        except TimeoutError as exc:
            raise AckTimeout(
                f"no ACK for {oldest or 'the message'} within {self._timeout} s"
            ) from exc
        if not data:
            raise TransportError(
                f"{self._stream.peer}: the peer closed the connection before the ACK of "
                f"{oldest or 'the message'}"
            )
        self._decoder.receive_data(data)
