"""TOML configuration: parsed once into frozen, validated pydantic models.

Every error names the file, the key (dotted path) and the problem; unknown keys are errors.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.model import Method
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from drivers.transports import TlsSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    title: str = ""
    timezone: str = "Europe/Oslo"
    language: Literal["nb", "en"] = "nb"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {zone!r} (use an IANA name like Europe/Oslo)"
            ) from exc
        return zone


#: the lease's bounds: a heartbeat every third of the ttl must be possible, and a crashed
#: PC's store should not stay locked for more than an hour
LEASE_TTL_RANGE_S = (1.0, 3600.0)


def check_lease_ttl(seconds: float) -> float:
    """``[store] lease_ttl_s``: how long a gateway's lease lasts without a heartbeat."""
    low, high = LEASE_TTL_RANGE_S
    if not low <= seconds <= high:
        raise ValueError(
            f"must be {low:g}-{high:g} seconds (the gateway renews its lease every third of "
            f"it; another gateway may take the store over after it), got {seconds:g}"
        )
    return seconds


class StoreConfig(_Strict):
    url: str = "sqlite:///trygg.sqlite3"
    group_commit_max: Annotated[int, Field(ge=1, le=10_000)] = 32
    #: seconds the running gateway's lease on the store lasts without a heartbeat (renewed
    #: every third of it); after that another gateway may take the store over
    lease_ttl_s: float = 30.0

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a SQLAlchemy URL for sqlite or postgresql")
        return url

    @field_validator("lease_ttl_s")
    @classmethod
    def _lease_ttl(cls, seconds: float) -> float:
        return check_lease_ttl(seconds)


#: the LIS link opens like an instrument's (tcp, tcp-listen, serial), or over TLS
_LIS_SCHEMES = ("tcp", "tcp-listen", "tls", "serial")


class LisConfig(_Strict):
    url: str
    version: Literal["2.5.1"] = "2.5.1"
    batch_size: Annotated[int, Field(ge=1, le=500)] = 1
    #: messages sent before their ACK arrived; 1 = stop-and-wait (what every LIS accepts)
    window: Annotated[int, Field(ge=1, le=64)] = 1
    ack_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    retry_initial_s: Annotated[float, Field(gt=0, le=600)] = 0.5
    retry_max_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    sending_application: str = "TRYGG"
    sending_facility: str = ""
    receiving_application: str = "LIS"
    receiving_facility: str = ""
    processing_id: Literal["P", "T", "D"] = "P"
    #: fast: segment order and the fields we rely on (<1 ms); full: also hl7apy's strict
    #: 2.5.1 structure check (15-30 ms a message, run off the event loop); off: none.
    validate_messages: Literal["fast", "full", "off"] = "fast"
    #: process: the forwarder runs in a child process with a CPU core of its own (it stops
    #: with the gateway); inline: in the gateway's own process (one core for everything)
    worker: Literal["process", "inline"] = "process"
    #: where the LIS's orders (HL7 ORM^O01 / OML^O21 over MLLP) arrive for the worklist:
    #: tcp-listen://host:port (the LIS connects) or tcp://host:port (the LIS listens); unset:
    #: no orders, host queries are answered "no information"
    orders_url: str | None = None
    #: log every byte to and from the LIS (timestamps, direction, hexdump) at DEBUG, as an
    #: instrument's ``trace`` does, under the logger ``trygg.wire.lis``
    trace: bool = False
    #: tls:// only: the CA(s) the LIS's certificate must chain to (PEM; default: the system's)
    tls_ca_file: Path | None = None
    #: tls:// only: our client certificate (PEM) for a LIS that asks for one, and its key
    #: (unless the key is in the certificate's file)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _lis_url(cls, url: str) -> str:
        from drivers.transports import connector_for

        scheme = urlsplit(url).scheme
        if scheme not in _LIS_SCHEMES:
            raise ValueError(
                "must be tcp://host:port, tcp-listen://host:port, tls://host:port or "
                f"serial:///dev/PORT?baudrate=N; got {url!r}"
            )
        try:
            connector_for(url)  # parses host, port and serial parameters strictly; opens nothing
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return url

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _a_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such file: {str(path)!r}")
        return path

    @model_validator(mode="after")
    def _tls_files(self) -> LisConfig:
        from drivers.transports import TlsSettings, client_context

        given = [
            key
            for key in ("tls_ca_file", "tls_cert_file", "tls_key_file")
            if getattr(self, key) is not None
        ]
        if urlsplit(self.url).scheme != "tls":
            if given:
                raise ValueError(f'{given[0]}: only used with url = "tls://host:port"')
            return self
        try:
            client_context(self.tls_settings or TlsSettings(), key_prefix="tls_")
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @property
    def tls_settings(self) -> TlsSettings | None:
        """The CA and client certificate for a tls:// link; None for the other schemes."""
        from drivers.transports import TlsSettings

        if urlsplit(self.url).scheme != "tls":
            return None
        return TlsSettings(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)

    @field_validator("orders_url")
    @classmethod
    def _orders_url(cls, url: str | None) -> str | None:
        from drivers.transports import connector_for

        if url is None:
            return None
        if urlsplit(url).scheme not in ("tcp", "tcp-listen"):
            raise ValueError(f"must be tcp-listen://host:port or tcp://host:port, got {url!r}")
        try:
            connector_for(url)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return url


class MqttConfig(_Strict):
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "trygg"
    queue_size: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    username: str = ""
    password: str = ""

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"must look like mqtt://host:port, got {url!r}")
        return url


