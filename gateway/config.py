"""TOML configuration: parsed once into frozen, validated pydantic models.

Every error names the file, the key (dotted path) and the problem; unknown keys are errors.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.model import ConnectionPolicy, Method
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from drivers.transports import IdleLimits, TlsSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    title: str = ""
    timezone: str = "Europe/Oslo"
    language: Literal["nb", "en"] = "nb"
    #: the site's Noklus participant number (deltakernummer), printed on the QC/EQA exports
    noklus_participant: str = ""

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
    #: seconds between the store's checks while it is healthy (SQLite: PRAGMA quick_check,
    #: which reads the whole file; PostgreSQL: the connection)
    check_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    #: seconds between checks while the store is failed (it heals only when one passes)
    recheck_interval_s: Annotated[float, Field(gt=0, le=3_600)] = 15.0

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


#: the idle deadline's bounds: 0 switches it off; a day at most
IDLE_TIMEOUT_MAX_S = 86_400.0
PARTIAL_TIMEOUT_RANGE_S = (1.0, 3600.0)


def check_idle_timeout(seconds: float) -> float:
    """An idle deadline: 0 (never) or 1 s to a day."""
    if seconds != 0 and not 1.0 <= seconds <= IDLE_TIMEOUT_MAX_S:
        raise ValueError(
            f"must be 0 (never close a silent connection) or 1-{IDLE_TIMEOUT_MAX_S:g} "
            f"seconds, got {seconds:g}"
        )
    return seconds


def check_partial_timeout(seconds: float) -> float:
    low, high = PARTIAL_TIMEOUT_RANGE_S
    if not low <= seconds <= high:
        raise ValueError(f"must be {low:g}-{high:g} seconds, got {seconds:g}")
    return seconds


#: a connection's idle deadline and its half-received one (instruments and ``[lis] orders_*``)
IdleTimeout = Annotated[float, AfterValidator(check_idle_timeout)]
PartialTimeout = Annotated[float, AfterValidator(check_partial_timeout)]


def _changed(model: BaseModel, keys: tuple[str, ...]) -> list[str]:
    """The keys whose value is not their default. (Not ``model_fields_set``: the LIS worker
    validates a dump of the config again, where every key is given.)"""
    fields = type(model).model_fields
    return [key for key in keys if getattr(model, key) != fields[key].default]


def check_peer_keys(
    model: BaseModel, url: str | None, *, idle: str, partial: str, connections: str
) -> None:
    """The silent-peer keys changed from their defaults must fit the URL and each other."""
    if url is None:
        changed = _changed(model, (idle, partial, connections))
        if changed:
            raise ValueError(f"{changed[0]}: only used with orders_url")
        return
    scheme = urlsplit(url).scheme
    if _changed(model, (connections,)) and scheme != "tcp-listen":
        raise ValueError(f"{connections}: only for a tcp-listen:// URL (one that accepts peers)")
    if scheme == "serial" and (changed := _changed(model, (idle, partial))):
        raise ValueError(f"{changed[0]}: only for tcp:// and tcp-listen:// (not a serial line)")
    idle_s, partial_s = getattr(model, idle), getattr(model, partial)
    # the default partial deadline, longer than a short idle one, is cut to it (idle_limits)
    if _changed(model, (partial,)) and idle_s and partial_s > idle_s:
        raise ValueError(
            f"{partial}: {partial_s:g} s is longer than {idle} ({idle_s:g} s); "
            "a half-received message gets the shorter deadline"
        )


def idle_limits(idle_s: float, partial_s: float) -> IdleLimits:
    from drivers.transports import IdleLimits

    return IdleLimits(
        idle_s=idle_s or None, partial_s=min(partial_s, idle_s) if idle_s else partial_s
    )


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
    #: the order port's idle deadline (seconds; 0: never): a silent LIS connection is closed
    orders_idle_timeout_s: IdleTimeout = 300.0
    #: the same while an order message is half received
    orders_partial_timeout_s: PartialTimeout = 30.0
    #: tcp-listen:// orders_url only: a second LIS connection while one is open
    orders_connections: ConnectionPolicy = "newest"
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

    @model_validator(mode="after")
    def _orders_peer_keys(self) -> LisConfig:
        check_peer_keys(
            self,
            self.orders_url,
            idle="orders_idle_timeout_s",
            partial="orders_partial_timeout_s",
            connections="orders_connections",
        )
        return self

    @property
    def orders_idle_limits(self) -> IdleLimits:
        """The order connection's idle deadline (``drivers.transports.IdleLimits``)."""
        return idle_limits(self.orders_idle_timeout_s, self.orders_partial_timeout_s)

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


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this PC only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


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
    #: the pages speak plain HTTP (passwords and session cookies in clear on the network):
    #: listening beyond this PC must be asked for explicitly, with TLS in front of it
    allow_remote: bool = False
    #: further names the pages may be reached by (the Host header), besides the listen host
    #: and, on loopback, localhost; needed with a wildcard listen address
    allowed_hosts: list[Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\[\]-]+$")]] = (
        Field(default_factory=list)
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        return _check_listen_address(listen)

    @model_validator(mode="after")
    def _remote_is_explicit(self) -> WebConfig:
        if self.enabled and not is_loopback_host(self.host) and not self.allow_remote:
            raise ValueError(
                f"listen {self.listen!r} reaches beyond this PC, and the pages speak plain HTTP "
                "(passwords and session cookies would cross the network in clear): put a TLS "
                "proxy in front and set allow_remote = true, or listen on 127.0.0.1"
            )
        return self

    @property
    def is_remote(self) -> bool:
        """Whether the pages listen on an address other PCs can reach."""
        return not is_loopback_host(self.host)

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
    #: seconds a network connection may say nothing before it is closed (0: never)
    idle_timeout_s: IdleTimeout = 300.0
    #: the same while a message is half received (MLLP; ASTM's link has its own 30 s)
    partial_timeout_s: PartialTimeout = 30.0
    #: tcp-listen:// only: a second connection while one is open: "newest" replaces the
    #: open one, "single" is refused, "parallel" is served beside it
    connections: ConnectionPolicy = "newest"

    #: a message the instrument marks as test or debugging data (HL7 MSH-11, ASTM H.12 not
    #: P): "keep" it as test data (never sent to the LIS) or put it in "quarantine"
    test_messages: Literal["keep", "quarantine"] = "keep"
    #: the instrument's serial number as the lab registered it (QC/EQA exports); results
    #: that carry one from the instrument keep their own
    serial: str = ""
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _peer_keys(self) -> InstrumentConfig:
        check_peer_keys(
            self,
            self.url,
            idle="idle_timeout_s",
            partial="partial_timeout_s",
            connections="connections",
        )
        return self

    @property
    def idle_limits(self) -> IdleLimits:
        """This instrument's idle deadline (``drivers.transports.IdleLimits``)."""
        return idle_limits(self.idle_timeout_s, self.partial_timeout_s)

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
    #: a test group certifications may name (``afinion-1:lipids``)
    group: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]*$")] = ""
    #: what a manual entry may hold: allowed values (``["neg", "1+", "2+"]``) or a range
    allowed_values: list[str] = Field(default_factory=list)
    low: float | None = None
    high: float | None = None
    #: split samples against the central lab: the allowed difference in per cent of the
    #: central lab's value (Noklus uses 15 or 20 % by analyte); None: 20 %
    split_allowed_percent: Annotated[float, Field(gt=0, le=100)] | None = None


