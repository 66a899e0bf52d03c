"""The worklist in the store: place and cancel orders, and read them back for host queries.

One row per specimen and test code, so a test can be cancelled on its own. Orders are not
closed when a result arrives: an analyser that reruns a specimen asks again and must get the
same tests. A cancel (from the LIS or a person) closes them; every change is audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, insert, select, update

from drivers.model import PRIORITIES, InboundMessage, OrderAction, OrderRequest, WorklistOrder
from gateway.deviations.categories import Category
from gateway.ingest import digest, keep_raw, quarantine_raw
from gateway.national_id import mask
from gateway.store.tables import orders, results
from gateway.store.writer import Tx

#: ``raw_messages.instrument_id`` of order messages: they come from the LIS, not an analyser
ORDER_SOURCE = "lis-orders"
PROTOCOL = "hl7v2-orders"


@dataclass(frozen=True, slots=True)
class OrdersOutcome:
    """What one order message (or command) changed."""

    placed: int = 0
    cancelled: int = 0
    #: lines asked for that were already open (a resent order), or cancels with nothing open
    unchanged: int = 0
    raw_message_id: int | None = None
    quarantined: bool = False
    error: str = ""


class OrderConflict(ValueError):
    """A new order names another patient than the specimen's open orders: most likely a
    wrong or reused barcode, and an analyser must never get one patient's tests for
    another's tube."""


OpenLines = dict[str, dict[str, tuple[int, str]]]
"""specimen ID -> open test code -> (row id, patient ID)"""


def _open_lines(conn: Connection, specimen_ids: Sequence[str]) -> OpenLines:
    """The open order lines of these specimens, in one query."""
    found: OpenLines = {specimen: {} for specimen in specimen_ids}
    rows = conn.execute(
        select(orders.c.specimen_id, orders.c.test_code, orders.c.id, orders.c.patient_id).where(
            orders.c.specimen_id.in_(list(found)), orders.c.state == "open"
        )
    )
    for row in rows:
        found[str(row.specimen_id)][str(row.test_code)] = (int(row.id), str(row.patient_id))
    return found


def _patient_conflict(open_lines: OpenLines, requests: Sequence[OrderRequest]) -> str:
    """Why these requests cannot be placed as they are ("" when they can)."""
    for request in requests:
        if request.action is not OrderAction.NEW or not request.patient_id:
            continue
        patients = {patient for _id, patient in open_lines[request.specimen_id].values()}
        if patients - {"", request.patient_id}:
            # the specimen ID is a label, not patient data; the patients are not named
            return (
                f"specimen {request.specimen_id} already has open orders for another "
                "patient: cancel those first, or check the barcode"
            )
    return ""


def apply_orders(
    tx: Tx,
    requests: Sequence[OrderRequest],
    *,
    actor: str,
    reason: str,
    raw_message_id: int | None = None,
) -> OrdersOutcome:
    """Place or cancel the requested order lines, in the caller's transaction; audited.

    Raises ``OrderConflict`` before changing anything when a new order names another patient
    than its specimen's open orders.
    """
    return _apply(tx, requests, check_orders(tx.conn, requests), actor, reason, raw_message_id)


def check_orders(conn: Connection, requests: Sequence[OrderRequest]) -> OpenLines:
    """The open lines the requests touch, read once; raises ``OrderConflict`` when a new
    order names another patient than its specimen's open orders."""
    for request in requests:
        if request.priority not in PRIORITIES:
            raise ValueError(f"priority {request.priority!r} is not one of {PRIORITIES}")
    open_lines = _open_lines(conn, [request.specimen_id for request in requests])
    if conflict := _patient_conflict(open_lines, requests):
        raise OrderConflict(conflict)
    return open_lines


def _apply(
    tx: Tx,
    requests: Sequence[OrderRequest],
    open_lines: OpenLines,
    actor: str,
    reason: str,
    raw_message_id: int | None,
) -> OrdersOutcome:
    placed: list[int] = []
    cancelled: list[int] = []
    unchanged = 0
    for request in requests:
        lines = open_lines[request.specimen_id]  # kept current as requests change it
        if request.action is OrderAction.NEW:
            for code in dict.fromkeys(request.test_codes):
                if code in lines:
                    unchanged += 1
                    continue
                row_id = _insert_line(tx, request, code, actor, raw_message_id)
                lines[code] = (row_id, request.patient_id)
                placed.append(row_id)
        else:
            codes = request.test_codes or tuple(lines)
            ids = [lines.pop(code)[0] for code in codes if code in lines]
            unchanged += len(codes) - len(ids)
            if ids:
                tx.conn.execute(
                    update(orders)
                    .where(orders.c.id.in_(ids))
                    .values(state="cancelled", updated_at=tx.now, updated_by=actor)
                )
                cancelled += ids
    if placed:
        tx.audit_group(
            actor=actor, action="order.placed", entity="order", ids=placed, reason=reason
        )
    if cancelled:
        tx.audit_group(
            actor=actor, action="order.cancelled", entity="order", ids=cancelled, reason=reason
        )
    if placed or cancelled:
        tx.event("orders", ORDER_SOURCE, {"placed": len(placed), "cancelled": len(cancelled)})
    return OrdersOutcome(len(placed), len(cancelled), unchanged, raw_message_id)


