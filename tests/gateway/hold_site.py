"""A small site for the hold-action tests: a config, a real store, people with roles and
certifications, and results ingested through the real ingest path with the people rules on."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select

from drivers.model import InboundMessage, Method, Observation
from gateway.config import Config, load_config
from gateway.holds import ActionOutcome
from gateway.ingest import store_message
from gateway.people.certification import CertStatus
from gateway.people.roles import Role
from gateway.rule_context import current_context
from gateway.rules import RuleContext, context_from_config
from gateway.store.engine import make_engine, upgrade
from gateway.store.people import (
    CertificationRecord,
    OperatorId,
    set_operator_ids,
    upsert_certification,
    upsert_person,
)
from gateway.store.signin import set_password
from gateway.store.tables import holds, results, web_sessions
from gateway.store.writer import Tx, run_in_transaction

#: a Tuesday morning in Oslo (09:00 UTC = 10:00 CET)
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
VALID = "01010012356"  # a valid fødselsnummer
VALID_2 = "15037212382"
INVALID = "01010012350"  # the check digit is wrong
PASSWORD = "correct horse battery staple"

SITE = """
[site]
name = "holds-test"
timezone = "Europe/Oslo"
[store]
url = "{url}"
[people]
enforce = true
[[instruments]]
id = "afinion-1"
driver = "astm_afinion2"
url = "tcp-listen://127.0.0.1:5998"
[[instruments]]
id = "clinitek-1"
driver = "astm_clinitek_status"
url = "tcp-listen://127.0.0.1:5997"
[[tests]]
code = "HbA1c"
instrument = "afinion-1"
nlk = "NPU27300"
unit = "mmol/mol"
[[tests]]
code = "GLU"
instrument = "clinitek-1"
nlk = "NPU03688"
value_type = "ST"
method = "visual"
"""


@dataclass(frozen=True, slots=True)
class Person:
    person: str
    roles: tuple[Role, ...]
    operator_ids: tuple[str, ...] = ()
    #: task -> (status, recert_due, supervisor)
    certs: dict[str, tuple[CertStatus, date | None, str]] = field(default_factory=dict)


CERT = CertStatus.CERTIFIED
DUE = date(2027, 6, 30)
PEOPLE = (
    # an operator certified on both instruments
    Person(
        "ola",
        (Role.OPERATOR,),
        ("OLA",),
        {"afinion-1": (CERT, DUE, ""), "clinitek-1": (CERT, DUE, "")},
    ),
    # a trainee on the Afinion, supervised by sara
    Person(
        "tina", (Role.OPERATOR,), ("TINA",), {"afinion-1:HbA1c": (CertStatus.TRAINEE, None, "sara")}
    ),
    Person("sara", (Role.SUPERVISOR, Role.OPERATOR), ("SARA",), {"afinion-1": (CERT, DUE, "")}),
    # a supervisor, certified for the model (every Afinion 2)
    Person("sven", (Role.SUPERVISOR,), (), {"astm_afinion2": (CERT, DUE, "")}),
    # a supervisor not certified for the Afinion (who runs one all the same)
    Person("siv", (Role.SUPERVISOR,), ("SIV",), {"clinitek-1": (CERT, DUE, "")}),
    # a supervisor certified for the model, but a trainee on the Afinion's HbA1c
    Person(
        "stig",
        (Role.SUPERVISOR, Role.OPERATOR),
        ("STIG",),
        {"astm_afinion2": (CERT, DUE, ""), "afinion-1:HbA1c": (CertStatus.TRAINEE, None, "sven")},
    ),
    # verifiers of the urine strips; viktor's certification is due today
    Person("vera", (Role.VERIFIER, Role.OPERATOR), ("VERA",), {"clinitek-1": (CERT, DUE, "")}),
    Person("viktor", (Role.VERIFIER,), (), {"clinitek-1": (CERT, date(2026, 12, 8), "")}),
    Person("vilde", (Role.VERIFIER,), (), {}),  # a verifier certified for nothing
    Person("kari", (Role.QUALITY_MANAGER,), ()),
    Person("anne", (Role.ADMIN,), ()),
    # an operator with an ID but no certification
    Person("ulf", (Role.OPERATOR,), ("ULF",)),
)


@dataclass
class Site:
    path: Path
    config: Config
    engine: Engine
    base: RuleContext
    _raw: itertools.count[int] = field(default_factory=itertools.count)

    def ingest(
        self,
        code: str = "HbA1c",
        value: str = "48",
        *,
        operator: str = "OLA",
        patient: str = VALID,
        specimen: str = "S1",
        instrument: str = "",
        method: Method | None = None,
        performed_at: datetime | None = None,
        now: datetime = NOW,
    ) -> int:
        """Ingest one result through the real path; its id."""
        instrument = instrument or ("clinitek-1" if code == "GLU" else "afinion-1")
        obs = Observation(
            instrument,
            code,
            value,
            value_type="ST" if code == "GLU" else "NM",
            method=method,
            performed_at=performed_at or now - timedelta(minutes=10),
            operator_id=operator,
            specimen_id=specimen,
            patient_id=patient,
        )
        raw = f"message {next(self._raw)}".encode()
        message = InboundMessage(instrument, "astm", raw, now, observations=(obs,))

        def job(tx: Tx) -> int:
            store_message(tx, message, current_context(tx, self.base))
            return int(tx.conn.execute(select(func.max(results.c.id))).scalar_one())

        return run_in_transaction(self.engine, job, now)

    def act(
        self, job_fn: Callable[[Tx, RuleContext], ActionOutcome], now: datetime = NOW
    ) -> ActionOutcome:
        """Run an action ``job_fn(tx, context)`` at ``now``."""
        return run_in_transaction(self.engine, lambda tx: job_fn(tx, self.base), now)

    def act_context(self, now: datetime = NOW) -> RuleContext:
        """The rule context an action at ``now`` sees (config and the store's facts)."""
        return run_in_transaction(self.engine, lambda tx: current_context(tx, self.base), now)

    def state(self, result_id: int) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(select(results.c.state).where(results.c.id == result_id)).scalar_one()
            )

    def open_reasons(self, result_id: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(holds.c.reason)
                    .where(holds.c.result_id == result_id, holds.c.released_at.is_(None))
                    .order_by(holds.c.id)
                ).scalars()
            )

    def session(
        self, person: str, start: datetime, last_seen: datetime, ended: datetime | None = None
    ) -> None:
        """A web session row as ``gateway.store.sessions`` writes them."""

        def job(tx: Tx) -> None:
            tx.conn.execute(
                insert(web_sessions).values(
                    token_hash=f"{person}-{start.isoformat()}"[:64],
                    person=person,
                    csrf_token="x",
                    created_at=start,
                    last_seen_at=last_seen,
                    # as the sign-in part keeps it: the earlier of idle (15 min) and max
                    expires_at=min(last_seen + timedelta(minutes=15), start + timedelta(hours=12)),
                    ended_at=ended,
                    end_reason="signed_out" if ended else "",
                )
            )

        run_in_transaction(self.engine, job, NOW)


def make_site(tmp_path: Path, url: str | None = None, *, passwords: tuple[str, ...] = ()) -> Site:
    """The site at ``url`` (default: SQLite in ``tmp_path``) with ``PEOPLE`` stored."""
    url = url or f"sqlite:///{tmp_path / 'holds.sqlite3'}"
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(url=url), encoding="utf-8")
    config = load_config(path)
    engine = make_engine(config.store.url)
    upgrade(engine)

    def seed(tx: Tx) -> None:
        for p in PEOPLE:
            upsert_person(tx, p.person, name=p.person.title(), roles=p.roles, actor="test")
            set_operator_ids(tx, p.person, [OperatorId(o) for o in p.operator_ids], actor="test")
            for task, (status, due, supervisor) in p.certs.items():
                record = CertificationRecord(
                    p.person, task, status, date(2025, 1, 6), due, supervisor
                )
                upsert_certification(tx, record, actor="test")
        for person in passwords:
            set_password(tx, person, PASSWORD, actor="test")

    run_in_transaction(engine, seed, NOW - timedelta(days=1))
    return Site(path, config, engine, context_from_config(config))
