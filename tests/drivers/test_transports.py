"""Transports over real loopback sockets, real pseudo-terminals and in-process pairs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.transports import (
    ByteStream,
    Faults,
    MemoryHub,
    SerialConnector,
    SerialSettings,
    TcpListenConnector,
    WireTrace,
    connector_for,
    hexdump,
    memory_pair,
    traced,
)
from gateway.errors import ConfigError, TransportError

PAYLOAD_4K = bytes(range(256)) * 16


async def read_exactly(stream: ByteStream, size: int) -> bytes:
    data = bytearray()
    async with asyncio.timeout(5):
        while len(data) < size:
            chunk = await stream.read(size - len(data))
            if not chunk:
                raise AssertionError(f"EOF after {len(data)} of {size} bytes")
            data += chunk
    return bytes(data)


@pytest.fixture
async def listener() -> AsyncIterator[TcpListenConnector]:
    connector = connector_for("tcp-listen://127.0.0.1:0")
    assert isinstance(connector, TcpListenConnector)
    assert connector.bound_port is None
    try:
        yield connector
    finally:
        await connector.aclose()


async def open_pair(listener: TcpListenConnector) -> tuple[ByteStream, ByteStream]:
    port = await listener.start()
    accepting = asyncio.create_task(listener.connect())
    client = await connector_for(f"tcp://127.0.0.1:{port}").connect()
    server = await asyncio.wait_for(accepting, 5)
    return client, server


# --- TCP -------------------------------------------------------------------------------------


async def test_tcp_round_trip_on_an_ephemeral_port(listener: TcpListenConnector) -> None:
    client, server = await open_pair(listener)
    try:
        assert listener.bound_port is not None and listener.bound_port > 0
        assert client.peer == f"127.0.0.1:{listener.bound_port}"
        assert server.peer.startswith("127.0.0.1:")
        await client.write(b"\x05hello")
        assert await read_exactly(server, 6) == b"\x05hello"
        await server.write(PAYLOAD_4K)
        assert await read_exactly(client, len(PAYLOAD_4K)) == PAYLOAD_4K
    finally:
        await client.aclose()
        await server.aclose()


async def test_two_sequential_connections_and_a_queued_one(listener: TcpListenConnector) -> None:
    port = await listener.start()
    client_url = f"tcp://127.0.0.1:{port}"
    first_client, first_server = await open_pair(listener)
    # A second analyser connects while the first connection is still in use: it waits in a queue.
    second_client = await connector_for(client_url).connect()
    await second_client.write(b"two")
    await first_client.write(b"one")
    assert await read_exactly(first_server, 3) == b"one"
    await first_client.aclose()
    assert await first_server.read() == b""
    await first_server.aclose()

    second_server = await asyncio.wait_for(listener.connect(), 5)
    assert await read_exactly(second_server, 3) == b"two"
    await second_server.write(b"ack")
    assert await read_exactly(second_client, 3) == b"ack"
    await second_client.aclose()
    await second_server.aclose()
    assert listener.bound_port == port  # the server stayed up across calls


async def test_listener_aclose_wakes_a_waiting_connect(listener: TcpListenConnector) -> None:
    await listener.start()
    waiting = asyncio.create_task(listener.connect())
    await asyncio.sleep(0)
    await listener.aclose()
    with pytest.raises(TransportError, match="closed"):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(TransportError, match="closed"):
        await listener.connect()


async def test_listening_on_a_taken_port_is_a_transport_error(
    listener: TcpListenConnector,
) -> None:
    port = await listener.start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        other = connector_for(f"tcp-listen://127.0.0.1:{taken.getsockname()[1]}")
        try:
            with pytest.raises(TransportError, match="cannot listen") as caught:
                await other.connect()
            assert isinstance(caught.value.__cause__, OSError)
        finally:
            await other.aclose()
    assert port


async def test_connect_to_a_closed_port_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = connector_for(f"tcp://127.0.0.1:{port}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransportError) as caught:
        await connector.connect()
    assert loop.time() - started < 2
    message = str(caught.value)
    assert f"tcp://127.0.0.1:{port}" in message
    assert "Connection refused" in message
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    await connector.aclose()


async def test_peer_close_reads_empty_and_later_writes_fail(listener: TcpListenConnector) -> None:
    client, server = await open_pair(listener)
    try:
        await server.write(b"last words")
        await server.aclose()
        await server.aclose()  # idempotent
        assert await read_exactly(client, 10) == b"last words"
        assert await client.read() == b""
        # Writing into a connection the peer has closed fails once the RST comes back.
        with pytest.raises(TransportError, match="write failed"):
            async with asyncio.timeout(5):
                while True:
                    await client.write(b"x")
                    await asyncio.sleep(0.01)
    finally:
        await client.aclose()


async def test_use_after_aclose_is_a_transport_error(listener: TcpListenConnector) -> None:
    client, server = await open_pair(listener)
    await client.aclose()
    await server.aclose()
    with pytest.raises(TransportError, match="closed stream"):
        await client.read()
    with pytest.raises(TransportError, match="closed stream"):
        await client.write(b"x")


async def test_aclose_wakes_a_pending_read(listener: TcpListenConnector) -> None:
    client, server = await open_pair(listener)
    reading = asyncio.create_task(client.read())
    await asyncio.sleep(0.01)
    await client.aclose()
    assert await asyncio.wait_for(reading, 5) == b""
    await server.aclose()


# --- serial over a pseudo-terminal ----------------------------------------------------------


class PtyMaster:
    """The far end of the serial line: the pty master, driven by the event loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.received = bytearray()
        self.arrived = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self.loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: no slave is open any more
            self.loop.remove_reader(self.fd)
            return
        self.received += data
        self.arrived.set()

    async def read_exactly(self, size: int) -> bytes:
        async with asyncio.timeout(5):
            while len(self.received) < size:
                self.arrived.clear()
                await self.arrived.wait()
        data = bytes(self.received[:size])
        del self.received[:size]
        return data

    async def write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                writable = self.loop.create_future()
                self.loop.add_writer(self.fd, writable.set_result, None)
                try:
                    await asyncio.wait_for(writable, 5)
                finally:
                    self.loop.remove_writer(self.fd)

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


