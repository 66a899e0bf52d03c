"""Quarantine commands: replay a kept raw message (after a driver fix); show its raw bytes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from drivers.registry import DRIVERS
from gateway.config import Config
from gateway.ingest import IngestOutcome, store_observations
from gateway.orders.store import ORDER_SOURCE
from gateway.privacy import national_ids_in
from gateway.rule_context import current_context
from gateway.rules import RULES, RuleContext
from gateway.rules.processing_id import TestMessages, judge, normalised
from gateway.store.access import AccessAction, log_access
from gateway.store.queries import QuarantinedMessage, get_quarantined
from gateway.store.tables import quarantine, raw_messages
from gateway.store.writer import Tx

#: the audit action of an explicit "show raw" (the bytes hold names and national IDs)
RAW_VIEWED = "quarantine.raw_viewed"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    quarantine_id: int
    ok: bool
    detail: str
    outcome: IngestOutcome | None = None


def replay(
    tx: Tx, quarantine_id: int, config: Config, context: RuleContext, actor: str
) -> ReplayResult:
    row = tx.conn.execute(
        select(quarantine, raw_messages.c.raw, raw_messages.c.received_at.label("raw_at"))
        .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
        .where(quarantine.c.id == quarantine_id)
    ).first()
    if row is None:
        return ReplayResult(quarantine_id, False, "no such quarantine entry")
    if row.state != "open":
        return ReplayResult(quarantine_id, False, f"already {row.state}")
    if row.instrument_id == ORDER_SOURCE:
        # an order message reads the same however the gateway is configured: replaying it
        # would refuse it again; the LIS must send a corrected one
        return ReplayResult(
            quarantine_id, False, "an order message from the LIS: ask the LIS to send it again"
        )
    try:
        driver_key = config.instrument(row.instrument_id).driver
    except KeyError:
        return ReplayResult(
            quarantine_id, False, f"instrument {row.instrument_id!r} is not in the config"
        )
    message = DRIVERS[driver_key].decode(row.instrument_id, bytes(row.raw), row.raw_at)
    if message.error is not None:
        return ReplayResult(quarantine_id, False, f"still does not decode: {message.error}")
    # judged on the store's facts as they are now, not when the message first arrived
    context = current_context(tx, context)
    # the same rule as on arrival: a test message never reaches the LIS by replay either
    test = judge(message, context.test_message_policy(row.instrument_id))
    if test is not None and test.policy is TestMessages.QUARANTINE:
        return ReplayResult(
            quarantine_id,
            False,
            f"a test message ({test.field} = {test.processing_id}): the instrument keeps test "
            "messages in quarantine (test_messages); it is never sent to the LIS",
        )
    outcome = store_observations(
        tx,
        row.raw_message_id,
        message.observations,
        context,
        RULES,
        processing_id=normalised(message.processing_id),
        test=test,
    )
    tx.conn.execute(
        update(raw_messages)
        .where(raw_messages.c.id == row.raw_message_id)
        .values(outcome="stored", n_observations=len(message.observations))
    )
    as_test = " as test data, never sent to the LIS" if test is not None else ""
    tx.conn.execute(
        update(quarantine)
        .where(quarantine.c.id == quarantine_id)
        .values(state="replayed", resolved_at=tx.now, resolved_by=actor)
    )
    tx.audit(
        actor=actor,
        action="quarantine.replayed",
        entity="quarantine",
        entity_id=quarantine_id,
        reason=f"decoded on replay: {outcome.stored} result(s) stored{as_test}",
        before={"state": "open"},
        after={"state": "replayed"},
    )
    return ReplayResult(quarantine_id, True, f"{outcome.stored} result(s) stored{as_test}", outcome)


def show_raw(
    tx: Tx, quarantine_id: int, *, actor: str, via: str, person: str = ""
) -> QuarantinedMessage | None:
    """The quarantined message with its bytes as received, for an explicit "show raw" action.

    The bytes are the one place a refused message's patient data is kept, so every look at
    them is an audit row: who (``actor``: "web:<viewer>", "cli:<user>"), what (the entry, and
    ``via``: which page, API route or command), when (the transaction's time); and an access
    log row (action ``raw``, for ``person``, by default the actor) per national ID found in
    the bytes, so a patient's extract shows it (one row without a patient when none is
    found). None, and no row, when there is no such entry.
    """
    found = get_quarantined(tx.conn, quarantine_id)
    if found is None:
        return None
    detail = f"quarantine {quarantine_id}"
    for patient_id in national_ids_in(bytes(found.raw).decode("utf-8", "replace")) or [""]:
        log_access(tx, person or actor, AccessAction.RAW, via, None, patient_id, detail)
    tx.audit(
        actor=actor,
        action=RAW_VIEWED,
        entity="quarantine",
        entity_id=quarantine_id,
        reason=f"raw message shown ({via})",
    )
    return found
