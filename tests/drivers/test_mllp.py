"""The MLLP client and server over loopback sockets: MSA-2 matching, timeouts, broken blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from drivers.errors import AckTimeout, LocalProtocolError, RemoteProtocolError, TransportError
from drivers.mllp import MllpClient, MllpServer, serve_mllp
from drivers.protocols.hl7.ack import build_ack, read_msh
from drivers.protocols.hl7.mllp import VT, MllpDecoder, frame
from drivers.transports import ByteStream, TcpListenConnector, connector_for

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def oru(control_id: str) -> bytes:
    return (
        f"MSH|^~\\&|TRYGG||LIS||20250304050607||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r"
        "PID|1||01017012345^^^^FNR\rOBR|1||S-1|GLU\rOBX|1|NM|GLU||5.5|mmol/L|||||F\r"
    ).encode()


def ack_for(payload: bytes, code: str = "AA", *, acked: str | None = None) -> bytes:
    """An ACK for ``payload``; ``acked`` makes it name another message instead."""
    if acked is not None:
        msh = read_msh(payload)
        assert msh is not None
        payload = payload.replace(msh.control_id.encode(), acked.encode(), 1)
    return build_ack(payload, code, control_id="ACK1", now=NOW)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ByteStream, ByteStream]]:
    """(client side, server side) of one real loopback TCP connection."""
    listener = connector_for("tcp-listen://127.0.0.1:0")
    assert isinstance(listener, TcpListenConnector)
    port = await listener.start()
    accepting = asyncio.create_task(listener.connect())
    client = await connector_for(f"tcp://127.0.0.1:{port}").connect()
    server = await asyncio.wait_for(accepting, 5)
    try:
        yield client, server
    finally:
        await client.aclose()
        await server.aclose()
        await listener.aclose()


async def read_payloads(stream: ByteStream, count: int) -> list[bytes]:
    """The next ``count`` MLLP payloads the peer sent."""
    decoder, out = MllpDecoder(), []
    async with asyncio.timeout(5):
        while len(out) < count:
            data = await stream.read()
            assert data, "the peer closed early"
            decoder.receive_data(data)
            while (payload := decoder.next_message()) is not None:
                out.append(payload)
    return out


# -- the client ------------------------------------------------------------------------------


async def test_exchange_returns_the_ack_whose_msa2_is_the_sent_msh10(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    client = MllpClient(near, ack_timeout_s=5)

    async def lis() -> None:
        (payload,) = await read_payloads(far, 1)
        await far.write(frame(ack_for(payload, "AE")))

    answering = asyncio.create_task(lis())
    ack = await client.exchange(oru("MSG-1"))
    await answering
    assert (ack.code, ack.acked_control_id) == ("AE", "MSG-1")
    assert client.waiting == 0


async def test_exchange_refuses_an_ack_that_names_another_message(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    client = MllpClient(near, ack_timeout_s=5)

    async def lis() -> None:
        (payload,) = await read_payloads(far, 1)
        await far.write(frame(ack_for(payload, acked="SOMETHING-ELSE")))

    answering = asyncio.create_task(lis())
    with pytest.raises(RemoteProtocolError) as caught:
        await client.exchange(oru("MSG-1"))
    await answering
    assert caught.value.field == "MSA-2"
    assert "SOMETHING-ELSE" in str(caught.value)


async def test_in_flight_acks_are_matched_by_msa2_in_any_order_and_strays_skipped(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    client = MllpClient(near, ack_timeout_s=5)
    await client.send([(f"W{i}", oru(f"W{i}")) for i in range(3)])
    assert client.waiting == 3
    payloads = await read_payloads(far, 3)
    assert [read_msh(p).control_id for p in payloads] == ["W0", "W1", "W2"]  # type: ignore[union-attr]
    # the LIS answers W2 first, repeats an old ACK nobody waits for, then W0 and W1
    stray = ack_for(payloads[0], acked="SETTLED-LONG-AGO")
    answers = [ack_for(payloads[2], "AR"), stray, ack_for(payloads[0]), ack_for(payloads[1])]
    await far.write(b"".join(frame(a) for a in answers))
    got = [await client.next_ack() for _ in range(3)]
    assert [(a.acked_control_id, a.code) for a in got] == [("W2", "AR"), ("W0", "AA"), ("W1", "AA")]
    assert client.waiting == 0
    with pytest.raises(LocalProtocolError):
        await client.next_ack()


async def test_no_ack_within_the_timeout_is_an_ack_timeout(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, _far = pair  # the far side reads nothing and answers nothing
    client = MllpClient(near, ack_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(AckTimeout, match=r"no ACK for SILENT within 0\.3 s"):
        await client.exchange(oru("SILENT"))
    elapsed = time.monotonic() - started
    assert 0.28 <= elapsed < 2.0
    assert isinstance(AckTimeout("x"), TransportError)  # callers that retry catch one type


async def test_the_timeout_runs_from_each_message_s_own_send(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    """The oldest message's deadline counts: a later one does not extend it."""
    near, far = pair
    client = MllpClient(near, ack_timeout_s=0.5)
    await client.send([("OLD", oru("OLD"))])
    await asyncio.sleep(0.3)
    await client.send([("NEW", oru("NEW"))])
    payloads = await read_payloads(far, 2)
    await far.write(frame(ack_for(payloads[1])))  # only NEW is answered
    assert (await client.next_ack()).acked_control_id == "NEW"
    started = time.monotonic()
    with pytest.raises(AckTimeout, match="OLD"):
        await client.next_ack()
    assert time.monotonic() - started < 0.4  # OLD's 0.5 s were mostly gone already