@pytest.fixture
async def pty() -> AsyncIterator[tuple[PtyMaster, str]]:
    master_fd, slave_fd = os.openpty()
    master = PtyMaster(master_fd)
    try:
        # Our slave fd stays open so the master never sees a hang-up while the port reopens.
        yield master, os.ttyname(slave_fd)
    finally:
        with contextlib.suppress(OSError):
            master.close()
        os.close(slave_fd)


@pytest.mark.parametrize("baudrate", [9600, 115200])
async def test_serial_over_a_pty_both_ways(pty: tuple[PtyMaster, str], baudrate: int) -> None:
    master, device = pty
    connector = connector_for(f"serial://{device}?baudrate={baudrate}&bytesize=8&parity=N")
    stream = await connector.connect()
    try:
        assert stream.peer == device
        await stream.write(b"\x02hello\r\n\x03")
        assert await master.read_exactly(9) == b"\x02hello\r\n\x03"
        await master.write_all(b"\x06\r\n\x11\x13")  # CR, LF and XON/XOFF bytes pass untouched
        assert await read_exactly(stream, 5) == b"\x06\r\n\x11\x13"
        await stream.write(PAYLOAD_4K)
        assert await master.read_exactly(len(PAYLOAD_4K)) == PAYLOAD_4K
        await master.write_all(PAYLOAD_4K)
        assert await read_exactly(stream, len(PAYLOAD_4K)) == PAYLOAD_4K
    finally:
        await stream.aclose()
        await stream.aclose()
        await connector.aclose()


async def test_serial_port_is_locked_while_open(pty: tuple[PtyMaster, str]) -> None:
    _, device = pty
    connector = connector_for(f"serial://{device}")
    stream = await connector.connect()
    try:
        with pytest.raises(TransportError, match="cannot open") as caught:
            await connector.connect()
        assert isinstance(caught.value.__cause__, OSError)
    finally:
        await stream.aclose()
    again = await connector.connect()  # the lock went with the close
    await again.aclose()


