"""Ingest's part of the people rules: an uncertified operator's result is reported, and a
re-run by a certified operator replaces it.

A result held ``uncertified_operator`` records a deviation routed to the equipment owner and
publishes an MQTT ``alert`` (no patient data: ids, the instrument, the operator ID and the
task). A new result for the same instrument, specimen and test from an operator certified for
it supersedes every such held result: the old one is discarded ("replaced by re-run #id"),
signed and audited by the system. Cheap on the hot path: whether any result is held for an
uncertified operator is read once per transaction (a partial index of open holds), and a
predecessor is looked up (by the results' specimen index) only when one is.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway import deviations, lifecycle
from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.model import Deviation, Hold, HoldReason, Result, State
from gateway.rules import RuleContext
from gateway.rules.people import certification_rule
from gateway.store import bulk
from gateway.store.signatures import add_signature
from gateway.store.writer import Tx

SYSTEM = "system"
EQUIPMENT = "Utstyrsansvarlig"
#: the signature's meaning when the system replaces a result by its re-run
SUPERSEDE = "supersede"
_MEMO = "holds.open_uncertified"  # key in ``Tx.memo``: any uncertified hold open?
_ANY_OPEN = (
    "SELECT 1 FROM holds WHERE reason = 'uncertified_operator' AND released_at IS NULL LIMIT 1"
)
_PREDECESSORS = (
    "SELECT DISTINCT r.id FROM results r JOIN holds h ON h.result_id = r.id"
    " WHERE r.instrument_id = ? AND r.specimen_id = ? AND r.test_code = ? AND r.state = 'held'"
    " AND r.id < ? AND h.reason = 'uncertified_operator' AND h.released_at IS NULL"
    " ORDER BY r.id"
)
_CLOSE = (
    "UPDATE holds SET released_at = ?, released_by = ?, release_note = ?"
    " WHERE result_id = ? AND released_at IS NULL"
)
#: the certification rule's holds: a result with neither came from a certified operator
_PEOPLE = frozenset({HoldReason.UNCERTIFIED_OPERATOR, HoldReason.AWAITING_COSIGN})

Arrival = tuple[int, Result, Sequence[Hold]]


def after_arrival(tx: Tx, arrivals: Sequence[Arrival], context: RuleContext) -> None:
    """Report new uncertified results and let certified re-runs replace older ones; for the
    results of one message (id, result, holds), stored in this transaction."""
    candidates: list[tuple[int, Result]] = []
    for result_id, result, found in arrivals:
        reasons = {h.reason for h in found}
        if HoldReason.UNCERTIFIED_OPERATOR in reasons:
            held = next(h for h in found if h.reason == HoldReason.UNCERTIFIED_OPERATOR)
            _report(tx, result_id, result, held)
        elif result.specimen_id and not reasons & _PEOPLE:
            candidates.append((result_id, result))
    if not candidates or not _any_open(tx):
        return
    for result_id, result in candidates:
        if certification_rule(result, context):  # the rules in use may not include it
            continue
        for (old_id,) in bulk.fetch(
            tx.conn,
            _PREDECESSORS,
            (result.instrument_id, result.specimen_id, result.test_code, result_id),
        ):
            supersede(tx, int(old_id), result_id, result)


def _any_open(tx: Tx) -> bool:
    found: bool | None = tx.memo.get(_MEMO)
    if found is None:
        found = tx.memo[_MEMO] = bool(bulk.fetch(tx.conn, _ANY_OPEN))
    return found


def _report(tx: Tx, result_id: int, result: Result, hold: Hold) -> None:
    tx.memo[_MEMO] = True  # later jobs of this transaction must look for predecessors
    params = dict(hold.params)
    operator, task = params.get("operator", ""), params.get("task", "")
    problem = params.get("operator_problem", "")
    why = text(FALLBACK_LANGUAGE, f"operator_problem.{problem}")
    deviation_id = deviations.record(
        tx,
        Deviation(
            kind="uncertified_operator",
            summary=(
                f"Result #{result_id}: operator {operator or '–'} on {result.instrument_id} "
                f"may not perform {task} ({why}); the result is held"
            ),
            detail=(
                "Held until a certified operator re-runs the sample or a supervisor or quality "
                "manager overrides it with a reason."
            ),
            responsible_function=EQUIPMENT,
            instrument_id=result.instrument_id,
            result_id=result_id,
        ),
        actor=SYSTEM,
    )
    tx.event(
        "alert",
        result.instrument_id,
        {
            "kind": HoldReason.UNCERTIFIED_OPERATOR.value,
            "result_id": result_id,
            "operator": operator,
            "task": task,
            "problem": problem,
            "deviation": deviation_id,
        },
    )


def supersede(tx: Tx, old_id: int, new_id: int, rerun: Result) -> None:
    """Discard held ``old_id``: replaced by ``new_id``, a certified operator's re-run."""
    why = f"replaced by re-run #{new_id}"
    bulk.execute(tx.conn, _CLOSE, (bulk.db_time(tx.conn, tx.now), SYSTEM, why, old_id))
    signature = add_signature(
        tx,
        person=SYSTEM,
        meaning=SUPERSEDE,
        result_id=old_id,
        comment=why,
        detail={
            "replaced_by": new_id,
            "operator": rerun.operator_id,
            "performer": rerun.performed_by,
        },
    )
    lifecycle.move(
        tx,
        [old_id],
        State.HELD,
        State.DISCARDED,
        actor=SYSTEM,
        reason=why,
        instrument=rerun.instrument_id,
        extra={"replaced_by": new_id, "signature": signature},
    )
