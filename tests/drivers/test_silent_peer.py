"""Keepalive on every TCP socket, the idle deadline, and MLLP telling it a block is half read."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from drivers.errors import RemoteProtocolError
from drivers.mllp import serve_mllp
from drivers.protocols.hl7.mllp import VT, frame
from drivers.transports import (
    ByteStream,
    ConnectionEnded,
    IdleDeadline,
    IdleLimits,
    IdleTimeout,
    TcpListenConnector,
    TlsSettings,
    connector_for,
    mark_partial,
    memory_pair,
    set_keepalive,
)
from drivers.transports.base import AsyncioByteStream
from drivers.transports.keepalive import (
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE_S,
    KEEPALIVE_INTERVAL_S,
)
from tests.tls import make_tls_files

pytestmark = pytest.mark.timeout(30)


# --- keepalive -------------------------------------------------------------------------------


def keepalive_of(stream: ByteStream) -> tuple[int, ...]:
    assert isinstance(stream, AsyncioByteStream)
    sock = stream.socket
    values = [sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)]
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"):
        if hasattr(socket, name):  # Linux has all three (this machine, CI)
            values.append(sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)))
    return tuple(values)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_accepted_and_connected_sockets_have_keepalive(tls: bool, tmp_path: Path) -> None:
    files = make_tls_files(tmp_path) if tls else None
    listener = TcpListenConnector(
        "tcp-listen://127.0.0.1:0",
        "127.0.0.1",
        0,
        tls=files.server_context() if files else None,
    )
    port = await listener.start()
    accepting = asyncio.create_task(listener.connect())
    if files is None:
        client = await connector_for(f"tcp://127.0.0.1:{port}").connect()
    else:
        settings = TlsSettings(ca_file=files.ca_file)
        client = await connector_for(f"tls://127.0.0.1:{port}", tls=settings).connect()
    server = await asyncio.wait_for(accepting, 5)
    try:
        full = hasattr(socket, "TCP_KEEPIDLE")  # Linux has all three (this machine, CI)
        expected = (1, KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        for stream in (server, client):
            assert keepalive_of(stream) == (expected if full else expected[:1])
    finally:
        await client.aclose()
        await server.aclose()
        await listener.aclose()


def test_keepalive_leaves_other_sockets_alone_and_never_raises() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        set_keepalive(a)  # not TCP: nothing set, nothing raised
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        set_keepalive(None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.close()
    set_keepalive(sock)  # a closed socket: refused quietly


# --- the idle deadline -----------------------------------------------------------------------


async def test_a_silent_stream_times_out_after_the_idle_deadline() -> None:
    a, b = memory_pair("idle")
    stream = IdleDeadline(b, IdleLimits(idle_s=0.3, partial_s=0.1))
    started = time.monotonic()
    with pytest.raises(IdleTimeout, match=r"nothing received for 0.3 s \(idle\)"):
        await stream.read()
    assert 0.25 <= time.monotonic() - started < 2.0
    await a.aclose()


async def test_bytes_push_the_deadline_back_and_partial_shortens_it() -> None:
    a, b = memory_pair("pushed")
    stream = IdleDeadline(b, IdleLimits(idle_s=0.4, partial_s=0.15))
    for _ in range(4):  # 4 x 0.2 s: longer than the deadline in all, never silent for it
        await asyncio.sleep(0.2)
        await a.write(b"x")
        assert await stream.read() == b"x"
    mark_partial(stream, True)
    started = time.monotonic()
    with pytest.raises(IdleTimeout, match="inside a message"):
        await stream.read()
    assert time.monotonic() - started < 0.35  # the partial deadline, not the idle one


async def test_no_deadline_waits_for_ever() -> None:
    a, b = memory_pair("forever")
    stream = IdleDeadline(b, IdleLimits(idle_s=None, partial_s=None))
    reading = asyncio.create_task(stream.read())
    await asyncio.sleep(0.3)
    assert not reading.done()
    await a.write(b"late")
    assert await reading == b"late"


async def test_the_clock_is_injectable() -> None:
    now = [1000.0]
    _a, b = memory_pair("clock")
    stream = IdleDeadline(b, IdleLimits(idle_s=300.0), clock=lambda: now[0])
    now[0] += 301.0  # five minutes of silence, in no time
    assert stream.silent_for == pytest.approx(301.0)
    with pytest.raises(IdleTimeout, match="300 s"):
        await asyncio.wait_for(stream.read(), 1.0)


async def test_end_wakes_a_pending_read_and_refuses_writes() -> None:
    _a, b = memory_pair("ended")
    stream = IdleDeadline(b, IdleLimits())
    reading = asyncio.create_task(stream.read())
    await asyncio.sleep(0.05)
    stream.end(ConnectionEnded("replaced"))
    with pytest.raises(ConnectionEnded, match="replaced"):
        await asyncio.wait_for(reading, 1.0)
    with pytest.raises(ConnectionEnded):
        await stream.write(b"ACK")
    with pytest.raises(ConnectionEnded):
        await stream.read()


async def test_mark_partial_ignores_a_stream_without_a_deadline() -> None:
    a, _b = memory_pair("plain")
    mark_partial(a, True)  # nothing to tell: no error


# --- MLLP: a half-received block gets the shorter deadline ------------------------------------


async def test_serve_mllp_gives_a_half_received_block_the_partial_deadline() -> None:
    peer, ours = memory_pair("mllp")
    stream = IdleDeadline(ours, IdleLimits(idle_s=30.0, partial_s=0.3))
    kept: list[bytes] = []

    async def answer(payload: bytes) -> bytes:
        return b"MSH|^~\\&|ACK"

    async def keep(raw: bytes, exc: RemoteProtocolError) -> None:
        kept.append(raw)

    serving = asyncio.create_task(serve_mllp(stream, answer, keep))
    await peer.write(frame(b"MSH|^~\\&|ONE"))
    assert VT in await asyncio.wait_for(peer.read(), 2.0)  # a whole message: answered
    assert not stream.partial
    await peer.write(VT + b"MSH|^~\\&|HALF")
    started = time.monotonic()
    with pytest.raises(IdleTimeout, match="inside a message"):
        await asyncio.wait_for(serving, 5.0)
    assert time.monotonic() - started < 2.0  # not the 30 s idle deadline
    assert kept == []  # our own hang-up: the sender got no ACK and sends it again