async def test_serial_hang_up_is_a_transport_error() -> None:
    master_fd, slave_fd = os.openpty()
    device = os.ttyname(slave_fd)
    os.close(slave_fd)
    stream = await connector_for(f"serial://{device}").connect()
    try:
        os.close(master_fd)
        with pytest.raises(TransportError, match="read failed"):
            async with asyncio.timeout(5):
                await stream.read()
    finally:
        await stream.aclose()


async def test_opening_a_missing_serial_device_is_a_transport_error(tmp_path: Path) -> None:
    connector = connector_for(f"serial://{tmp_path}/no-such-tty")
    with pytest.raises(TransportError, match="no-such-tty") as caught:
        await connector.connect()
    assert isinstance(caught.value.__cause__, OSError)
    assert "No such file or directory" in str(caught.value)


def test_serial_url_parameters_are_parsed() -> None:
    url = (
        "serial:///dev/serial/by-id/usb-FTDI%20A?baudrate=19200&bytesize=7&parity=E&stopbits=1.5"
        "&xonxoff=1&rtscts=0&dsrdtr=1&exclusive=0"
    )
    connector = connector_for(url)
    assert connector.url == url
    assert isinstance(connector, SerialConnector)
    assert connector.settings == SerialSettings(
        device="/dev/serial/by-id/usb-FTDI A",
        baudrate=19200,
        bytesize=7,
        parity="E",
        stopbits=1.5,
        xonxoff=True,
        rtscts=False,
        dsrdtr=True,
        exclusive=False,
    )
    defaults = SerialSettings(device="/dev/ttyS0")
    assert defaults.serial_kwargs() == {
        "baudrate": 9600,
        "bytesize": 8,
        "parity": "N",
        "stopbits": 1,
        "xonxoff": False,
        "rtscts": False,
        "dsrdtr": False,
        "exclusive": True,
    }


# --- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("", "scheme"),
        ("localhost:5000", "scheme"),
        ("ftp://host:21", "scheme"),
        ("tcp://:5000", "host"),
        ("tcp://host", "port"),
        ("tcp://host:", "port"),
        ("tcp://host:0", "port"),
        ("tcp://host:65536", "port"),
        ("tcp://host:50x0", "port"),
        ("tcp://::1:5000", "host"),
        ("tcp://[::1:5000", "host"),
        ("tcp://user@host:5000", "userinfo"),
        ("tcp://host:5000/astm", "path"),
        ("tcp://host:5000?timeout=3", "query"),
        ("tcp://host:5000#x", "fragment"),
        ("tcp-listen://0.0.0.0", "port"),
        ("tcp-listen://0.0.0.0:70000", "port"),
        ("serial://dev/ttyUSB0", "host"),
        ("serial://", "path"),
        ("serial:///", "path"),
        ("serial:///dev/ttyUSB0?baudrate=fast", "baudrate"),
        ("serial:///dev/ttyUSB0?baudrate=0", "baudrate"),
        ("serial:///dev/ttyUSB0?baudrate=-9600", "baudrate"),
        ("serial:///dev/ttyUSB0?baudrate", "baudrate"),
        ("serial:///dev/ttyUSB0?baudrate=", "baudrate"),
        ("serial:///dev/ttyUSB0?baudrate=9600&baudrate=19200", "baudrate"),
        ("serial:///dev/ttyUSB0?bytesize=9", "bytesize"),
        ("serial:///dev/ttyUSB0?bytesize=4", "bytesize"),
        ("serial:///dev/ttyUSB0?parity=X", "parity"),
        ("serial:///dev/ttyUSB0?parity=none", "parity"),
        ("serial:///dev/ttyUSB0?stopbits=3", "stopbits"),
        ("serial:///dev/ttyUSB0?xonxoff=yes", "xonxoff"),
        ("serial:///dev/ttyUSB0?rtscts=2", "rtscts"),
        ("serial:///dev/ttyUSB0?dsrdtr=true", "dsrdtr"),
        ("serial:///dev/ttyUSB0?speed=9600", "unknown parameter 'speed'"),
        ("serial:///dev/ttyUSB0#x", "fragment"),
        ("memory://", "name"),
        ("memory://a b", "name"),
        ("memory://pair/x", "path"),
        ("memory://pair?split=2", "query"),
    ],
)
def test_bad_urls_are_config_errors_naming_the_part(url: str, part: str) -> None:
    with pytest.raises(ConfigError) as caught:
        connector_for(url, memory=MemoryHub())
    message = str(caught.value)
    assert f"{part}" in message
    assert repr(url) in message


