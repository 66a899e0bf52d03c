"""The demo's closing summary (printed, and written by ``--summary-json``).

``held`` counts held results per hold reason and ``held_total`` counts held results: a result
can be held for more than one reason, so the reasons can add up to more than ``held_total``.
``qc_control`` says what quality control did: controls judged per verdict, runs, lockouts
opened and lifted, and the lines of the demo's QC story (``gateway.demo.qc``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from drivers.protocols.astm.records import parse_message
from gateway.demo.reconcile import reconcile
from gateway.orders.store import count_order_lines
from gateway.store.qc_counts import qc_counts
from gateway.store.queries import qc_by_instrument, results_by_instrument, summary

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gateway.demo.plan import DemoPlan
    from gateway.demo.qc import QcStory


def summary_dict(engine: Engine, plan: DemoPlan, story: QcStory | None = None) -> dict[str, Any]:
    """The counts after a run, per instrument too, with ``lost`` from ``reconcile``."""
    with engine.connect() as conn:
        s = summary(conn)
        received = results_by_instrument(conn)
        acknowledged = results_by_instrument(conn, state="acknowledged")
        qc = qc_by_instrument(conn)
        order_lines = count_order_lines(conn)
        control = qc_counts(conn)
    queries = [q for entry in plan.astm for q in entry.sim.ledger.queries if q.answered]
    sim_acked = {sim.options.instrument_id: sim.ledger.acked_messages for sim in plan.hl7}
    sim_acked |= {entry.instrument_id: len(entry.sim.ledger.acked) for entry in plan.astm}
    return {
        "received": s.received,
        # per reason; a result held for two reasons counts under both (see the docstring)
        "held": s.held_by_reason,
        "held_total": s.by_state.get("held", 0),
        "queued": s.by_state.get("queued", 0),
        "sent": s.by_state.get("sent", 0),
        "acknowledged": s.by_state.get("acknowledged", 0),
        "rejected": s.by_state.get("rejected", 0),
        "quarantined": s.quarantined,
        "qc": s.qc,
        "lost": reconcile(engine, plan.hl7, plan.astm),
        "orders": {
            # order lines the LIS placed on the worklist, the analysers' answered host
            # queries, and how many of those answers carried orders (the rest: "no information")
            "placed": order_lines,
            "queries_answered": len(queries),
            "answered_with_orders": sum(_has_orders(q.replies) for q in queries),
        },
        "qc_control": {
            "judged": control.judged,
            "runs": control.runs,
            "lockouts_opened": control.lockouts_opened,
            "lockouts_lifted": control.lockouts_lifted,
            # the drift story: its lockouts and what happened, in the site's language
            "story_lockouts": list(story.lockouts) if story is not None else [],
            "story_phase": story.phase if story is not None else "",
            "story": list(story.log) if story is not None else [],
        },
        "instruments": {
            inst.id: {
                "url": inst.url,
                "received": received.get(inst.id, 0),
                "acknowledged": acknowledged.get(inst.id, 0),
                "qc": qc.get(inst.id, 0),
                # messages the simulator was told were received (what "lost" checks)
                "sim_acked": sim_acked.get(inst.id, 0),
            }
            for inst in plan.config.instruments
        },
    }


def _has_orders(replies: Sequence[bytes]) -> bool:
    """Whether the host's reply to a query carried orders (O records), not "no information"."""
    return any(r.type == "O" for reply in replies for r in parse_message(reply, lenient=True))