async def test_a_hang_up_before_the_ack_is_a_transport_error(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    client = MllpClient(near, ack_timeout_s=10)

    async def lis() -> None:
        await read_payloads(far, 1)
        await far.aclose()

    answering = asyncio.create_task(lis())
    started = time.monotonic()
    with pytest.raises(TransportError, match="closed the connection before the ACK of GONE"):
        await client.exchange(oru("GONE"))
    await answering
    assert time.monotonic() - started < 5


async def test_a_message_without_a_control_id_takes_whatever_ack_comes(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    client = MllpClient(near, ack_timeout_s=5)
    broken = b"MSH|^~\\&|X|\xff\xfe garbled line"

    async def lis() -> None:
        (payload,) = await read_payloads(far, 1)
        await far.write(frame(build_ack(payload, "AE", control_id="A9", now=NOW)))

    answering = asyncio.create_task(lis())
    ack = await client.exchange(broken)
    await answering
    assert (ack.code, ack.acked_control_id) == ("AE", "")


# -- the server ------------------------------------------------------------------------------


async def test_the_server_answers_each_payload_and_hangs_up_when_told(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    seen: list[bytes] = []

    async def handle(payload: bytes) -> bytes | None:
        seen.append(payload)
        return None if len(seen) == 3 else ack_for(payload)

    async def never(raw: bytes, exc: RemoteProtocolError) -> None:
        raise AssertionError("nothing here is broken")

    serving = asyncio.create_task(serve_mllp(far, handle, never))
    client = MllpClient(near, ack_timeout_s=5)
    assert (await client.exchange(oru("S1"))).acked_control_id == "S1"
    assert (await client.exchange(oru("S2"))).acked_control_id == "S2"
    await client.send([("S3", oru("S3"))])
    await asyncio.wait_for(serving, 5)  # None: the loop returns without answering...
    await far.aclose()  # ...and its owner hangs up
    with pytest.raises(TransportError, match="closed the connection before the ACK of S3"):
        await client.next_ack()
    assert [read_msh(p).control_id for p in seen] == ["S1", "S2", "S3"]  # type: ignore[union-attr]


async def test_the_server_keeps_an_oversized_block_then_hangs_up(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    kept: list[tuple[bytes, RemoteProtocolError]] = []
    answered: list[bytes] = []

    async def handle(payload: bytes) -> bytes:
        answered.append(payload)
        return ack_for(payload)

    async def keep(raw: bytes, exc: RemoteProtocolError) -> None:
        kept.append((raw, exc))

    serving = asyncio.create_task(serve_mllp(far, handle, keep, max_size=1000))
    await near.write(frame(oru("FIRST")) + VT + b"MSH|" + b"x" * 3000)
    with pytest.raises(RemoteProtocolError) as caught:
        await asyncio.wait_for(serving, 5)
    assert caught.value.field == "mllp"
    assert [read_msh(p).control_id for p in answered] == ["FIRST"]  # type: ignore[union-attr]
    ((raw, exc),) = kept
    assert exc is caught.value
    assert raw.startswith(VT + b"MSH|xxx") and len(raw) > 1000


def acking_server(stream: ByteStream) -> tuple[asyncio.Task[None], list[bytes]]:
    """``serve_mllp`` on ``stream``, acknowledging every message; the list collects kept blocks."""
    kept: list[bytes] = []

    async def handle(payload: bytes) -> bytes:
        return ack_for(payload)

    async def keep(raw: bytes, exc: RemoteProtocolError) -> None:
        kept.append(raw)

    return asyncio.create_task(serve_mllp(stream, handle, keep)), kept


async def test_the_server_keeps_a_block_the_peer_cut_off_by_hanging_up(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    serving, kept = acking_server(far)
    half = oru("CUT")[:40]
    await near.write(b"noise" + frame(oru("WHOLE")) + VT + half)
    await near.aclose()
    with pytest.raises(RemoteProtocolError, match="inside an MLLP block"):
        await asyncio.wait_for(serving, 5)
    assert kept == [half]


async def test_a_clean_hang_up_between_blocks_keeps_nothing(
    pair: tuple[ByteStream, ByteStream],
) -> None:
    near, far = pair
    serving, kept = acking_server(far)
    await near.write(frame(oru("ONLY")) + b"\r\n")
    await read_payloads(near, 1)
    await near.aclose()
    await asyncio.wait_for(serving, 5)
    assert kept == []


async def test_mllp_server_serves_several_peers_and_closes_them_all() -> None:
    listener = connector_for("tcp-listen://127.0.0.1:0")
    assert isinstance(listener, TcpListenConnector)
    port = await listener.start()
    count = 0

    async def handle(payload: bytes) -> bytes:
        nonlocal count
        count += 1
        return ack_for(payload)

    server = MllpServer(listener, lambda stream: handle)
    server.start()
    streams = [await connector_for(f"tcp://127.0.0.1:{port}").connect() for _ in range(3)]
    try:
        clients = [MllpClient(s, ack_timeout_s=5) for s in streams]
        acks = await asyncio.gather(*(c.exchange(oru(f"P{i}")) for i, c in enumerate(clients)))
        assert sorted(a.acked_control_id for a in acks) == ["P0", "P1", "P2"]
        assert count == 3 and server.connections == 3
        await server.aclose()
        for stream in streams:  # every peer sees the hang-up
            async with asyncio.timeout(5):
                assert await stream.read() == b""
        assert server.connections == 0
        with pytest.raises(TransportError):
            await connector_for(f"tcp://127.0.0.1:{port}").connect()  # no longer listening
    finally:
        for stream in streams:
            await stream.aclose()
        await server.aclose()
