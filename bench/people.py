"""The people the e2e bench loads for its people-rules run: 500 persons, certified, in the store.

The analysers' operator IDs (``OP1``... as the rig gives them) belong to the first persons, each
certified for their own instrument; the rest are a lab's worth of other staff with a few
certifications each, so the rules look up a realistic set of facts. Everyone is certified: the
run measures the rules' cost, not holds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.people.certification import CertStatus
from gateway.people.roles import Role
from gateway.store.engine import make_engine, upgrade
from gateway.store.people import (
    CertificationRecord,
    parse_operator_id,
    set_operator_ids,
    upsert_certification,
    upsert_person,
)
from gateway.store.writer import Tx, run_in_transaction

ACTOR = "bench"


def seed_people(
    store: Path, *, analysers: int, people: int, instrument_id: Callable[[int], str]
) -> None:
    """Create the store at ``store`` (migrated) with ``people`` persons; ``instrument_id``
    maps an analyser's index to its instrument ID (the rig's naming)."""
    engine = make_engine(f"sqlite:///{store}")
    try:
        upgrade(engine)
        today = datetime.now(UTC).date()

        def load(tx: Tx) -> None:
            for index in range(people):
                person = f"p{index + 1:04d}"
                roles = {Role.OPERATOR} | ({Role.VERIFIER} if index % 5 == 0 else set())
                upsert_person(tx, person, name=f"Person {index + 1}", roles=roles, actor=ACTOR)
                own = f"OP{index + 1}"
                set_operator_ids(
                    tx,
                    person,
                    [parse_operator_id(own), parse_operator_id(f"B{index:05d}")],
                    actor=ACTOR,
                )
                tasks = [
                    instrument_id(index % analysers),
                    f"{instrument_id((index + 7) % analysers)}:CRP",
                    f"qc/{instrument_id((index + 3) % analysers)}",
                ]
                for task in tasks:
                    upsert_certification(
                        tx,
                        CertificationRecord(
                            person=person,
                            task=task,
                            status=CertStatus.CERTIFIED,
                            certified_on=today - timedelta(days=400),
                            recert_due=today + timedelta(days=200 + index % 100),
                        ),
                        actor=ACTOR,
                    )

        run_in_transaction(engine, load)
    finally:
        engine.dispose()
