"""TCP transports: tcp://host:port (client) and tcp-listen://host:port (server)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from urllib.parse import SplitResult

from drivers.errors import ConfigError, TransportError
from drivers.transports.base import AsyncioByteStream, ByteStream, format_address, translate_errors
from drivers.transports.keepalive import set_keepalive

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_PENDING = 16


def parse_host_port(url: str, parts: SplitResult, *, listen: bool) -> tuple[str, int]:
    """Check a tcp:// or tcp-listen:// URL strictly; return (host, port)."""
    form = f"{parts.scheme}://HOST:PORT"
    if "@" in parts.netloc:
        raise ConfigError(f"transport URL {url!r}: userinfo: not allowed (expected {form})")
    if parts.path not in ("", "/"):
        raise ConfigError(f"transport URL {url!r}: path: {parts.path!r} not allowed ({form})")
    if parts.query:
        raise ConfigError(f"transport URL {url!r}: query: {parts.scheme}:// takes no parameters")
    if parts.fragment:
        raise ConfigError(f"transport URL {url!r}: fragment: not allowed (expected {form})")
    netloc = parts.netloc
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ConfigError(f"transport URL {url!r}: host: unclosed '[' in IPv6 address")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"transport URL {url!r}: port: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_raw = netloc.rpartition(":")
        if not sep:
            host, port_text = netloc, None
        else:
            port_text = port_text_raw
        if ":" in host:
            raise ConfigError(
                f"transport URL {url!r}: host: an IPv6 address needs brackets, "
                f"e.g. {parts.scheme}://[::1]:PORT"
            )
    if not host:
        raise ConfigError(f"transport URL {url!r}: host: missing (expected {form})")
    if port_text is None or port_text == "":
        raise ConfigError(f"transport URL {url!r}: port: missing (expected {form})")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ConfigError(f"transport URL {url!r}: port: not a number: {port_text!r}")
    port = int(port_text)
    low = 0 if listen else 1
    if not low <= port <= 65535:
        raise ConfigError(f"transport URL {url!r}: port: must be {low}-65535, got {port}")
    return host, port


class TcpConnector:
    """tcp://host:port: each connect() opens a new client connection.

    With ``tls`` (a client ``ssl.SSLContext``) each connection is wrapped in TLS, the server's
    certificate checked against ``host``; the handshake counts towards the connect timeout.
    """

    def __init__(
        self,
        url: str,
        host: str,
        port: int,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._url = url
        self._host = host
        self._port = port
        self._timeout = connect_timeout_s
        self._tls = tls
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"<TcpConnector {self._url}>"

    async def connect(self) -> ByteStream:
        if self._closed:
            raise TransportError(f"{self._url}: connector is closed")
        with translate_errors(f"{self._url}: cannot connect"):
            async with asyncio.timeout(self._timeout):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._tls
                )
        set_keepalive(writer.get_extra_info("socket"))
        peer = format_address(writer.get_extra_info("peername"))
        return AsyncioByteStream(reader, writer, peer=peer, label=self._url)

    async def aclose(self) -> None:
        self._closed = True


class TcpListenConnector:
    """tcp-listen://host:port: listens from the first connect() (or start()) until aclose().

    Each connect() returns the next accepted connection; connections that arrive while nobody is
    waiting are queued (at most ``max_pending``; beyond that they are closed at once). With
    ``tls`` (a server ``ssl.SSLContext``) each accepted connection is wrapped in TLS. Every
    connection, accepted or opened, has TCP keepalive on (``keepalive.set_keepalive``).
    """

    def __init__(
        self,
        url: str,
        host: str,
        port: int,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._url = url
        self._host = host
        self._port = port
        self._max_pending = max_pending
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._bound_port: int | None = None
        self._pending: deque[AsyncioByteStream] = deque()
        self._waiters: deque[asyncio.Future[AsyncioByteStream]] = deque()
        self._start_lock = asyncio.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    @property
    def bound_port(self) -> int | None:
        """The port actually listened on (useful with port 0); None before start."""
        return self._bound_port

    def __repr__(self) -> str:
        return f"<TcpListenConnector {self._url} bound_port={self._bound_port}>"

    async def start(self) -> int:
        """Start listening if not yet listening; return the bound port."""
        async with self._start_lock:
            if self._closed:
                raise TransportError(f"{self._url}: connector is closed")
            if self._server is None:
                with translate_errors(f"{self._url}: cannot listen"):
                    server = await asyncio.start_server(
                        self._accepted, self._host, self._port, reuse_address=True, ssl=self._tls
                    )
                self._server = server
                self._bound_port = int(server.sockets[0].getsockname()[1])
                log.debug("%s: listening on port %s", self._url, self._bound_port)
        assert self._bound_port is not None
        return self._bound_port

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = format_address(writer.get_extra_info("peername"))
        if self._closed:
            writer.close()
            return
        set_keepalive(writer.get_extra_info("socket"))
        stream = AsyncioByteStream(reader, writer, peer=peer, label=self._url)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(stream)
                return
        if len(self._pending) >= self._max_pending:
            log.warning(
                "%s: %d connections already queued; refusing %s",
                self._url,
                len(self._pending),
                peer,
            )
            writer.close()
            return
        self._pending.append(stream)

    async def connect(self) -> ByteStream:
        await self.start()
        if self._pending:
            return self._pending.popleft()
        waiter: asyncio.Future[AsyncioByteStream] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # A connection may have been handed over just as we were cancelled: keep it queued.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pending.appendleft(waiter.result())
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(TransportError(f"{self._url}: connector closed"))
        if self._server is not None:
            # close() shuts the listening sockets at once. wait_closed() is not awaited: from
            # Python 3.12 it also waits for accepted connections, which belong to their sessions.
            self._server.close()
            self._server = None
        pending, self._pending = list(self._pending), deque()
        for stream in pending:
            await stream.aclose()