#: how often a test's controls must be run (Noklus' advice is per instrument model and analyte)
QcSchedule = Literal["daily", "weekly", "shift", "every_n", "new_lot", "none"]


class QcConfig(_Strict):
    """One `[[qc]]` entry: how an instrument's (or every instrument's) controls for a test are
    judged, how often they are due, and what happens to patient results when they fail.

    ``instrument`` is an instrument ID, a driver key (every instrument of that model), or ""
    (every instrument); the most specific entry for a test wins. ``test`` is the instrument's
    test code, as in `[[tests]]`.
    """

    test: Annotated[str, Field(min_length=1)]
    instrument: str = ""
    #: Westgard rules as written on westgard.com (``gateway.qc.westgard.parse_rules``)
    rules: str = "1-2s,1-3s,2-2s,R-4s,4-1s,10x"
    #: R-4s in its strict form (one value >= +2 SD and one <= -2 SD), not the range form
    strict_r4s: bool = False
    #: the control levels a complete run holds (as the instrument reports them); [] any
    levels: list[str] = Field(default_factory=list)
    #: controls of different levels measured within this many minutes are one run
    run_window_minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    schedule: QcSchedule = "daily"
    #: schedule "every_n": controls are due after this many patient samples
    every_n: Annotated[int, Field(ge=0, le=100_000)] = 0
    #: schedule "shift": a shift's length in hours
    shift_hours: Annotated[int, Field(ge=1, le=24)] = 8
    #: out of control or overdue: "hold" patient results (qc_lockout), only "flag" them, or
    #: "off" (status shown, results go on)
    lockout: Literal["hold", "flag", "off"] = "hold"
    #: where a new lot's target comes from: the manufacturer's insert, the lab's first
    #: ``first_n`` runs, or a rolling mean and SD over the last ``first_n`` accepted runs
    target_source: Literal["manufacturer", "first_n", "rolling"] = "manufacturer"
    first_n: Annotated[int, Field(ge=2, le=1000)] = 20
    #: a fixed allowed deviation from the target beside Westgard (Noklus, RiliBAeK): +- percent
    #: of the target, or an absolute amount in the test's unit; None: not used
    allowed_percent: Annotated[float, Field(gt=0, le=100)] | None = None
    allowed_absolute: Annotated[float, Field(gt=0)] | None = None
    #: the quality goal (total allowable error, %): the engine suggests a rule set from it
    tea_percent: Annotated[float, Field(gt=0, le=100)] | None = None

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: str) -> str:
        from gateway.qc.westgard import RuleError, parse_rules

        try:
            parse_rules(rules)
        except RuleError as exc:
            raise ValueError(str(exc)) from exc
        return rules

    @model_validator(mode="after")
    def _every_n_needs_n(self) -> QcConfig:
        if self.schedule == "every_n" and self.every_n < 1:
            raise ValueError('schedule "every_n" needs every_n >= 1 (patient samples)')
        return self


