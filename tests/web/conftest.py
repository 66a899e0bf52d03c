"""Web test fixtures: a config, a SQLite store filled through the real ingest and outbox paths,
and signed-in clients (a person with the roles a test needs, in the test's store)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from drivers.model import InboundMessage, Observation
from gateway.app import Gateway, register_instruments
from gateway.config import Config, parse_config
from gateway.ingest import store_message
from gateway.lis.oru import build_oru
from gateway.lis.outbox import (
    enqueue,
    mark_sent,
    pending_messages,
    settle,
    unassigned_queued,
)
from gateway.people.roles import Role
from gateway.rules import context_from_config
from gateway.store import people, sessions
from gateway.store.engine import make_engine, upgrade
from gateway.store.signin import set_password
from gateway.store.tables import results
from gateway.store.writer import Tx, run_in_transaction
from gateway.web.auth import SESSION_COOKIE

VALID_FNR = "01010012356"  # a valid fødselsnummer (tests/gateway/test_store.py checks it)
OTHER_FNR = "15076500565"  # another valid fødselsnummer
BAD_FNR = VALID_FNR[:-1] + str((int(VALID_FNR[-1]) + 1) % 10)  # wrong check digit
T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)  # winter: Oslo is UTC+1, so 10:30 there
#: the address the test config's pages listen on: test clients send it as their Host header
LOCAL = "http://127.0.0.1:8470"
SUMMER = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # summer: Oslo is UTC+2, so 12:00 there


def make_config(language: str = "nb") -> Config:
    return parse_config(
        {
            "site": {"name": "test-lab", "title": "Testlaboratoriet", "language": language},
            "lis": {"url": "tcp://127.0.0.1:2575"},
            "web": {"listen": "127.0.0.1:8470"},
            "instruments": [
                {
                    "id": "afinion-1",
                    "name": "Abbott Afinion 2",
                    "driver": "hl7_mllp",
                    "url": "tcp-listen://127.0.0.1:5101",
                    "location": "Laboratoriet",
                },
                {
                    "id": "bench-1",
                    "name": "Kjemianalysator",
                    "driver": "hl7_mllp",
                    "url": "tcp-listen://127.0.0.1:5102",
                },
            ],
            "tests": [
                {"code": "CRP", "nlk": "NPU19748", "name": "P—CRP", "unit": "mg/L"},
                {"code": "HBA1C", "nlk": "NPU27300", "name": "B—HbA1c", "unit": "mmol/mol"},
            ],
        }
    )


@dataclass(frozen=True, slots=True)
class Seeded:
    """Result ids by role in the seeded store."""

    acknowledged: int
    invalid_patient: int
    missing_patient: int
    unmapped: int
    rejected: int
    pending: int
    summer: int


def observation(
    instrument: str,
    code: str,
    value: str,
    *,
    patient: str = VALID_FNR,
    specimen: str = "S1",
    performed_at: datetime = T0,
) -> Observation:
    return Observation(
        instrument_id=instrument,
        test_code=code,
        value=value,
        unit="",
        performed_at=performed_at,
        operator_id="OP7",
        specimen_id=specimen,
        patient_id=patient,
    )


def ingest(
    engine: Engine,
    config: Config,
    obs: Observation,
    *,
    now: datetime,
    raw: bytes,
) -> int:
    """Store one message through the real ingest job; returns the new result's id."""
    message = InboundMessage(obs.instrument_id, "hl7", raw, now, observations=(obs,))
    run_in_transaction(
        engine, lambda tx: store_message(tx, message, context_from_config(config)), now
    )
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(results.c.id))).scalar_one())


def forward(engine: Engine, config: Config, *, now: datetime) -> None:
    """What the forwarder does before the wire: build ORU^R01 messages into the outbox."""
    assert config.lis is not None
    lis = config.lis

    def job(tx: Tx) -> None:
        built = []
        for item in unassigned_queued(tx, 50):
            control_id = f"CTRL{item.result_id:04d}"
            built.append(
                (control_id, build_oru([item], control_id=control_id, now=now, lis=lis), [item])
            )
        enqueue(tx, built)

    run_in_transaction(engine, job, now)


def answer(engine: Engine, control_id: str, code: str, text: str, *, now: datetime) -> None:
    """Send one pending message (mark it sent) and apply the LIS's ACK, as the forwarder does."""

    def job(tx: Tx) -> None:
        (pending,) = [p for p in pending_messages(tx, 100) if p.control_id == control_id]
        mark_sent(tx, pending)

    def ack(tx: Tx) -> None:
        (pending,) = [p for p in pending_messages(tx, 100) if p.control_id == control_id]
        settle(tx, pending, code, text)

    run_in_transaction(engine, job, now)
    run_in_transaction(engine, ack, now + timedelta(seconds=1))


