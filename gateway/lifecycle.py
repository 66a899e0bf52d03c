"""The result lifecycle as a table of allowed moves, and the one function that makes a move.

    received -> held (one or more reasons) -> released -> queued -> sent -> acknowledged
                                                                       \\-> rejected (AE/AR)
    received -> queued                       (no holds)
    rejected -> queued                       (a person resent it after fixing the cause)
    received -> test                         (its sender marked it test data: the end)
    held -> discarded                        (rejected, a verifier read another value, or
                                              replaced by a re-run: the end)

``test`` and ``discarded`` have no move out: test and debugging data never goes to the LIS,
whoever asks (``gateway.rules.processing_id``), nor does a result a person discarded.

A correction after sending is a new result (``correction_of`` points at the original) that runs
the same lifecycle and goes out with OBX-11 = C. Every move is an UPDATE guarded by the expected
old state plus an audit row naming the moved results, inside the caller's transaction.

A new result's first two moves (arrival, then held or queued) are made by ``arrive``: ingest
inserts the rows already in the state ``first_state`` names, so the hot path runs no UPDATE,
and ``arrive`` checks both moves against the table and writes their audit rows and events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    (State.HELD, State.DISCARDED): (
        "a verifier rejected it or read another value, or a re-run by a certified operator "
        "replaced it: kept, never sent to the LIS"
    ),
    (State.RECEIVED, State.TEST): (
        "its sender marked it test or debugging data (processing ID not P): kept, never sent "
        "to the LIS"
    ),
}


class TransitionError(StoreError):
    """A move that the table does not allow, or a result not in the expected state."""


def check(old: State | None, new: State) -> None:
    if (old, new) not in TRANSITIONS:
        raise TransitionError(f"result state {old} -> {new} is not an allowed move")


#: the canonical before/after snapshot of each state, serialised once (the hot path uses them)
_SNAPSHOT: Mapping[State, str] = {state: to_json({"state": state.value}) for state in State}
#: who routes a new result (the rules did, not a person)
ROUTER = "system"


@dataclass(frozen=True, slots=True)
class HeldArrival:
    """A new result that the rules held: its reason codes, and the audit row's explanation."""

    result_id: int
    reasons: tuple[str, ...]
    why: str


def first_state(held: bool, *, test: bool = False) -> State:
    """The state a new result is stored in: it arrives and is routed in the same transaction."""
    if test:
        return State.TEST
    return State.HELD if held else State.QUEUED


def _received(tx: Tx, result_ids: Sequence[int], *, actor: str, reason: str) -> str:
    """None -> received for all of ``result_ids`` (one audit row); the received snapshot."""
    received = _SNAPSHOT[State.RECEIVED]
    tx.audit_group(
        actor=actor,
        action="result.received",
        entity="result",
        ids=result_ids,
        reason=reason or TRANSITIONS[(None, State.RECEIVED)],
        after=received,
    )
    return received


def arrive_as_test(
    tx: Tx,
    result_ids: Sequence[int],
    *,
    actor: str,
    instrument: str,
    why: str,
    reason: str = "",
) -> None:
    """Record the first moves of new results of a test message, inserted in ``State.TEST``:
    None -> received and received -> test, one audit row each for the group, one event."""
    check(None, State.RECEIVED)
    check(State.RECEIVED, State.TEST)
    if not result_ids:
        return
    received = _received(tx, result_ids, actor=actor, reason=reason)
    tx.audit_group(
        actor=ROUTER,
        action="result.test",
        entity="result",
        ids=result_ids,
        reason=why or TRANSITIONS[(State.RECEIVED, State.TEST)],
        before=received,
        after=_SNAPSHOT[State.TEST],
    )
    tx.event("result", instrument, {"ids": list(result_ids), "to": State.TEST.value})


def arrive(
    tx: Tx,
    result_ids: Sequence[int],
    held: Sequence[HeldArrival],
    *,
    actor: str,
    instrument: str,
    reason: str = "",
) -> None:
    """Record the first moves of new results that the caller inserted in ``first_state``.

    None -> received for all (one audit row for the group), received -> held for each of
    ``held`` (a row each, naming its reasons), received -> queued for the rest (one row for
    the group); then one event per destination.
    """
    check(None, State.RECEIVED)
    check(State.RECEIVED, State.HELD)
    check(State.RECEIVED, State.QUEUED)
    if not result_ids:
        return
    received = _received(tx, result_ids, actor=actor, reason=reason)
    held_ids = {h.result_id for h in held}
    for h in held:
        tx.audit(
            actor=ROUTER,
            action="result.held",
            entity="result",
            entity_id=h.result_id,
            reason=h.why or TRANSITIONS[(State.RECEIVED, State.HELD)],
            before=received,
            after={"state": State.HELD.value, "holds": list(h.reasons)},
        )
    queued_ids = [i for i in result_ids if i not in held_ids]
    if queued_ids:
        tx.audit_group(
            actor=ROUTER,
            action="result.queued",
            entity="result",
            ids=queued_ids,
            reason=TRANSITIONS[(State.RECEIVED, State.QUEUED)],
            before=received,
            after=_SNAPSHOT[State.QUEUED],
        )
    if held:
        reasons = sorted({r for h in held for r in h.reasons})
        payload = {"ids": [h.result_id for h in held], "to": "held", "reasons": reasons}
        tx.event("result", instrument, payload)
    if queued_ids:
        tx.event("result", instrument, {"ids": queued_ids, "to": "queued"})


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
    before = _SNAPSHOT[old]
    after = to_json({"state": new.value, **extra}) if extra else _SNAPSHOT[new]
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
