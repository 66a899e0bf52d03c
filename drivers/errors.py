"""The root of Trygg's one error tree: protocol, transport and configuration errors.

    GatewayError
    ├── ProtocolError
    │   ├── LocalProtocolError    we broke the protocol (a bug or a misuse of a core)
    │   └── RemoteProtocolError   the peer broke it (bad bytes, bad structure)
    ├── TransportError            a stream could not be opened, or broke
    │   └── AckTimeout            the peer did not acknowledge a message in time
    ├── ConfigError               the configuration is invalid (names file, key, problem)
    └── NotStoredError            the sink did not keep a message: do not acknowledge it

``gateway.errors`` extends the tree with the store and forwarding errors. Third-party
exceptions are translated at exactly one boundary with ``raise ... from exc``. This module
imports nothing, so the sans-IO protocol cores may use it.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error Trygg raises on purpose."""


class ProtocolError(GatewayError):
    """A protocol was broken; ``field`` and ``data`` say where, when known."""

    def __init__(self, message: str, *, field: str | None = None, data: bytes | None = None):
        super().__init__(message)
        self.field = field
        self.data = data

    def __str__(self) -> str:
        text = super().__str__()
        if self.field:
            text = f"{self.field}: {text}"
        if self.data is not None:
            text = f"{text} (bytes: {self.data[:64]!r})"
        return text

    def without_data(self) -> str:
        """The message and field but not the bytes: safe for logs (bytes may be patient data)."""
        text = str(self.args[0]) if self.args else self.__class__.__name__
        return f"{self.field}: {text}" if self.field else text


def loggable(exc: BaseException) -> str:
    """Text for a log line: protocol errors without the offending bytes."""
    if isinstance(exc, ProtocolError):
        return f"{exc.__class__.__name__}: {exc.without_data()}"
    return f"{exc.__class__.__name__}: {exc}"


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class TransportError(GatewayError):
    """A byte stream could not be opened or broke."""


class AckTimeout(TransportError):
    """A sent message got no acknowledgement within its timeout (the link is presumed dead)."""


class ConfigError(GatewayError):
    """The configuration is invalid; the message names file, key and problem."""


class NotStoredError(GatewayError):
    """The sink could not keep a message (its store is broken or away). The driver must not
    acknowledge it: the analyser keeps the message and sends it again. The text says why,
    without the message's content."""
