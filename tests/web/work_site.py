"""A small GP office for the people pages' tests: a config with the people rules on, its people
(roles, operator IDs, certifications, one password hashed once) and results ingested through
the real ingest path, as an analyser's driver would hand them over."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from drivers.model import InboundMessage, Method, Observation
from gateway.app import register_instruments
from gateway.config import Config, parse_config
from gateway.ingest import store_message
from gateway.people.certification import CertificationRecord, CertStatus
from gateway.people.operators import OperatorId
from gateway.people.passwords import hash_password
from gateway.people.roles import Role
from gateway.rule_context import current_context
from gateway.rules import context_from_config
from gateway.store.people import set_operator_ids, upsert_certification, upsert_person
from gateway.store.signin import set_password_hash
from gateway.store.tables import results
from gateway.store.writer import Tx, run_in_transaction

#: Monday 7 December 2026, 10:00 in Oslo
NOW: Final = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PASSWORD: Final = "korrekt hest batteri stift"
VALID_FNR: Final = "01010012356"
OTHER_FNR: Final = "15037212382"
BAD_FNR: Final = "01010012350"  # the check digit is wrong
ZONE: Final = ZoneInfo("Europe/Oslo")
#: the one hash every person of the site gets (argon2 once, not once per person)
_HASH: list[str] = []


def site_data(*, web_port: int = 8470, lis_port: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"name": "legekontor", "title": "Storgata legekontor", "language": "nb"},
        "web": {"listen": f"127.0.0.1:{web_port}"},
        "people": {"enforce": True},
        "instruments": [
            {
                "id": "afinion-1",
                "name": "Abbott Afinion 2",
                "driver": "hl7_mllp",
                "url": "tcp-listen://127.0.0.1:0",
            },
            {
                "id": "urine-1",
                "name": "Urinstiks (avlest visuelt)",
                "driver": "hl7_mllp",
                "url": "tcp-listen://127.0.0.1:0",
            },
        ],
        "tests": [
            {
                "code": "HBA1C",
                "instrument": "afinion-1",
                "nlk": "NPU27300",
                "name": "B—HbA1c",
                "unit": "mmol/mol",
                "low": 20,
                "high": 200,
            },
            {
                "code": "CRP",
                "instrument": "afinion-1",
                "nlk": "NPU19748",
                "name": "P—CRP",
                "unit": "mg/L",
                "low": 0,
                "high": 300,
            },
            {
                "code": "UGLU",
                "instrument": "urine-1",
                "nlk": "NPU03989",
                "name": "U—Glukose (stiks)",
                "value_type": "ST",
                "method": "visual",
                "allowed_values": ["neg", "1+", "2+", "3+"],
            },
            {
                "code": "ULEU",
                "instrument": "urine-1",
                "nlk": "NPU03987",
                "name": "U—Leukocytter (stiks)",
                "value_type": "ST",
                "method": "visual",
                "allowed_values": ["neg", "1+", "2+", "3+"],
            },
        ],
    }
    if lis_port is not None:
        data["lis"] = {"url": f"tcp://127.0.0.1:{lis_port}"}
    return data


def site_config(**options: Any) -> Config:
    return parse_config(site_data(**options), "<work-site>")


@dataclass(frozen=True)
class Staff:
    person: str
    name: str
    roles: tuple[Role, ...]
    operator_ids: tuple[str, ...] = ()
    #: task -> status
    certs: dict[str, CertStatus] = field(default_factory=dict)
    supervisor: str = ""
    #: days from today to the recertification due date (negative: expired)
    due_in_days: int = 358


CERTIFIED: Final = CertStatus.CERTIFIED
STAFF: Final = (
    Staff(
        "bente",
        "Bente Hansen",
        (Role.OPERATOR, Role.VERIFIER),
        ("BH",),
        {"afinion-1": CERTIFIED, "urine-1": CERTIFIED},
        due_in_days=13,
    ),
    Staff(
        "morten",
        "Morten Lie",
        (Role.OPERATOR, Role.VERIFIER),
        ("ML",),
        {"afinion-1": CERTIFIED, "urine-1": CERTIFIED},
    ),
    Staff(
        "siri",
        "Siri Dahl",
        (Role.OPERATOR, Role.SUPERVISOR),
        ("SD",),
        {"afinion-1": CERTIFIED, "urine-1": CERTIFIED},
    ),
    Staff(
        "tone",
        "Tone Berg",
        (Role.OPERATOR,),
        ("TB",),
        {"afinion-1": CertStatus.TRAINEE, "urine-1": CERTIFIED},
        supervisor="siri",
    ),
    # certified on the Afinion until last month: expired now
    Staff(
        "kari",
        "Kari Nordmann",
        (Role.OPERATOR,),
        ("KN",),
        {"afinion-1": CERTIFIED, "urine-1": CERTIFIED},
        due_in_days=-36,
    ),
    Staff("hilde", "Hilde Moe", (Role.QUALITY_MANAGER,)),
    Staff("eva", "Eva Admin", (Role.ADMIN,)),
)


def add_staff(engine: Engine, staff: tuple[Staff, ...] = STAFF, *, now: datetime = NOW) -> None:
    """The site's people with their operator IDs, certifications (dates counted from
    ``now``'s day in Oslo) and ``PASSWORD``."""
    today = now.astimezone(ZONE).date()
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))

    def job(tx: Tx) -> None:
        for s in staff:
            upsert_person(tx, s.person, name=s.name, roles=s.roles, actor="test")
            set_password_hash(tx, s.person, _HASH[0], actor="test")
            set_operator_ids(tx, s.person, [OperatorId(o) for o in s.operator_ids], actor="test")
            for task, status in s.certs.items():
                upsert_certification(
                    tx,
                    CertificationRecord(
                        s.person,
                        task,
                        status,
                        certified_on=today - timedelta(days=280),
                        recert_due=today + timedelta(days=s.due_in_days),
                        supervisor=s.supervisor,
                    ),
                    actor="test",
                )

    run_in_transaction(engine, job, now)


def prepare_store(engine: Engine, config: Config, *, now: datetime = NOW) -> None:
    run_in_transaction(engine, lambda tx: register_instruments(tx, config), now)
    add_staff(engine, now=now)


_RAW_COUNTER: list[int] = [0]


def arrive(
    engine: Engine,
    config: Config,
    *,
    instrument: str,
    test: str,
    value: str,
    operator: str,
    specimen: str,
    patient: str = VALID_FNR,
    performed_at: datetime = NOW,
    now: datetime = NOW,
    unit: str = "",
    method: Method | None = None,
) -> int:
    """One result from ``instrument`` through the real ingest job; the new result's id."""
    _RAW_COUNTER[0] += 1
    obs = Observation(
        instrument_id=instrument,
        test_code=test,
        value=value,
        unit=unit,
        performed_at=performed_at,
        operator_id=operator,
        specimen_id=specimen,
        patient_id=patient,
        method=method,
    )
    raw = f"raw {_RAW_COUNTER[0]} {specimen}".encode()
    message = InboundMessage(instrument, "hl7", raw, now, observations=(obs,))
    base = context_from_config(config)
    run_in_transaction(
        engine, lambda tx: store_message(tx, message, current_context(tx, base)), now
    )
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(results.c.id))).scalar_one())