def test_memory_urls_need_a_hub() -> None:
    with pytest.raises(ConfigError, match="MemoryHub"):
        connector_for("memory://pair")


@pytest.mark.parametrize(
    "url",
    [
        "tcp://127.0.0.1:1",
        "tcp://localhost:65535",
        "tcp://[::1]:4000",
        "TCP://host.example:4000/",
        "tcp-listen://0.0.0.0:0",
        "tcp-listen://[::]:5000",
        "serial:///dev/ttyUSB0",
        "serial:///dev/ttyUSB0?stopbits=2&parity=S&bytesize=5",
        "memory://analyser-1",
    ],
)
def test_good_urls_build_connectors(url: str) -> None:
    assert connector_for(url, memory=MemoryHub()).url == url


# --- memory pairs and faults -------------------------------------------------------------------


async def test_memory_pair_round_trip_and_close() -> None:
    a, b = memory_pair("plain")
    assert a.peer == "memory://plain#b" and b.peer == "memory://plain#a"
    await a.write(b"hello")
    await a.write(b" world")
    assert await b.read(3) == b"hel"
    assert await read_exactly(b, 8) == b"lo world"
    await b.write(PAYLOAD_4K)
    assert await read_exactly(a, len(PAYLOAD_4K)) == PAYLOAD_4K
    await a.write(b"bye")
    await a.aclose()
    await a.aclose()
    assert await b.read() == b"bye"
    assert await b.read() == b""
    with pytest.raises(TransportError, match="peer closed"):
        await b.write(b"x")
    with pytest.raises(TransportError, match="closed stream"):
        await a.read()
    await b.aclose()


async def test_memory_read_waits_for_data_and_wakes_on_close() -> None:
    a, b = memory_pair("waiting")
    reading = asyncio.create_task(b.read())
    await asyncio.sleep(0)
    assert not reading.done()
    await a.write(b"x")
    assert await asyncio.wait_for(reading, 1) == b"x"
    reading = asyncio.create_task(b.read())
    await asyncio.sleep(0)
    await b.aclose()
    assert await asyncio.wait_for(reading, 1) == b""
    await a.aclose()


async def test_fault_split_delivers_small_chunks() -> None:
    a, b = memory_pair("split", Faults(split=3))
    await a.write(b"0123456789")
    chunks = [await b.read() for _ in range(4)]
    assert chunks == [b"012", b"345", b"678", b"9"]
    await a.aclose()
    await b.aclose()


async def test_fault_delay_slows_each_chunk() -> None:
    a, b = memory_pair("slow", Faults(split=2, delay_s=0.02))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await a.write(b"abcdef")
    assert loop.time() - started >= 0.06 - 0.005
    assert await read_exactly(b, 6) == b"abcdef"
    await a.aclose()
    await b.aclose()


async def test_fault_corrupt_every_is_deterministic_by_seed() -> None:
    data = bytes(range(40, 64))

    async def send(seed: int) -> bytes:
        a, b = memory_pair("noisy", Faults(corrupt_every=5, seed=seed, split=7))
        await a.write(data[:3])
        await a.write(data[3:])
        received = await read_exactly(b, len(data))
        await a.aclose()
        await b.aclose()
        return received

    first = await send(seed=7)
    assert [i for i in range(len(data)) if first[i] != data[i]] == [4, 9, 14, 19]
    assert await send(seed=7) == first
    assert await send(seed=8) != first