def _check_listen_address(listen: str) -> str:
    """A `host:port` the gateway binds: a host and a port a socket can take (1-65535)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()):
        raise ValueError(f"must be host:port, got {listen!r}")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1-65535, got {listen!r}")
    return listen


class WebConfig(_Strict):
    enabled: bool = True
    listen: str = "127.0.0.1:8470"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        return _check_listen_address(listen)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


_INSTRUMENT_SCHEMES = ("tcp", "tcp-listen", "serial")


class InstrumentConfig(_Strict):
    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    driver: str
    url: str
    name: str = ""
    location: str = ""
    trace: bool = False
    enabled: bool = True
    #: a message the instrument marks as test or debugging data (HL7 MSH-11, ASTM H.12 not
    #: P): "keep" it as test data (never sent to the LIS) or put it in "quarantine"
    test_messages: Literal["keep", "quarantine"] = "keep"
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _stream_url(cls, url: str) -> str:
        from drivers.transports import connector_for

        scheme = urlsplit(url).scheme
        if scheme not in _INSTRUMENT_SCHEMES:
            raise ValueError(
                f"scheme must be one of {', '.join(s + '://' for s in _INSTRUMENT_SCHEMES)}; "
                f"got {url!r}"
            )
        try:
            connector_for(url)  # parses host, port and serial parameters strictly; opens nothing
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return url

    @field_validator("driver")
    @classmethod
    def _registered(cls, driver: str) -> str:
        from drivers.registry import DRIVERS

        if driver not in DRIVERS:
            raise ValueError(f"unknown driver {driver!r}; known: {', '.join(sorted(DRIVERS))}")
        return driver


class TestConfig(_Strict):
    """One `[[tests]]` mapping from an instrument's code to the site's test."""

    __test__ = False  # not a pytest test class

    code: Annotated[str, Field(min_length=1)]
    nlk: str = ""
    name: str = ""
    unit: str = ""
    method: Method = Method.MEASURED
    instrument: str = ""
    value_type: Literal["NM", "ST", "CE", "SN", "TX"] = "NM"


class RulesConfig(_Strict):
    require_patient_id: bool = True
    forward_unmapped: bool = False
    allow_synthetic_ids: bool = False
    accept_2032_ids: bool = False


class Config(_Strict):
    site: SiteConfig
    store: StoreConfig = StoreConfig()
    lis: LisConfig | None = None
    mqtt: MqttConfig | None = None
    web: WebConfig = WebConfig()
    rules: RulesConfig = RulesConfig()
    instruments: list[InstrumentConfig] = Field(default_factory=list)
    tests: list[TestConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        seen: set[str] = set()
        for index, instrument in enumerate(self.instruments):
            if instrument.id in seen:
                raise ValueError(f"instruments[{index}].id {instrument.id!r} is used twice")
            seen.add(instrument.id)
        keys: set[tuple[str, str]] = set()
        for index, test in enumerate(self.tests):
            key = (test.instrument, test.code)
            if key in keys:
                raise ValueError(f"tests[{index}] maps code {test.code!r} twice")
            if test.instrument and test.instrument not in seen:
                raise ValueError(f"tests[{index}].instrument {test.instrument!r} is not configured")
            keys.add(key)
        return self

    @model_validator(mode="after")
    def _one_listener_a_port(self) -> Config:
        _check_no_shared_listen_ports(self)
        return self

    def instrument(self, instrument_id: str) -> InstrumentConfig:
        for instrument in self.instruments:
            if instrument.id == instrument_id:
                return instrument
        raise KeyError(instrument_id)


#: hosts that bind every address: they share a port with any other host
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})
#: a name the listener resolves to several addresses (asyncio binds each of them)
_HOST_ALIASES = {"localhost": frozenset({"localhost", "127.0.0.1", "::1"})}


def _listeners(config: Config) -> list[tuple[str, str, int]]:
    """(key, host, port) of every socket the gateway binds; port 0 (any free port) never clashes."""
    found: list[tuple[str, str, int]] = []
    if config.web.enabled:
        found.append(("web.listen", config.web.host.strip("[]").lower(), config.web.port))
    urls = [
        (f"instruments[{index}].url", instrument.url)
        for index, instrument in enumerate(config.instruments)
        if instrument.enabled
    ]
    if config.lis is not None and config.lis.orders_url is not None:
        urls.append(("lis.orders_url", config.lis.orders_url))
    for key, url in urls:
        parts = urlsplit(url)
        # tcp-listen:// and any other *-listen:// scheme bind a port here; tcp:// and serial: none
        if parts.scheme.endswith("-listen") and parts.hostname and parts.port:
            found.append((key, parts.hostname, parts.port))
    return found


def _hosts_overlap(a: str, b: str) -> bool:
    if a in _WILDCARD_HOSTS or b in _WILDCARD_HOSTS:
        return True
    return bool(_HOST_ALIASES.get(a, frozenset({a})) & _HOST_ALIASES.get(b, frozenset({b})))


def _check_no_shared_listen_ports(config: Config) -> None:
    """Two listeners on one port would fail at start-up with "address in use": say so now."""
    listeners = _listeners(config)
    for index, (key, host, port) in enumerate(listeners):
        for other_key, other_host, other_port in listeners[:index]:
            if port == other_port and _hosts_overlap(host, other_host):
                where = (
                    _host_port_text(host, port)
                    if host == other_host
                    else f"port {port} ({host} and {other_host} overlap)"
                )
                raise ValueError(
                    f"{key} and {other_key} both listen on {where}; give each its own port"
                )


def _host_port_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a parsed TOML document; raise ``ConfigError`` naming file, key and problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = _location(tuple(error["loc"]))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "missing":
                message = "required key is missing"
            problems.append(f"{source}: {key}: {message}")
        raise ConfigError("\n".join(problems)) from exc


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, str(path))