class PeopleConfig(_Strict):
    """`[people]`: the lab's people rules (DOMAIN rules 1-5, 10-11) and signing in."""

    #: hold results whose operator is unknown, uncertified or a trainee, and visual readings
    #: and manual entries for verification; off until the competence records are imported
    enforce: bool = False
    #: a web session ends after this long without a request
    session_idle_minutes: Annotated[int, Field(ge=1, le=720)] = 15
    #: and after this long in any case
    session_max_hours: Annotated[int, Field(ge=1, le=24)] = 12
    #: failed sign-ins in a row before the account is locked for ``lockout_minutes``
    login_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    lockout_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    #: recertification reminders start this many days before the due date
    reminder_days: Annotated[int, Field(ge=0, le=365)] = 30
    #: a newly certified operator who has not done the task for this many days is a warning
    #: (DOMAIN rule 11); 0 turns it off
    inactivity_days: Annotated[int, Field(ge=0, le=3650)] = 30
    #: how long a certification counts as "new" for that warning
    new_certification_days: Annotated[int, Field(ge=1, le=3650)] = 180
    #: a confirmed recertification moves the due date this many days on (DOMAIN rule 10)
    recert_interval_days: Annotated[int, Field(ge=1, le=3650)] = 365


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
    people: PeopleConfig = PeopleConfig()
    instruments: list[InstrumentConfig] = Field(default_factory=list)
    tests: list[TestConfig] = Field(default_factory=list)
    qc: list[QcConfig] = Field(default_factory=list)

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
        drivers = {instrument.driver for instrument in self.instruments}
        qc_keys: set[tuple[str, str]] = set()
        for index, entry in enumerate(self.qc):
            key = (entry.instrument, entry.test)
            if key in qc_keys:
                raise ValueError(f"qc[{index}] configures test {entry.test!r} twice")
            if entry.instrument and entry.instrument not in seen | drivers:
                raise ValueError(
                    f"qc[{index}].instrument {entry.instrument!r} is neither a configured "
                    "instrument nor the driver of one"
                )
            qc_keys.add(key)
        return self

    def qc_for(self, instrument_id: str, test_code: str) -> QcConfig | None:
        """The `[[qc]]` entry for ``test_code`` on ``instrument_id``: the instrument's own,
        else its driver's (model), else the one for every instrument; None when none."""
        driver = next((i.driver for i in self.instruments if i.id == instrument_id), None)
        by_key = {(entry.instrument, entry.test): entry for entry in self.qc}
        for where in (instrument_id, driver, ""):
            if where is not None and (where, test_code) in by_key:
                return by_key[(where, test_code)]
        return None

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
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})
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
    if a in WILDCARD_HOSTS or b in WILDCARD_HOSTS:
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
