"""TLS client transport: tls://host:port, TLS 1.2 or newer, the server checked against a CA."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import ConfigError
from drivers.transports.tcp import DEFAULT_CONNECT_TIMEOUT_S, TcpConnector

__all__ = ["TlsSettings", "client_context", "tls_connector"]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Where the trust and the identity of a TLS client come from (PEM files).

    ``ca_file``: the CAs that may sign the server's certificate; None trusts the system's store.
    ``cert_file`` (and ``key_file``, unless the key is in the certificate's file): our own
    certificate, for a server that asks for one (mutual TLS).
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def client_context(settings: TlsSettings, *, key_prefix: str = "") -> ssl.SSLContext:
    """A client context: TLS 1.2 minimum, the server's certificate and host name checked.

    Raises ``ConfigError`` naming the setting (``ca_file``, ``cert_file``, ``key_file``, each
    after ``key_prefix``, so a config file can name its own keys) whose file is missing or
    unusable.
    """
    ca, cert, key = (f"{key_prefix}{name}" for name in ("ca_file", "cert_file", "key_file"))
    if settings.key_file is not None and settings.cert_file is None:
        raise ConfigError(f"{key}: a key needs its certificate ({cert})")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca_file is not None:
        _check_file(ca, settings.ca_file)
        try:
            context.load_verify_locations(cafile=settings.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{ca}: {settings.ca_file}: no usable CA certificate: {exc}") from exc
    if settings.cert_file is not None:
        _check_file(cert, settings.cert_file)
        if settings.key_file is not None:
            _check_file(key, settings.key_file)
        try:
            context.load_cert_chain(settings.cert_file, settings.key_file)
        except (ssl.SSLError, OSError) as exc:
            named = f"{cert} and {key}" if settings.key_file else cert
            raise ConfigError(
                f"{named}: {settings.cert_file}: not a certificate with its matching private "
                f"key: {exc}"
            ) from exc
    return context


def _check_file(setting: str, path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{setting}: {path}: no such file")


def tls_connector(
    url: str,
    host: str,
    port: int,
    settings: TlsSettings,
    *,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> TcpConnector:
    """The connector for tls://host:port: TCP with every connection wrapped in TLS."""
    return TcpConnector(
        url, host, port, connect_timeout_s=connect_timeout_s, tls=client_context(settings)
    )
