"""Byte streams chosen by URL: tcp://, tcp-listen://, tls://, serial://, memory://."""

from __future__ import annotations

from urllib.parse import urlsplit

from drivers.errors import ConfigError
from drivers.transports.base import (
    DEFAULT_READ_SIZE,
    ByteStream,
    Connector,
    TraceSink,
    WireTrace,
    hexdump,
    traced,
)
from drivers.transports.deadline import (
    ConnectionEnded,
    IdleDeadline,
    IdleLimits,
    IdleTimeout,
    mark_partial,
)
from drivers.transports.keepalive import set_keepalive
from drivers.transports.memory import (
    Faults,
    MemoryConnector,
    MemoryHub,
    MemoryStream,
    memory_pair,
    parse_memory_url,
)
from drivers.transports.serial import SerialConnector, SerialSettings, parse_serial_url
from drivers.transports.tcp import TcpConnector, TcpListenConnector, parse_host_port
from drivers.transports.tls import TlsSettings, client_context, tls_connector

__all__ = [
    "DEFAULT_READ_SIZE",
    "SCHEMES",
    "ByteStream",
    "ConnectionEnded",
    "Connector",
    "Faults",
    "IdleDeadline",
    "IdleLimits",
    "IdleTimeout",
    "MemoryConnector",
    "MemoryHub",
    "MemoryStream",
    "SerialConnector",
    "SerialSettings",
    "TcpConnector",
    "TcpListenConnector",
    "TlsSettings",
    "TraceSink",
    "WireTrace",
    "client_context",
    "connector_for",
    "hexdump",
    "mark_partial",
    "memory_pair",
    "set_keepalive",
    "traced",
]

SCHEMES = ("tcp", "tcp-listen", "tls", "serial", "memory")


def connector_for(
    url: str, *, memory: MemoryHub | None = None, tls: TlsSettings | None = None
) -> Connector:
    """Build (without opening anything) the connector a URL names.

    Raises ``ConfigError`` naming the part of the URL that is wrong. ``memory://NAME`` needs the
    ``MemoryHub`` the pair was registered in. ``tls://host:port`` takes its CA and client
    certificate from ``tls`` (default: the system's CAs, no client certificate); the files are
    read here, so a missing or unusable one fails now, not at the first connect.
    """
    if "://" not in url:
        raise ConfigError(
            f"transport URL {url!r}: scheme: missing (expected one of "
            f"{', '.join(s + '://' for s in SCHEMES)})"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"transport URL {url!r}: host: {exc}") from exc  # "Invalid IPv6 URL"
    scheme = parts.scheme
    if scheme == "tcp":
        host, port = parse_host_port(url, parts, listen=False)
        return TcpConnector(url, host, port)
    if scheme == "tcp-listen":
        host, port = parse_host_port(url, parts, listen=True)
        return TcpListenConnector(url, host, port)
    if scheme == "tls":
        host, port = parse_host_port(url, parts, listen=False)
        return tls_connector(url, host, port, tls or TlsSettings())
    if scheme == "serial":
        return SerialConnector(url, parse_serial_url(url, parts))
    if scheme == "memory":
        name = parse_memory_url(url, parts)
        if memory is None:
            raise ConfigError(
                f"transport URL {url!r}: scheme: memory:// only works in-process, with a MemoryHub"
            )
        return MemoryConnector(url, name, memory)
    raise ConfigError(
        f"transport URL {url!r}: scheme: {scheme!r} is not one of "
        f"{', '.join(s + '://' for s in SCHEMES)}"
    )
