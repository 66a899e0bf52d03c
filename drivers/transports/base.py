"""The ByteStream and Connector protocols, the OS-error boundary, and wire tracing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from drivers.errors import TransportError

DEFAULT_READ_SIZE = 65536
#: how long closing a stream may wait for the peer before the connection is aborted
CLOSE_GRACE_S = 2.0

TraceSink = logging.Logger | Callable[[str], None]


class ByteStream(Protocol):
    """A connected, ordered byte stream to one peer."""

    @property
    def peer(self) -> str:
        """Who is on the other end, e.g. ``127.0.0.1:53211`` or ``/dev/ttyUSB0``."""
        ...

    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return 1..max_bytes bytes as soon as any arrive; ``b""`` means the peer closed."""
        ...

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` and wait until it is handed to the OS (or the peer)."""
        ...

    async def aclose(self) -> None:
        """Close the stream; calling it again does nothing."""
        ...


class Connector(Protocol):
    """Opens ByteStreams to the place one URL names; cheap to build, opens nothing until asked."""

    @property
    def url(self) -> str:
        """The URL this connector was built from."""
        ...

    async def connect(self) -> ByteStream:
        """Open (or, for a listener, accept) the next stream."""
        ...

    async def aclose(self) -> None:
        """Release what the connector holds (a listening socket); idempotent."""
        ...


def describe_os_error(exc: BaseException) -> str:
    """Say what went wrong in one line, with the errno text when the message lacks it."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not str(exc):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        reason = os.strerror(exc.errno)
        if reason not in text:
            text = f"{text} ({reason})"
    return text


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """The one boundary: OS and pyserial errors become ``TransportError`` saying ``what`` failed.

    ``serial.SerialException``, ``ConnectionError`` and ``TimeoutError`` are ``OSError``s;
    ``asyncio.IncompleteReadError`` is an ``EOFError``.
    """
    try:
        yield
    except TransportError:
        raise
    except (OSError, EOFError) as exc:
        raise TransportError(f"{what}: {describe_os_error(exc)}") from exc


def format_address(address: Any) -> str:
    """Render a socket address (``(host, port, ...)`` or a path) as ``host:port``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)


def check_read_size(max_bytes: int) -> None:
    """Refuse read sizes below 1, which would make ``b""`` ambiguous."""
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")


class AsyncioByteStream:
    """A ByteStream over an asyncio StreamReader/StreamWriter pair (TCP and serial)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, peer: str, label: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._peer = peer
        self._label = label
        self._closed = False
        # A high-water mark of 0 makes drain() wait until every byte is handed to the OS, so
        # write() returning means "sent" as far as user space can tell (protocol timers start then).
        writer.transport.set_write_buffer_limits(high=0)

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def socket(self) -> Any:
        """The OS socket under the stream (asyncio's wrapper), or None (a serial port)."""
        return self._writer.get_extra_info("socket")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._label} peer={self._peer}>"

    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        check_read_size(max_bytes)
        if self._closed:
            raise TransportError(f"{self._label} ({self._peer}): read on a closed stream")
        with translate_errors(f"{self._label} ({self._peer}): read failed"):
            return await self._reader.read(max_bytes)

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise TransportError(f"{self._label} ({self._peer}): write on a closed stream")
        if not data:
            return
        with translate_errors(f"{self._label} ({self._peer}): write failed"):
            self._writer.write(data)
            await self._writer.drain()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        # A stream that already broke re-raises its error here; closing is all we want. A TLS
        # close waits for the peer's close_notify: a dead peer gets a short grace, then an abort.
        with contextlib.suppress(OSError, EOFError):
            try:
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self._writer.wait_closed()
            except TimeoutError:
                self._writer.transport.abort()


def hexdump(data: bytes, width: int = 16) -> list[str]:
    """Lines of ``offset  hex bytes  |ascii|``, ``width`` bytes a line."""
    lines = []
    hex_width = width * 3 - 1 + (1 if width > 8 else 0)
    for offset in range(0, len(data), width):
        row = data[offset : offset + width]
        cells = [f"{byte:02x}" for byte in row]
        if width > 8 and len(cells) > 8:
            cells[8] = " " + cells[8]
        ascii_text = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in row)
        lines.append(f"{offset:08x}  {' '.join(cells):<{hex_width}}  |{ascii_text}|")
    return lines


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WireTrace:
    """A ByteStream wrapper that records every read (``<-``) and write (``->``) with a hexdump.

    ``sink`` is a ``logging.Logger`` (records go out at DEBUG, and nothing is even formatted unless
    the logger is enabled for DEBUG) or a callable taking the formatted text.
    """

    def __init__(
        self,
        stream: ByteStream,
        sink: TraceSink,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._stream = stream
        self._sink = sink
        self._clock = clock

    @property
    def peer(self) -> str:
        return self._stream.peer

    @property
    def inner(self) -> ByteStream:
        """The wrapped stream."""
        return self._stream

    def _enabled(self) -> bool:
        if isinstance(self._sink, logging.Logger):
            return self._sink.isEnabledFor(logging.DEBUG)
        return True

    def _emit(self, when: datetime, direction: str, data: bytes) -> None:
        stamp = when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        if data:
            size = "1 byte" if len(data) == 1 else f"{len(data)} bytes"
            head = f"{stamp} {self._stream.peer} {direction} {size}"
            text = "\n".join([head, *hexdump(data)])
        else:
            text = f"{stamp} {self._stream.peer} {direction} EOF (peer closed)"
        if isinstance(self._sink, logging.Logger):
            self._sink.debug("%s", text)
        else:
            self._sink(text)

    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        data = await self._stream.read(max_bytes)
        if self._enabled():
            self._emit(self._clock(), "<-", data)
        return data

    async def write(self, data: bytes) -> None:
        enabled = bool(data) and self._enabled()
        started = self._clock() if enabled else None
        await self._stream.write(data)
        if started is not None:
            self._emit(started, "->", data)

    async def aclose(self) -> None:
        await self._stream.aclose()


def traced(stream: ByteStream, sink: TraceSink | None) -> ByteStream:
    """Wrap ``stream`` in a WireTrace writing to ``sink``; with no sink, return it untouched."""
    if sink is None:
        return stream
    return WireTrace(stream, sink)