def _insert_line(
    tx: Tx, request: OrderRequest, code: str, actor: str, raw_message_id: int | None
) -> int:
    return int(
        tx.conn.execute(
            insert(orders).returning(orders.c.id),
            {
                "specimen_id": request.specimen_id,
                "test_code": code,
                "patient_id": request.patient_id,
                "priority": request.priority,
                "placer_order": request.placer_order,
                "state": "open",
                "raw_message_id": raw_message_id,
                "placed_at": tx.now,
                "placed_by": actor,
                "updated_at": tx.now,
                "updated_by": actor,
            },
        ).scalar_one()
    )


def store_order_message(
    tx: Tx,
    raw: bytes,
    received_at: datetime,
    requests: Sequence[OrderRequest] | None,
    *,
    control_id: str = "",
    error: str = "",
    error_field: str = "",
) -> OrdersOutcome:
    """Keep an order message's raw bytes, then apply its requests, or quarantine it.

    ``requests`` is None when the message could not be read (``error`` says why); a message
    whose orders conflict with the worklist (``OrderConflict``) is refused the same way: its
    bytes go to quarantine and nothing changes on the worklist.
    """
    open_lines: OpenLines = {}
    if requests is not None:
        try:
            open_lines = check_orders(tx.conn, requests)
        except OrderConflict as exc:
            requests, error, error_field = None, str(exc), "PID-3"
    message = InboundMessage(
        ORDER_SOURCE,
        PROTOCOL,
        raw,
        received_at,
        error=error if requests is None else None,
        error_field=error_field,
        control_id=control_id,
    )
    raw_id = keep_raw(tx, message, digest(raw))
    if requests is None:
        # the LIS sent an order we cannot read: the IT owner's deviation
        quarantine_raw(tx, raw_id, message, actor="lis", category=Category.IT)
        return OrdersOutcome(raw_message_id=raw_id, quarantined=True, error=error)
    reason = f"order message {control_id}" if control_id else "order message"
    return _apply(tx, requests, open_lines, "lis", reason, raw_id)


def open_orders(conn: Connection, specimen_id: str) -> tuple[WorklistOrder, ...]:
    """The worklist's answer for one specimen: its open tests as one order (none if none)."""
    rows = conn.execute(
        select(orders.c.test_code, orders.c.patient_id, orders.c.priority)
        .where(orders.c.specimen_id == specimen_id, orders.c.state == "open")
        .order_by(orders.c.id)
    ).all()
    if not rows:
        return ()
    codes = tuple(dict.fromkeys(str(row.test_code) for row in rows))
    patient = next((str(row.patient_id) for row in reversed(rows) if row.patient_id), "")
    priority = min((str(row.priority) for row in rows), key=PRIORITIES.index)
    return (WorklistOrder(specimen_id, patient, codes, priority),)


def list_orders(
    conn: Connection, *, state: str | None = "open", limit: int = 500
) -> list[dict[str, Any]]:
    """Order lines for the screens and the CLI, newest first; patient IDs masked.

    ``resulted`` says whether a result with the same specimen and test code has arrived.
    """
    resulted = exists(
        select(results.c.id).where(
            and_(
                results.c.specimen_id == orders.c.specimen_id,
                results.c.test_code == orders.c.test_code,
            )
        )
    )
    query = select(orders, resulted.label("resulted")).order_by(orders.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(orders.c.state == state)
    return [
        {
            "id": int(row.id),
            "specimen_id": row.specimen_id,
            "test_code": row.test_code,
            "patient": mask(row.patient_id) if row.patient_id else "",
            "priority": row.priority,
            "placer_order": row.placer_order,
            "state": row.state,
            "resulted": bool(row.resulted),
            "placed_at": row.placed_at.isoformat(),
            "placed_by": row.placed_by,
            "updated_at": row.updated_at.isoformat(),
            "updated_by": row.updated_by,
        }
        for row in conn.execute(query)
    ]


def count_order_lines(conn: Connection) -> int:
    """Order lines on the worklist, open or cancelled (the demo's summary)."""
    return int(conn.execute(select(func.count()).select_from(orders)).scalar_one())


class StoreWorklist:
    """The host drivers' worklist (``drivers.analysers.Worklist``): reads the store
    on a worker thread, so a query never blocks the event loop."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def lookup(self, specimen_id: str) -> tuple[WorklistOrder, ...]:
        with self._engine.connect() as conn:
            return open_orders(conn, specimen_id)

    async def __call__(self, specimen_id: str) -> tuple[WorklistOrder, ...]:
        return await asyncio.to_thread(self.lookup, specimen_id)