async def test_fault_drop_after_bytes_cuts_the_link() -> None:
    a, b = memory_pair("flaky", Faults(drop_after_bytes=5))
    await a.write(b"abc")
    await a.write(b"defgh")  # the link goes down inside this write; the writer is not told
    assert await read_exactly(b, 5) == b"abcde"
    assert await b.read() == b""
    assert await a.read() == b""
    with pytest.raises(TransportError, match="link dropped"):
        await a.write(b"i")
    with pytest.raises(TransportError, match="link dropped"):
        await b.write(b"j")
    await a.aclose()
    await b.aclose()


async def test_faults_can_apply_to_one_direction() -> None:
    a, b = memory_pair("oneway", Faults(split=1, direction="b_to_a"))
    await a.write(b"abc")
    assert await b.read() == b"abc"
    await b.write(b"abc")
    assert [await a.read() for _ in range(3)] == [b"a", b"b", b"c"]
    await a.aclose()
    await b.aclose()


def test_bad_faults_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="split"):
        Faults(split=0)
    with pytest.raises(ValueError, match="corrupt_every"):
        Faults(corrupt_every=0)
    with pytest.raises(ValueError, match="name"):
        memory_pair("a/b")


async def test_memory_hub_hands_each_registered_end_out_once() -> None:
    hub = MemoryHub()
    simulator_end = hub.register_memory_pair("afinion", Faults(split=2, direction="a_to_b"))
    with pytest.raises(ValueError, match="already registered"):
        hub.register_memory_pair("afinion")
    connector = connector_for("memory://afinion", memory=hub)
    gateway_end = await connector.connect()
    assert gateway_end.peer == "memory://afinion#a"
    await simulator_end.write(b"\x05\x02")
    assert await gateway_end.read() == b"\x05\x02"
    await gateway_end.write(b"\x06")
    assert await simulator_end.read() == b"\x06"
    with pytest.raises(TransportError, match="no pair registered"):
        await connector.connect()
    await connector.aclose()
    with pytest.raises(TransportError, match="closed"):
        await connector.connect()
    await gateway_end.aclose()
    await simulator_end.aclose()


# --- wire trace ----------------------------------------------------------------------------------


def test_hexdump_layout() -> None:
    data = b"\x021H|\\^&|||Afinion\r\x03"
    assert hexdump(data) == [
        "00000000  02 31 48 7c 5c 5e 26 7c  7c 7c 41 66 69 6e 69 6f  |.1H|\\^&|||Afinio|",
        "00000010  6e 0d 03                                          |n..|",
    ]
    assert hexdump(b"") == []


async def test_wire_trace_to_a_callback() -> None:
    a, b = memory_pair("traced")
    lines: list[str] = []
    moment = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    stream = WireTrace(a, lines.append, clock=lambda: moment)
    assert stream.peer == "memory://traced#b"
    await stream.write(b"\x05")
    await b.write(b"\x06")
    assert await stream.read() == b"\x06"
    await b.aclose()
    assert await stream.read() == b""
    await stream.aclose()
    assert lines == [
        f"2025-03-04T05:06:07.890123Z memory://traced#b -> 1 byte\n00000000  {'05':<48}  |.|",
        f"2025-03-04T05:06:07.890123Z memory://traced#b <- 1 byte\n00000000  {'06':<48}  |.|",
        "2025-03-04T05:06:07.890123Z memory://traced#b <- EOF (peer closed)",
    ]


async def test_wire_trace_to_a_logger_only_when_enabled(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("trygg.test.wire")
    a, b = memory_pair("logged")
    stream = traced(a, logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        await stream.write(b"quiet")
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        await stream.write(b"loud\r\n")
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    text = record.getMessage()
    assert " memory://logged#b -> 6 bytes\n" in text
    assert text.endswith(f"\n00000000  {'6c 6f 75 64 0d 0a':<48}  |loud..|")
    assert await read_exactly(b, 11) == b"quietloud\r\n"
    assert traced(b, None) is b
    await stream.aclose()
    await b.aclose()
