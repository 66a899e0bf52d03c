"""The site, people and entries the manual-entry and queue tests share (a real store)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine

from gateway.config import Config, parse_config
from gateway.manual import EntryOutcome, ManualEntry, entry_job
from gateway.people.certification import CertStatus
from gateway.people.roles import Role
from gateway.rules import RuleContext, context_from_config
from gateway.store.people import (
    CertificationRecord,
    OperatorId,
    set_active,
    set_operator_ids,
    upsert_certification,
    upsert_person,
)
from gateway.store.writer import Tx, run_in_transaction

#: Monday 7 December 2026, 10:00 in Oslo
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TODAY = date(2026, 12, 7)
FNR = "15037212382"  # a valid fødselsnummer
FNR_2 = "01010012356"


def site_config(*, enforce: bool = False, **rules: Any) -> Config:
    return parse_config(
        {
            "site": {"name": "test"},
            "rules": rules,
            "people": {"enforce": enforce},
            "instruments": [
                {"id": "afinion-1", "driver": "astm_afinion2", "url": "tcp://127.0.0.1:9"},
                {
                    "id": "clinitek-1",
                    "name": "CLINITEK Status",
                    "driver": "astm_clinitek_status",
                    "url": "tcp://127.0.0.1:10",
                    "enabled": False,
                },
            ],
            "tests": [
                {
                    "code": "HbA1c",
                    "instrument": "afinion-1",
                    "nlk": "NPU27300",
                    "name": "HbA1c",
                    "unit": "mmol/mol",
                    "low": 20,
                    "high": 200,
                },
                {"code": "CRP", "nlk": "NPU19748", "unit": "mg/L", "low": 0, "high": 300},
                {"code": "CRP", "instrument": "clinitek-1", "unit": "mg/L", "high": 160},
                {
                    "code": "GLU",
                    "instrument": "clinitek-1",
                    "value_type": "ST",
                    "method": "visual",
                    "allowed_values": ["neg", "1+", "2+", "3+"],
                },
                {"code": "NOTE", "value_type": "TX"},
                {"code": "INR", "value_type": "SN", "low": 0.5, "high": 8},
            ],
        }
    )


def rule_context(*, enforce: bool = False, **rules: Any) -> RuleContext:
    return context_from_config(site_config(enforce=enforce, **rules))


@dataclass(frozen=True)
class PersonSpec:
    person: str
    roles: tuple[Role, ...]
    #: task -> status (certified on 2025-01-01, due 2027-12-31 unless given in ``due``)
    certs: dict[str, CertStatus] = field(default_factory=dict)
    operator_ids: tuple[str, ...] = ()
    supervisor: str = ""
    due: date | None = date(2027, 12, 31)
    active: bool = True


def add_people(engine: Engine, specs: Sequence[PersonSpec]) -> None:
    def job(tx: Tx) -> None:
        for spec in specs:
            upsert_person(tx, spec.person, name=spec.person.title(), roles=spec.roles, actor="t")
        for spec in specs:
            ids = []
            for text in spec.operator_ids:
                operator, _, instrument = text.partition("@")
                ids.append(OperatorId(operator, instrument))
            set_operator_ids(tx, spec.person, ids, actor="t")
            for task, status in spec.certs.items():
                upsert_certification(
                    tx,
                    CertificationRecord(
                        spec.person,
                        task,
                        status,
                        certified_on=date(2025, 1, 1),
                        recert_due=spec.due,
                        supervisor=spec.supervisor,
                    ),
                    actor="t",
                )
            if not spec.active:
                set_active(tx, spec.person, False, actor="t")

    run_in_transaction(engine, job, now=NOW)


def entry(**changes: Any) -> ManualEntry:
    values: dict[str, Any] = {
        "instrument_id": "afinion-1",
        "test_code": "HbA1c",
        "value": "48,5",
        "unit": "mmol/mol",
        "patient_id": FNR,
        "specimen_id": "S1",
        "performed_at": datetime(2026, 12, 7, 8, 30, tzinfo=UTC),
        "comment": "printout from the analyser",
    }
    values.update(changes)
    return ManualEntry(**values)


def enter(
    engine: Engine,
    typed: ManualEntry,
    person: str,
    context: RuleContext,
    now: datetime = NOW,
) -> EntryOutcome:
    return run_in_transaction(engine, entry_job(typed, person, context), now=now)
