"""The LIS order sender over a real loopback socket: ACK codes, exact bytes, clear failures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from drivers.model import OrderAction, OrderRequest
from drivers.protocols.hl7.ack import build_ack
from drivers.protocols.hl7.mllp import MllpDecoder, frame
from drivers.protocols.hl7.orders import build_order_message, parse_orders
from gateway.errors import RemoteProtocolError, TransportError
from simulators.lis_orders import send_order_messages
from tests.ports import free_port

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
Answer = Callable[[bytes, int], bytes | None]  # payload, its number -> ACK, or None to close


class OrderReceiver:
    """A tiny MLLP server: records each payload and answers as ``answer`` says."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.received: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MllpDecoder()
        try:
            while data := await reader.read(65536):
                decoder.receive_data(data)
                while (payload := decoder.next_message()) is not None:
                    self.received.append(payload)
                    ack = self.answer(payload, len(self.received))
                    if ack is None:
                        return
                    writer.write(frame(ack))
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def receiver(answer: Answer) -> AsyncIterator[tuple[OrderReceiver, int]]:
    server_side = OrderReceiver(answer)
    port = free_port()
    server = await asyncio.start_server(server_side.handle, "127.0.0.1", port)
    try:
        yield server_side, port
    finally:
        server.close()
        await server.wait_closed()


def ack_with(code: str) -> Answer:
    return lambda payload, n: build_ack(payload, code, control_id=f"A{n}", now=NOW)


def messages(count: int) -> list[bytes]:
    requests = [
        OrderRequest(OrderAction.NEW, f"SPEC{i}", ("CRP", "HB"), "P1", placer_order=f"ORD-{i}")
        for i in range(count)
    ]
    return [
        build_order_message([request], control_id=f"ORD{i}", now=NOW)
        for i, request in enumerate(requests)
    ]


async def test_each_message_is_acknowledged_and_arrives_byte_for_byte() -> None:
    sent = messages(3)
    async with receiver(ack_with("AA")) as (server_side, port):
        codes = await send_order_messages("127.0.0.1", port, sent)
    assert codes == ["AA", "AA", "AA"]
    assert server_side.received == sent
    assert [parse_orders(m).requests[0].specimen_id for m in server_side.received] == [
        "SPEC0",
        "SPEC1",
        "SPEC2",
    ]


async def test_error_acks_are_returned_in_order() -> None:
    def answer(payload: bytes, n: int) -> bytes:
        return build_ack(payload, ["AA", "AE", "AR"][n - 1], control_id=f"A{n}", now=NOW)

    async with receiver(answer) as (_, port):
        assert await send_order_messages("127.0.0.1", port, messages(3)) == ["AA", "AE", "AR"]


async def assert_fails_fast(
    call: Awaitable[list[str]], exc_type: type[Exception], text: str
) -> None:
    started = time.monotonic()
    with pytest.raises(exc_type, match=text):
        await call
    assert time.monotonic() - started < 5


async def test_a_receiver_that_closes_before_the_ack_is_a_clear_error_not_a_hang() -> None:
    async with receiver(lambda payload, n: None) as (server_side, port):
        call = send_order_messages("127.0.0.1", port, messages(2), timeout_s=20)
        await assert_fails_fast(call, TransportError, "closed the connection before ACK 1")
    assert len(server_side.received) == 1


async def test_a_receiver_that_never_answers_times_out() -> None:
    async with receiver(lambda payload, n: b"") as (_, port):  # an empty block: no ACK
        call = send_order_messages("127.0.0.1", port, messages(1), timeout_s=0.3)
        await assert_fails_fast(call, TransportError, "no ACK for message 1 within 0.3 s")


async def test_an_ack_for_another_message_is_refused() -> None:
    def answer(payload: bytes, n: int) -> bytes:
        return build_ack(payload.replace(b"ORD0", b"ORD9"), "AA", control_id="A1", now=NOW)

    async with receiver(answer) as (_, port):
        with pytest.raises(RemoteProtocolError) as caught:
            await send_order_messages("127.0.0.1", port, messages(1))
    assert caught.value.field == "MSA-2"


async def test_nobody_listening_is_a_transport_error() -> None:
    port = free_port()
    await assert_fails_fast(
        send_order_messages("127.0.0.1", port, messages(1)), TransportError, "cannot connect"
    )


async def test_a_receiver_that_starts_late_is_waited_for_within_the_bound() -> None:
    port = free_port()
    server_side = OrderReceiver(ack_with("AA"))

    async def listen_later() -> asyncio.Server:
        await asyncio.sleep(0.3)
        return await asyncio.start_server(server_side.handle, "127.0.0.1", port)

    starting = asyncio.create_task(listen_later())
    try:
        codes = await send_order_messages("127.0.0.1", port, messages(1), connect_within_s=5.0)
    finally:
        server = await starting
        server.close()
        await server.wait_closed()
    assert codes == ["AA"]
