"""The LIS side of the worklist: send order messages over MLLP and collect the ACK codes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from drivers.errors import AckTimeout, TransportError
from drivers.mllp import MllpClient
from drivers.transports import ByteStream, TcpConnector

__all__ = ["send_order_messages"]


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
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    stream = await _connect(address, host, port, timeout_s, connect_within_s)
    client = MllpClient(stream, ack_timeout_s=timeout_s)
    codes: list[str] = []
    try:
        for number, message in enumerate(messages, start=1):
            try:
                ack = await client.exchange(message)
            except AckTimeout as exc:
                raise TransportError(f"no ACK for message {number} within {timeout_s} s") from exc
            except TransportError as exc:
                raise TransportError(
                    f"the order receiver {address} closed the connection before ACK {number}: {exc}"
                ) from exc
            codes.append(ack.code)
    finally:
        await stream.aclose()
    return codes


async def _connect(
    address: str, host: str, port: int, timeout_s: float, connect_within_s: float
) -> ByteStream:
    connector = TcpConnector(f"tcp://{address}", host, port, connect_timeout_s=timeout_s)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + connect_within_s
    while True:
        try:
            return await connector.connect()
        except TransportError as exc:
            refused = isinstance(exc.__cause__, ConnectionRefusedError)
            if not refused or loop.time() >= give_up:
                raise TransportError(
                    f"cannot connect to the order receiver {address}: {exc}"
                ) from exc
            await asyncio.sleep(0.05)
