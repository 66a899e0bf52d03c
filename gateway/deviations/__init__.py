"""The deviation (avvik) register: recording a deviation (here), its categories and routing
(``categories``); the workflow of what is done about it is ``gateway.deviations.workflow``."""

from __future__ import annotations

from sqlalchemy import insert

from gateway.deviations.categories import RESPONSIBLE, Category, category_for
from gateway.model import Deviation
from gateway.store.tables import deviation_events, deviations
from gateway.store.writer import Tx


def record(tx: Tx, deviation: Deviation, *, actor: str) -> int:
    """Store a deviation with an audit row and its first history row; announce it on the bus
    after commit. A category given routes it (``RESPONSIBLE``); without one, the category is
    the responsible function's."""
    if deviation.category:
        category = Category(deviation.category)
        function = RESPONSIBLE[category]
    else:
        category = category_for(deviation.responsible_function)
        function = deviation.responsible_function
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
                "responsible_function": function,
                "category": category.value,
                "created_by": actor,
                "updated_at": tx.now,
                "updated_by": actor,
            },
        ).scalar_one()
    )
    tx.conn.execute(
        insert(deviation_events),
        {
            "deviation_id": deviation_id,
            "at": tx.now,
            "person": actor,
            "action": "created",
            "to_value": "open",
        },
    )
    tx.audit(
        actor=actor,
        action="deviation.recorded",
        entity="deviation",
        entity_id=deviation_id,
        reason=deviation.summary,
        after={"kind": deviation.kind, "responsible": function, "category": category.value},
    )
    tx.event(
        "deviation",
        deviation.instrument_id or "-",
        {"id": deviation_id, "kind": deviation.kind, "summary": deviation.summary},
    )
    return deviation_id
