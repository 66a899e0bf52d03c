"""The result lifecycle as a table of allowed moves, and the one function that makes a move.

    received -> held (one or more reasons) -> released -> queued -> sent -> acknowledged
                                                                       \\-> rejected (AE/AR)
    received -> queued                       (no holds)
    rejected -> queued                       (a person resent it after fixing the cause)

A correction after sending is a new result (``correction_of`` points at the original) that runs
the same lifecycle and goes out with OBX-11 = C. Every move is an UPDATE guarded by the expected
old state plus an audit row naming the moved results, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.errors import StoreError
from gateway.model import State
from gateway.store import bulk
from gateway.store.audit import to_json
from gateway.store.writer import Tx

#: (from, to) -> why the move exists. A move not in this table is a bug.
TRANSITIONS: Mapping[tuple[State | None, State], str] = {
    (None, State.RECEIVED): "a result arrived from an instrument or was entered by hand",
    (State.RECEIVED, State.HELD): "a rule returned one or more holds",
    (State.RECEIVED, State.QUEUED): "no holds: ready for the LIS",
    (State.HELD, State.RELEASED): "every hold was released by an authorised person",
    (State.RELEASED, State.QUEUED): "released results go to the outbox",
    (State.QUEUED, State.HELD): "the LIS message for it could not be built (a bug: see the hold)",
    (State.QUEUED, State.SENT): "the message holding it was written to the LIS connection",
    (State.SENT, State.ACKNOWLEDGED): "the LIS answered AA",
    (State.SENT, State.REJECTED): "the LIS answered AE or AR",
    (State.REJECTED, State.QUEUED): "a person resent it after fixing the cause",
}


class TransitionError(StoreError):
    """A move that the table does not allow, or a result not in the expected state."""


def check(old: State | None, new: State) -> None:
    if (old, new) not in TRANSITIONS:
        raise TransitionError(f"result state {old} -> {new} is not an allowed move")


def move(
    tx: Tx,
    result_ids: Sequence[int],
    old: State,
    new: State,
    *,
    actor: str,
    reason: str = "",
    instrument: str = "-",
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Move results from ``old`` to ``new``, all or nothing, with one audit row for the group
    (its ``entity_id`` lists the ids as ranges: see ``audit.compact_ids``)."""
    check(old, new)
    if not result_ids:
        return
    ids = list(result_ids)
    changed = bulk.execute(
        tx.conn,
        f"UPDATE results SET state = ?, updated_at = ? WHERE id IN ({bulk.placeholders(len(ids))})"
        " AND state = ?",
        (new.value, bulk.db_time(tx.conn, tx.now), *ids, old.value),
    )
    if changed != len(ids):
        raise TransitionError(
            f"{len(ids) - changed} of {len(ids)} results were not in state {old} for -> {new}"
        )
    why = reason or TRANSITIONS[(old, new)]
    before = to_json({"state": old.value})
    after = to_json({"state": new.value, **(extra or {})})
    tx.audit_group(
        actor=actor,
        action=f"result.{new.value}",
        entity="result",
        ids=ids,
        reason=why,
        before=before,
        after=after,
    )
    tx.event(
        "result", instrument, {"ids": ids, "from": old.value, "to": new.value, **(extra or {})}
    )
