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
imports only ``drivers.patient_data`` (itself import-free), so the sans-IO protocol cores may
use it.
"""

from __future__ import annotations

from drivers.patient_data import is_patient_field, quotable, read_from_patient


class GatewayError(Exception):
    """Base of every error Trygg raises on purpose."""


class ProtocolError(GatewayError):
    """A protocol was broken; ``field`` and ``data`` say where, when known."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        data: bytes | None = None,
        quote: bool = True,
    ):
        super().__init__(message)
        self.field = field
        self.data = data
        #: whether the text may quote ``data``; False where the bytes may be patient data
        self.quote = quote

    def _quoted(self) -> bytes:
        """The bytes the text quotes: none when they are (or run into) patient data."""
        if self.data is None or not self.quote or is_patient_field(self.field):
            return b""
        return quotable(self.data)[:64]

    def __str__(self) -> str:
        """Field and message, and the offending bytes unless they are (or run into) patient
        data: an error about a patient segment names the field only (quarantine keeps the
        bytes, shown behind an explicit, logged action)."""
        text = super().__str__()
        if self.field:
            text = f"{self.field}: {text}"
        shown = self._quoted()
        return f"{text} (bytes: {shown!r})" if shown else text

    def text_for(self, raw: bytes) -> str:
        """The error text to keep with ``raw`` (quarantine): ``str(self)``, but without the
        quoted bytes when they were read from inside a patient segment of ``raw`` (only then
        is ``raw`` scanned: most errors quote nothing)."""
        shown = self._quoted()
        if shown and read_from_patient(shown, raw):
            return self.without_data()
        return str(self)

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
