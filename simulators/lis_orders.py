"""The LIS side of the worklist: send order messages over MLLP and collect the ACK codes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from drivers.errors import RemoteProtocolError, TransportError
from drivers.protocols.hl7.ack import parse_ack, read_msh
from drivers.protocols.hl7.mllp import MllpDecoder, frame

__all__ = ["send_order_messages"]

_READ_SIZE = 65536


async def send_order_messages(
    host: str,
    port: int,
    messages: Sequence[bytes],
    *,
    timeout_s: float = 10.0,
    connect_within_s: float = 0.0,
) -> list[str]:
    """Send each message MLLP-framed on one connection, one at a time, each after the ACK of
    the one before; return the MSA-1 codes (AA, AE, AR ...) in order.

    ``timeout_s`` bounds the connect and each wait for an ACK. ``connect_within_s``: a refused
    connection is tried again until then, as an LIS does while the gateway starts. Raises
    ``TransportError`` when the connection cannot be opened, breaks, closes or times out before
    an ACK, and ``RemoteProtocolError`` when the answer is no ACK or acknowledges another message.
    """
    reader, writer = await _connect(host, port, timeout_s, connect_within_s)
    decoder = MllpDecoder()
    codes: list[str] = []
    try:
        for number, message in enumerate(messages, start=1):
            writer.write(frame(message))
            await writer.drain()
            codes.append(await _await_ack(reader, decoder, message, number, timeout_s))
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise TransportError(f"order receiver {host}:{port}: connection broke: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return codes


async def _connect(
    host: str, port: int, timeout_s: float, connect_within_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + connect_within_s
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.open_connection(host, port)
        except ConnectionRefusedError as exc:
            if loop.time() >= give_up:
                raise TransportError(
                    f"cannot connect to the order receiver {host}:{port}: {exc}"
                ) from exc
            await asyncio.sleep(0.05)
        except (OSError, TimeoutError) as exc:
            raise TransportError(
                f"cannot connect to the order receiver {host}:{port}: {exc}"
            ) from exc


async def _await_ack(
    reader: asyncio.StreamReader,
    decoder: MllpDecoder,
    message: bytes,
    number: int,
    timeout_s: float,
) -> str:
    msh = read_msh(message)
    control_id = msh.control_id if msh is not None else ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (block := decoder.next_message()) is None:
        try:
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                chunk = await reader.read(_READ_SIZE)
        except TimeoutError as exc:
            raise TransportError(f"no ACK for message {number} within {timeout_s} s") from exc
        if not chunk:
            raise TransportError(f"the order receiver closed the connection before ACK {number}")
        decoder.receive_data(chunk)
    ack = parse_ack(block)
    if control_id and ack.acked_control_id != control_id:
        raise RemoteProtocolError(
            f"ACK {number} acknowledges another message (MSA-2 is not the sent MSH-10)",
            field="MSA-2",
            data=block,
        )
    return ack.code
