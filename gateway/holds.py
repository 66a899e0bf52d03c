"""Releasing holds: a named person releases a held result, which then goes to the outbox.

Test data (state ``test``, hold ``test_message``) is never released: it may not reach the LIS.

Who may release which reason (roles, certification, second-person checks) arrives with the
people and verification issues; today every release is attributed to the name given and noted
in the audit log with the hold's required role.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from gateway import lifecycle
from gateway.model import State
from gateway.store.tables import holds, results
from gateway.store.writer import Tx


@dataclass(frozen=True, slots=True)
class ReleaseOutcome:
    result_id: int
    released: bool
    detail: str


def release(tx: Tx, result_id: int, *, actor: str, note: str) -> ReleaseOutcome:
    """Release every open hold of a held result and queue it for the LIS."""
    if not actor.strip():
        return ReleaseOutcome(result_id, False, "a release must name the person releasing")
    row = tx.conn.execute(
        select(results.c.state, results.c.instrument_id).where(results.c.id == result_id)
    ).first()
    if row is None:
        return ReleaseOutcome(result_id, False, "no such result")
    if row.state == State.TEST.value:
        return ReleaseOutcome(
            result_id,
            False,
            "the result is test data (its sender marked it so): it is never sent to the LIS",
        )
    if row.state != State.HELD.value:
        return ReleaseOutcome(result_id, False, f"the result is {row.state}, not held")
    open_holds = tx.conn.execute(
        select(holds.c.id, holds.c.reason, holds.c.release_role).where(
            holds.c.result_id == result_id, holds.c.released_at.is_(None)
        )
    ).all()
    tx.conn.execute(
        update(holds)
        .where(holds.c.result_id == result_id, holds.c.released_at.is_(None))
        .values(released_at=tx.now, released_by=actor, release_note=note)
    )
    reasons = [h.reason for h in open_holds]
    roles = sorted({h.release_role for h in open_holds if h.release_role})
    why = f"released by {actor}: {note}".strip().rstrip(":")
    lifecycle.move(
        tx,
        [result_id],
        State.HELD,
        State.RELEASED,
        actor=actor,
        reason=why,
        instrument=row.instrument_id,
        extra={"holds": reasons, "required_roles": roles},
    )
    lifecycle.move(
        tx, [result_id], State.RELEASED, State.QUEUED, actor=actor, instrument=row.instrument_id
    )
    return ReleaseOutcome(result_id, True, f"released {', '.join(reasons) or 'no open holds'}")
