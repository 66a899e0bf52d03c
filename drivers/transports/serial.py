"""Serial transport: serial:///dev/ttyUSB0?baudrate=9600&... opened with pyserial-asyncio-fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote

import serial_asyncio_fast

from drivers.errors import ConfigError, TransportError
from drivers.transports.base import AsyncioByteStream, ByteStream, translate_errors

_PARITIES = ("N", "E", "O", "M", "S")
_STOPBITS = {"1": 1.0, "1.5": 1.5, "2": 2.0}
_BOOLEANS = {"0": False, "1": True}
_PARAMETERS = (
    "baudrate",
    "bytesize",
    "parity",
    "stopbits",
    "xonxoff",
    "rtscts",
    "dsrdtr",
    "exclusive",
)


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """A serial device and its line settings, as parsed from a serial:// URL."""

    device: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1.0
    xonxoff: bool = False
    rtscts: bool = False
    dsrdtr: bool = False
    exclusive: bool = True  # take an advisory lock so two processes cannot share the port

    def serial_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``serial.Serial``."""
        stopbits: float = int(self.stopbits) if self.stopbits.is_integer() else self.stopbits
        return {
            "baudrate": self.baudrate,
            "bytesize": self.bytesize,
            "parity": self.parity,
            "stopbits": stopbits,
            "xonxoff": self.xonxoff,
            "rtscts": self.rtscts,
            "dsrdtr": self.dsrdtr,
            "exclusive": self.exclusive,
        }


def parse_serial_url(url: str, parts: SplitResult) -> SerialSettings:
    """Check a serial:// URL strictly; unknown, repeated or malformed parameters are errors."""
    form = "serial:///dev/DEVICE?baudrate=9600&bytesize=8&parity=N&stopbits=1"
    if parts.netloc:
        raise ConfigError(
            f"transport URL {url!r}: host: must be empty, the device is the path "
            f"(three slashes: {form})"
        )
    device = unquote(parts.path)
    if not device.startswith("/") or device == "/":
        raise ConfigError(f"transport URL {url!r}: path: no device (expected {form})")
    if parts.fragment:
        raise ConfigError(f"transport URL {url!r}: fragment: not allowed")
    values: dict[str, str] = {}
    for field in parts.query.split("&") if parts.query else []:
        name, sep, value = field.partition("=")
        name, value = unquote(name), unquote(value)
        if name not in _PARAMETERS:
            raise ConfigError(
                f"transport URL {url!r}: query: unknown parameter {name!r} "
                f"(known: {', '.join(_PARAMETERS)})"
            )
        if not sep or not value:
            raise ConfigError(f"transport URL {url!r}: {name}: no value")
        if name in values:
            raise ConfigError(f"transport URL {url!r}: {name}: given more than once")
        values[name] = value

    def problem(name: str, expected: str) -> ConfigError:
        return ConfigError(f"transport URL {url!r}: {name}: {values[name]!r} is not {expected}")

    settings: dict[str, Any] = {}
    if "baudrate" in values:
        text = values["baudrate"]
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 10_000_000:
            raise problem("baudrate", "a positive whole number of bits per second")
        settings["baudrate"] = int(text)
    if "bytesize" in values:
        if values["bytesize"] not in ("5", "6", "7", "8"):
            raise problem("bytesize", "one of 5, 6, 7, 8")
        settings["bytesize"] = int(values["bytesize"])
    if "parity" in values:
        if values["parity"] not in _PARITIES:
            raise problem("parity", "one of " + ", ".join(_PARITIES))
        settings["parity"] = values["parity"]
    if "stopbits" in values:
        if values["stopbits"] not in _STOPBITS:
            raise problem("stopbits", "one of 1, 1.5, 2")
        settings["stopbits"] = _STOPBITS[values["stopbits"]]
    for name in ("xonxoff", "rtscts", "dsrdtr", "exclusive"):
        if name in values:
            if values[name] not in _BOOLEANS:
                raise problem(name, "0 or 1")
            settings[name] = _BOOLEANS[values[name]]
    return SerialSettings(device=device, **settings)


class SerialConnector:
    """serial:///dev/...: each connect() opens the port with its line settings."""

    def __init__(self, url: str, settings: SerialSettings) -> None:
        self._url = url
        self._settings = settings
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    @property
    def settings(self) -> SerialSettings:
        return self._settings

    def __repr__(self) -> str:
        return f"<SerialConnector {self._url}>"

    async def connect(self) -> ByteStream:
        if self._closed:
            raise TransportError(f"{self._url}: connector is closed")
        device = self._settings.device
        with translate_errors(f"{self._url}: cannot open {device}"):
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=device, **self._settings.serial_kwargs()
                )
            except ValueError as exc:  # pyserial's word for settings the port cannot take
                raise TransportError(f"{self._url}: {device} refused the settings: {exc}") from exc
        return AsyncioByteStream(reader, writer, peer=device, label=self._url)

    async def aclose(self) -> None:
        self._closed = True