def seed(engine: Engine, config: Config) -> Seeded:
    """A small day at the lab: forwarded, held, rejected, waiting, quarantined."""
    run_in_transaction(engine, lambda tx: register_instruments(tx, config), T0)
    minute = timedelta(minutes=1)
    acknowledged = ingest(engine, config, observation("afinion-1", "CRP", "12"), now=T0, raw=b"m1")
    invalid = ingest(
        engine,
        config,
        observation("afinion-1", "CRP", "40", patient=BAD_FNR, specimen="S2"),
        now=T0 + minute,
        raw=b"m2",
    )
    missing = ingest(
        engine,
        config,
        observation("bench-1", "HBA1C", "48", patient="", specimen="S3"),
        now=T0 + 2 * minute,
        raw=b"m3",
    )
    unmapped = ingest(
        engine,
        config,
        observation("afinion-1", "XYZ", "1.5", specimen="S4"),
        now=T0 + 3 * minute,
        raw=b"m4",
    )
    rejected = ingest(
        engine,
        config,
        observation("bench-1", "HBA1C", "52", patient=OTHER_FNR, specimen="S5"),
        now=T0 + 4 * minute,
        raw=b"m5",
    )
    forward(engine, config, now=T0 + 5 * minute)
    answer(engine, f"CTRL{acknowledged:04d}", "AA", "", now=T0 + 6 * minute)
    answer(
        engine,
        f"CTRL{rejected:04d}",
        "AE",
        f"Unknown patient {OTHER_FNR}",
        now=T0 + 7 * minute,
    )
    bad = InboundMessage(
        "bench-1",
        "hl7",
        b"MSH|^~\\&|broken",
        T0 + 8 * minute,
        error=f"PID-3: cannot read {VALID_FNR}^^^X",
        error_field="PID-3",
    )
    run_in_transaction(
        engine,
        lambda tx: store_message(tx, bad, context_from_config(config)),
        T0 + 8 * minute,
    )
    pending = ingest(
        engine,
        config,
        observation("afinion-1", "CRP", "3", specimen="S6"),
        now=T0 + 9 * minute,
        raw=b"m6",
    )
    forward(engine, config, now=T0 + 10 * minute)
    summer = ingest(
        engine,
        config,
        observation("bench-1", "HBA1C", "39", specimen="S7", performed_at=SUMMER),
        now=SUMMER,
        raw=b"m7",
    )
    return Seeded(acknowledged, invalid, missing, unmapped, rejected, pending, summer)


# --- people and sessions -------------------------------------------------------------------

#: the person existing web tests sign in as, and the roles they get by default: every role
#: that reads results (not admin, which reads none)
TESTER = "tester"
READER_ROLES: tuple[Role, ...] = (
    Role.OPERATOR,
    Role.VERIFIER,
    Role.SUPERVISOR,
    Role.QUALITY_MANAGER,
)
PASSWORD = "korrekt hest batteri stift"


def add_person(
    engine: Engine,
    person: str,
    roles: Iterable[Role],
    *,
    name: str = "",
    password: str | None = None,
    now: datetime | None = None,
) -> None:
    """Create (or update the roles of) ``person`` in the store; with ``password``, set it."""

    def job(tx: Tx) -> None:
        people.upsert_person(
            tx, person, name=name or person.title(), roles=list(roles), actor="test"
        )
        if password is not None:
            set_password(tx, person, password, actor="test")

    run_in_transaction(engine, job, now)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A session opened for a test: the cookie's token and the session's CSRF token."""

    person: str
    token: str
    csrf: str
    session_id: int

    @property
    def cookies(self) -> dict[str, str]:
        return {SESSION_COOKIE: self.token}


def open_session(
    engine: Engine,
    person: str = TESTER,
    roles: Iterable[Role] = READER_ROLES,
    *,
    now: datetime | None = None,
    policy: sessions.SessionPolicy | None = None,
) -> SignedIn:
    """A person with ``roles`` and a session of theirs, straight in the store (no argon2: the
    sign-in form itself is tested in test_auth.py)."""
    add_person(engine, person, roles, now=now)
    started = run_in_transaction(
        engine,
        lambda tx: sessions.start(tx, person, policy or sessions.SessionPolicy()),
        now,
    )
    return SignedIn(person, started.token, started.session.csrf_token, started.session.id)


def sign_in(client: Any, *roles: Role, person: str = TESTER) -> SignedIn:
    """Sign ``client`` (a TestClient over ``create_app``) in as ``person`` with ``roles``
    (default: ``READER_ROLES``), in the client's own store; the session cookie is set."""
    web = client.app.state.web
    signed = open_session(
        web.engine, person, roles or READER_ROLES, now=web.now(), policy=web.session_policy
    )
    use_session(client, signed.token)
    return signed


def use_session(client: Any, token: str) -> None:
    """Give ``client`` the session cookie ``token``, as the server would have set it (host
    127.0.0.1, path /): it replaces the cookie a sign-in set, as in a browser."""
    client.cookies.set(SESSION_COOKIE, token, domain="127.0.0.1", path="/")


class Clock:
    """A clock a test moves: ``app.state.web.clock = Clock(T0)``; ``clock.advance(minutes=5)``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def web_config() -> Config:
    return make_config()


@pytest.fixture
def web_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'web.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def seeded(web_engine: Engine, web_config: Config) -> Seeded:
    return seed(web_engine, web_config)


@pytest.fixture
def live_gateway(web_engine: Engine, web_config: Config) -> Gateway:
    """A real, not running, gateway whose in-memory state says afinion-1 is connected."""
    gateway = Gateway(web_config, engine=web_engine)
    live = gateway.live.instruments["afinion-1"]
    live.connected, live.detail, live.messages, live.results = True, "peer 127.0.0.1:40001", 6, 5
    return gateway


#: where the browser tests put their screenshots: docs/screenshots (committed) when
#: TRYGG_SCREENSHOTS=1, else a scratch folder, so that a test run leaves the checkout unchanged
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("TRYGG_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "trygg-screenshots"
)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 with a free port, in a background thread; its URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
