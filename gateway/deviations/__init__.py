"""The deviation (avvik) register: recording; the workflow arrives with the deviations issue."""

from __future__ import annotations

from sqlalchemy import insert

from gateway.model import Deviation
from gateway.store.tables import deviations
from gateway.store.writer import Tx


def record(tx: Tx, deviation: Deviation, *, actor: str) -> int:
    """Store a deviation with an audit row; announce it on the bus after commit."""
    deviation_id = int(
        tx.conn.execute(
            insert(deviations).returning(deviations.c.id),
            {
                "created_at": tx.now,
                "kind": deviation.kind,
                "instrument_id": deviation.instrument_id,
                "result_id": deviation.result_id,
                "outbox_id": deviation.outbox_id,
                "summary": deviation.summary,
                "detail": deviation.detail,
                "responsible_function": deviation.responsible_function,
                "created_by": actor,
            },
        ).scalar_one()
    )
    tx.audit(
        actor=actor,
        action="deviation.recorded",
        entity="deviation",
        entity_id=deviation_id,
        reason=deviation.summary,
        after={"kind": deviation.kind, "responsible": deviation.responsible_function},
    )
    tx.event(
        "deviation",
        deviation.instrument_id or "-",
        {"id": deviation_id, "kind": deviation.kind, "summary": deviation.summary},
    )
    return deviation_id
