"""QC status and lockouts in the store: where each instrument's QC for a test stands."""

from __future__ import annotations

from sqlalchemy import or_, update

from gateway.store import facts as store_facts
from gateway.store.tables import qc_status
from gateway.store.writer import Tx


def lot_registered(tx: Tx, instrument_id: str, test_code: str) -> bool:
    """A new lot for ``test_code`` (on ``instrument_id``, or every instrument when ""): a
    ``new_lot`` schedule's controls are due at once. Whether a status changed (facts bumped)."""
    query = (
        update(qc_status)
        .where(
            qc_status.c.test_code == test_code,
            qc_status.c.schedule == "new_lot",
            or_(qc_status.c.due_at.is_(None), qc_status.c.due_at > tx.now),
        )
        .values(due_at=tx.now, updated_at=tx.now)
    )
    if instrument_id:
        query = query.where(qc_status.c.instrument_id == instrument_id)
    changed = tx.conn.execute(query).rowcount > 0
    if changed:
        store_facts.bump(tx)
    return changed
