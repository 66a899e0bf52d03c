"""A month of stored control values for the chart, statistics and report tests: written as
the live judge would leave them (qc_results + qc_evaluations + control_lots), in December 2026.

HbA1c level 1 on afinion-1, lot L1, target 42.0 ± 2.0 mmol/mol for the first six runs and then
a recomputed target 42.5 ± 1.8 (a target change). Run 4 is a 1-2s warning, run 5 the 2-2s
that rejects (runs 4 and 5 beyond +2 SD). Level 2, lot L2, target 85.0 ± 3.0, three runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from gateway.store.tables import control_lots, qc_evaluations, qc_results
from gateway.store.writer import Tx, run_in_transaction

T0 = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # 08:30 in Oslo
INSTRUMENT = "afinion-1"
TEST = "HBA1C"
LEVEL1 = [42.0, 43.1, 40.5, 46.5, 46.8, 41.0, 42.6, 39.9]
LEVEL2 = [85.0, 88.0, 82.0]


@dataclass(frozen=True)
class Seeded:
    level1: list[int]
    level2: list[int]


def _lot(tx: Tx, level: str, lot: str) -> int:
    return int(
        tx.conn.execute(
            insert(control_lots)
            .values(
                instrument_id=INSTRUMENT,
                test_code=TEST,
                level=level,
                lot=lot,
                material="Afinion HbA1c Control",
                unit="mmol/mol",
                created_at=tx.now,
                created_by="test",
                updated_at=tx.now,
                updated_by="test",
            )
            .returning(control_lots.c.id)
        ).scalar_one()
    )


def add_point(
    tx: Tx,
    *,
    level: str,
    lot: str,
    lot_id: int | None,
    value: str,
    at: datetime,
    verdict: str,
    target: tuple[float, float] | None,
    violations: list[dict[str, object]] | None = None,
    instrument: str = INSTRUMENT,
) -> int:
    qc_id = int(
        tx.conn.execute(
            insert(qc_results)
            .values(
                instrument_id=instrument,
                test_code=TEST,
                value=value,
                unit="mmol/mol",
                control_lot=lot,
                control_level=level,
                performed_at=at,
                operator_id="OP7",
                performed_by="kari",
                fingerprint=f"{instrument}-{level}-{lot}-{at.isoformat()}-{value}",
                created_at=at,
            )
            .returning(qc_results.c.id)
        ).scalar_one()
    )
    z = None if target is None else (float(value) - target[0]) / target[1]
    tx.conn.execute(
        insert(qc_evaluations).values(
            qc_result_id=qc_id,
            instrument_id=instrument,
            test_code=TEST,
            level=level,
            lot_id=lot_id,
            run_key=at.isoformat(),
            target_mean=None if target is None else str(target[0]),
            target_sd=None if target is None else str(target[1]),
            z=None if z is None else f"{z:.3f}",
            verdict=verdict,
            violations=json.dumps(violations or []),
            evaluated_at=at,
            performed_at=at,
        )
    )
    return qc_id


def seed(engine: Engine, start: datetime = T0) -> Seeded:
    def job(tx: Tx) -> Seeded:
        l1, l2 = _lot(tx, "1", "L1"), _lot(tx, "2", "L2")
        ids: list[int] = []
        for index, value in enumerate(LEVEL1):
            target = (42.0, 2.0) if index < 6 else (42.5, 1.8)
            verdict, violations = "accept", None
            if index == 3:
                verdict, violations = "warning", [_rule("1-2s", "warning", "random", [])]
            if index == 4:  # the run before (ids[3]) and this one, both beyond +2 SD
                verdict, violations = "reject", [_rule("2-2s", "reject", "systematic", [ids[3]])]
            qc_id = add_point(
                tx,
                level="1",
                lot="L1",
                lot_id=l1,
                value=str(value),
                at=start + timedelta(days=index),
                verdict=verdict,
                target=target,
                violations=violations,
            )
            ids.append(qc_id)
        l2_ids = [
            add_point(
                tx,
                level="2",
                lot="L2",
                lot_id=l2,
                value=str(value),
                at=start + timedelta(days=index, minutes=1),
                verdict="accept",
                target=(85.0, 3.0),
            )
            for index, value in enumerate(LEVEL2)
        ]
        return Seeded(ids, l2_ids)

    return run_in_transaction(engine, job, start)


def _rule(rule: str, kind: str, error_type: str, runs: list[int]) -> dict[str, object]:
    return {"rule": rule, "kind": kind, "error_type": error_type, "levels": ["1"], "runs": runs}
