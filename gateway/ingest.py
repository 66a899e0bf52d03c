"""Ingest: store the raw message, normalise its observations, run the rules, route each result.

A message its sender marked as test data (``gateway.rules.processing_id``) is stored the same
way, but its results go to the state ``test`` (or, per instrument, the message to quarantine).

One inbound message is one job on the group-commit writer, so the raw bytes, the results, their
holds and the audit rows commit together, before the driver acknowledges the analyser. State
moves go through ``gateway.lifecycle``; the rules get their context (config and store facts)
from ``gateway.rule_context``, read once per writer batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select

from drivers.model import InboundMessage, Method, Observation
from gateway import lifecycle, quarantine_reason
from gateway.deviations.categories import Category
from gateway.holds import rerun
from gateway.model import Hold, Result, State
from gateway.rule_context import FactsLoader, RuleContexts
from gateway.rules import RULES, Rule, RuleContext, qc_flag, run_rules
from gateway.rules.processing_id import TestMessage, TestMessages, judge, normalised
from gateway.store import bulk, qc_live, qc_state
from gateway.store.audit import digest_fields
from gateway.store.deviations import OSLO, note_quarantine
from gateway.store.facts import load_facts
from gateway.store.results import data_row, hold_row
from gateway.store.tables import holds, qc_results, quarantine, results
from gateway.store.writer import GroupCommitWriter, Tx
from gateway.texts import describe_hold, params_json, render

SYSTEM = "system"
# The hottest statements go to the driver's cursor (see ``bulk.fetch``): SQLAlchemy's per-call
# work cost more than SQLite takes to run them.
_EARLIER_MESSAGE = (
    "SELECT id FROM raw_messages WHERE instrument_id = ? AND digest = ? AND outcome = 'stored'"
)
_INSERT_RAW = (
    "INSERT INTO raw_messages (instrument_id, protocol, received_at, raw, digest, control_id,"
    " outcome, n_observations) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_KNOWN_QC_FINGERPRINTS = select(qc_results.c.fingerprint).where(
    qc_results.c.fingerprint.in_(bindparam("prints", expanding=True))
)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What happened to one inbound message; the driver chooses its ACK from it."""

    raw_message_id: int
    stored: int = 0
    held: int = 0
    queued: int = 0
    qc: int = 0
    duplicates: int = 0
    duplicate_message: bool = False
    quarantined: bool = False
    error: str = ""
    #: results kept as test data (state ``test``)
    test: int = 0
    #: its sender marked it test data: received all the same, never forwarded (see
    #: ``drivers.ports.Outcome``)
    test_message: bool = False


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def normalise(observation: Observation, context: RuleContext, processing_id: str = "P") -> Result:
    """Map an instrument's observation to the site's test (NLK code, unit, method); the
    message's ``processing_id`` is carried along, and who performed it is looked up by its
    operator ID (the person at that time: IDs may be given to someone else later)."""
    test = context.find_test(observation.instrument_id, observation.test_code)
    method = observation.method or (test.method if test else Method.MEASURED)
    return Result(
        instrument_id=observation.instrument_id,
        test_code=observation.test_code,
        value=observation.value.strip(),
        value_type=observation.value_type or (test.value_type if test else "ST"),
        unit=observation.unit or (test.unit if test else ""),
        reference_range=observation.reference_range,
        abnormal_flags=observation.abnormal_flags,
        method=method,
        performed_at=observation.performed_at,
        operator_id=observation.operator_id,
        specimen_id=observation.specimen_id,
        patient_id=observation.patient_id.strip(),
        result_status=observation.result_status or "F",
        nlk_code=test.nlk if test else "",
        test_name=observation.test_name or (test.name if test else ""),
        comment=observation.comment,
        instrument_serial=observation.instrument_serial,
        processing_id=processing_id,
        performed_by=context.facts.person_for(observation.instrument_id, observation.operator_id)
        or "",
    )


def fingerprint(result: Result) -> str:
    """The same result delivered twice has the same fingerprint (and is stored once).

    A test result's processing ID is part of it: the same values sent again as production
    must not be taken for a duplicate of the test run (production prints are as before).
    """
    fields = [
        result.instrument_id,
        result.specimen_id,
        result.patient_id,
        result.test_code,
        result.value,
        result.unit,
        result.performed_at.isoformat() if result.performed_at else "",
        result.result_status,
    ]
    if result.processing_id != "P":
        fields.append(f"processing_id={result.processing_id}")
    return digest_fields(*fields)


def qc_fingerprint(observation: Observation) -> str:
    return digest_fields(
        observation.instrument_id,
        observation.test_code,
        observation.value,
        observation.control_lot,
        observation.control_level,
        observation.performed_at.isoformat() if observation.performed_at else "",
    )


def result_row(
    result: Result, raw_message_id: int, state: State, fp: str, tx: Tx
) -> dict[str, Any]:
    row = data_row(result)
    row["raw_message_id"] = raw_message_id
    row["state"] = state.value
    row["fingerprint"] = fp
    row["created_at"] = row["updated_at"] = tx.now
    return row


def _find_original(tx: Tx, result: Result) -> int | None:
    """A corrected result (status C) points at the latest earlier result for the same test
    (never at test data: the LIS did not get that one)."""
    if result.result_status != "C" or not result.specimen_id:
        return None
    row = tx.conn.execute(
        select(results.c.id)
        .where(
            results.c.instrument_id == result.instrument_id,
            results.c.specimen_id == result.specimen_id,
            results.c.test_code == result.test_code,
            results.c.state != State.TEST.value,
        )
        .order_by(results.c.id.desc())
        .limit(1)
    ).first()
    return int(row.id) if row else None


def store_message(
    tx: Tx, message: InboundMessage, context: RuleContext, rules: Sequence[Rule] = RULES
) -> IngestOutcome:
    """The ingest job: everything for one inbound message, in the caller's transaction."""
    conn = tx.conn
    instrument = message.instrument_id
    msg_digest = digest(message.raw)
    tx.instrument_messages[instrument] = tx.instrument_messages.get(instrument, 0) + 1
    found = bulk.fetch(conn, _EARLIER_MESSAGE, (instrument, msg_digest))
    if found:
        earlier_id = int(found[0][0])
        tx.audit(
            actor=f"instrument:{instrument}",
            action="message.duplicate",
            entity="raw_message",
            entity_id=earlier_id,
            reason="the same message was delivered again; it is stored once",
        )
        return IngestOutcome(earlier_id, duplicate_message=True)

    test = (
        None
        if message.error is not None
        else judge(message, context.test_message_policy(instrument))
    )
    to_quarantine = test is not None and test.policy is TestMessages.QUARANTINE
    raw_id = keep_raw(tx, message, msg_digest, quarantined=to_quarantine)
    if message.error is not None:
        quarantine_raw(tx, raw_id, message, actor=f"instrument:{instrument}", zone=context.zone)
        return IngestOutcome(raw_id, quarantined=True, error=message.error)
    if test is not None and to_quarantine:
        refused = replace(message, error=test.error(), error_field=test.field)
        quarantine_raw(tx, raw_id, refused, actor=f"instrument:{instrument}", zone=context.zone)
        return IngestOutcome(raw_id, quarantined=True, error=test.error(), test_message=True)
    return store_observations(
        tx,
        raw_id,
        message.observations,
        context,
        rules,
        processing_id=normalised(message.processing_id),
        test=test,
    )


def keep_raw(tx: Tx, message: InboundMessage, msg_digest: str, *, quarantined: bool = False) -> int:
    """Store a message's raw bytes (first, before anything is read from them); its row id.

    ``quarantined``: a message that decoded but goes to quarantine all the same (a test
    message on an instrument set to quarantine them)."""
    conn = tx.conn
    return int(
        bulk.fetch(
            conn,
            _INSERT_RAW,
            (
                message.instrument_id,
                message.protocol,
                bulk.db_time(conn, message.received_at),
                message.raw,
                msg_digest,
                message.control_id[:64],
                "quarantined" if message.error is not None or quarantined else "stored",
                len(message.observations),
            ),
        )[0][0]
    )


def quarantine_raw(
    tx: Tx,
    raw_id: int,
    message: InboundMessage,
    *,
    actor: str,
    zone: ZoneInfo = OSLO,
    category: Category = Category.EQUIPMENT,
) -> int:
    """Put a stored message that was refused (``message.error``) in quarantine; audited.

    The error text is kept as the technical detail; its reason code and parameters (what the
    screens explain) are derived here, the one place a refused message is recorded. It is a
    deviation too (``category``: the analyser sent something unreadable), one per instrument
    and day (``zone``'s) while not closed: later ones add a history row to it.
    """
    error = message.error or ""
    field = message.error_field or ""
    reason, params = quarantine_reason.classify(error, field)
    quarantine_id = int(
        tx.conn.execute(
            insert(quarantine).returning(quarantine.c.id),
            {
                "raw_message_id": raw_id,
                "instrument_id": message.instrument_id,
                "received_at": message.received_at,
                "error": error,
                "field": field,
                "reason": reason,
                "params": params_json(params),
            },
        ).scalar_one()
    )
    tx.audit(
        actor=actor,
        action="message.quarantined",
        entity="quarantine",
        entity_id=quarantine_id,
        reason=error,
    )
    tx.event(
        "quarantine",
        message.instrument_id,
        {"id": quarantine_id, "field": message.error_field, "reason": reason},
    )
    note_quarantine(tx, message.instrument_id, quarantine_id, reason, zone=zone, category=category)
    return quarantine_id


def store_observations(
    tx: Tx,
    raw_id: int,
    observations: Sequence[Observation],
    context: RuleContext,
    rules: Sequence[Rule],
    *,
    processing_id: str = "P",
    test: TestMessage | None = None,
    actor: str = "",
    reason: str = "received from the instrument",
    performed_by: str = "",
) -> IngestOutcome:
    """Store a decoded message's results and QC. For a ``test`` message the results go to the
    state ``test`` with its hold only (no rules: nothing about them may go on), and its
    controls are not stored as QC (a test run must not count in the QC statistics).

    ``actor`` and ``reason`` are what the arrival's audit row says (default: the instrument,
    "received from the instrument"); ``performed_by`` names the person who performed every
    result when the caller knows it (a manual entry: ``gateway.manual``) instead of looking
    the operator ID up."""
    conn = tx.conn
    patient = [o for o in observations if not o.is_qc]
    controls = [o for o in observations if o.is_qc]
    qc_stored = len(store_controls(tx, raw_id, controls, context)) if test is None else 0

    mapped = [normalise(o, context, processing_id) for o in patient]
    if performed_by:
        mapped = [replace(r, performed_by=performed_by) for r in mapped]
    prints = [fingerprint(r) for r in mapped]
    known: set[str] = set()
    for start in range(0, len(prints), 500):
        chunk = prints[start : start + 500]
        known.update(
            fp
            for (fp,) in bulk.fetch(
                conn,
                "SELECT fingerprint FROM results WHERE fingerprint IN "
                f"({bulk.placeholders(len(chunk))})",
                chunk,
            )
        )
    rows: list[dict[str, Any]] = []
    kept: list[Result] = []
    hold_lists: list[tuple[Hold, ...]] = []
    flagged: list[int] = []  # indexes into ``kept`` of results marked with a QC note
    duplicates = 0
    for result, fp in zip(mapped, prints, strict=True):
        if fp in known:
            duplicates += 1
            continue
        known.add(fp)
        found = run_rules(result, context, rules) if test is None else (test.hold(),)
        flag = qc_flag(result, context) if test is None and context.qc else None
        if flag is not None:
            result = _with_note(result, render(context.language, "qc.flag.note", dict(flag)))
            flagged.append(len(kept))
        state = lifecycle.first_state(bool(found), test=test is not None)
        row = result_row(result, raw_id, state, fp, tx)
        row["correction_of"] = _find_original(tx, result)
        rows.append(row)
        kept.append(result)
        hold_lists.append(found)
    if duplicates:
        tx.audit(
            actor=SYSTEM,
            action="result.duplicate",
            entity="raw_message",
            entity_id=raw_id,
            reason=f"{duplicates} result(s) were already stored and were not stored again",
        )
    if not rows:
        return IngestOutcome(
            raw_id, qc=qc_stored, duplicates=duplicates, test_message=test is not None
        )

    ids = bulk.next_ids(conn, results, len(rows))
    if ids is None:
        ids = [
            int(i) for i in conn.execute(insert(results).returning(results.c.id), rows).scalars()
        ]
    else:
        for row, result_id in zip(rows, ids, strict=True):
            row["id"] = result_id
        bulk.insert_rows(conn, results, rows)
    hold_rows: list[dict[str, Any]] = []
    held: list[lifecycle.HeldArrival] = []
    for result_id, found in zip(ids, hold_lists, strict=True):
        if not found:
            continue
        held.append(
            lifecycle.HeldArrival(
                result_id,
                tuple(h.reason for h in found),
                "; ".join(describe_hold(h) for h in found),
            )
        )
        hold_rows.extend(hold_row(result_id, h, tx.now) for h in found)
    instrument = str(rows[0]["instrument_id"])
    actor = actor or f"instrument:{instrument}"
    if test is not None:
        why = describe_hold(test.hold())
        lifecycle.arrive_as_test(
            tx, ids, actor=actor, instrument=instrument, why=why, reason=reason
        )
        outcome = IngestOutcome(
            raw_id, stored=len(ids), test=len(ids), duplicates=duplicates, test_message=True
        )
    else:
        lifecycle.arrive(tx, ids, held, actor=actor, instrument=instrument, reason=reason)
        outcome = IngestOutcome(
            raw_id,
            stored=len(ids),
            held=len(held),
            queued=len(ids) - len(held),
            qc=qc_stored,
            duplicates=duplicates,
        )
    bulk.insert_rows(conn, holds, hold_rows)
    for index in flagged:
        tx.audit(
            actor=SYSTEM,
            action="result.qc_flag",
            entity="result",
            entity_id=ids[index],
            reason=kept[index].comment,
        )
    if test is None and context.qc:  # schedule every_n counts patient samples
        _count_patients(tx, kept, context)
    if test is None and context.enforce_people:  # uncertified operators, certified re-runs
        rerun.after_arrival(tx, list(zip(ids, kept, hold_lists, strict=True)), context)
    return outcome


def _with_note(result: Result, note: str) -> Result:
    """``result`` with ``note`` after the instrument's own comment (NTE to the LIS)."""
    return replace(result, comment=f"{result.comment}; {note}" if result.comment else note)


def _count_patients(tx: Tx, kept: Sequence[Result], context: RuleContext) -> None:
    """One UPDATE per (instrument, test) with an every_n schedule (``qc_state``)."""
    counts: dict[tuple[str, str], int] = {}
    for result in kept:
        key = (result.instrument_id, result.test_code)
        entry = context.qc.get(key)
        if entry is not None and entry.schedule == "every_n":
            counts[key] = counts.get(key, 0) + 1
    if counts:
        qc_state.count_patients(tx, counts, context.qc)


def store_controls(
    tx: Tx,
    raw_id: int | None,
    controls: Sequence[Observation],
    context: RuleContext,
    *,
    performed_by: str = "",
    source: str = "instrument",
    actor: str = "",
) -> list[int]:
    """Store control (QC) values, each once, and judge them (``gateway.store.qc_live``) in
    the same transaction: a failing control locks the instrument's test out before the
    analyser's next patient result is stored. The new rows' ids.

    ``performed_by``: who performed them, when the caller knows it (a QC entry typed in);
    else each control's operator ID is looked up. ``source``: instrument | manual.
    """
    if not controls:
        return []
    prints = [qc_fingerprint(o) for o in controls]
    known = set(tx.conn.execute(_KNOWN_QC_FINGERPRINTS, {"prints": prints}).scalars())
    rows = []
    for o, fp in zip(controls, prints, strict=True):
        if fp in known:
            continue
        known.add(fp)
        rows.append(
            {
                "raw_message_id": raw_id,
                "instrument_id": o.instrument_id,
                "test_code": o.test_code,
                "value": o.value,
                "unit": o.unit,
                "control_lot": o.control_lot,
                "control_level": o.control_level,
                "performed_at": o.performed_at,
                "operator_id": o.operator_id,
                "fingerprint": fp,
                "created_at": tx.now,
                "performed_by": performed_by
                or context.facts.person_for(o.instrument_id, o.operator_id)
                or "",
                "source": source,
            }
        )
    if not rows:
        return []
    ids = [
        int(i)
        for i in tx.conn.execute(insert(qc_results).returning(qc_results.c.id), rows).scalars()
    ]
    instrument = str(rows[0]["instrument_id"])
    for qc_id in ids:
        tx.audit(
            actor=actor or f"instrument:{instrument}",
            action="qc.received",
            entity="qc_result",
            entity_id=qc_id,
            reason="typed in" if source == "manual" else "",
        )
    tx.event("qc", instrument, {"ids": ids})
    qc_live.evaluate_controls(tx, ids, context)
    return ids


class Ingestor:
    """The gateway's ingest API for drivers: ``await ingest(message)`` returns once durable.

    ``context`` holds the config's facts; the store's (``facts``, a loader) join it per writer
    batch, read again only after a change (``gateway.rule_context``).
    """

    def __init__(
        self,
        writer: GroupCommitWriter,
        context: RuleContext,
        *,
        rules: Sequence[Rule] = RULES,
        facts: FactsLoader = load_facts,
    ) -> None:
        self._writer = writer
        self.contexts = RuleContexts(context, facts)
        self._rules = rules

    def job(self, message: InboundMessage) -> Callable[[Tx], IngestOutcome]:
        """The writer job that ingests ``message``."""
        return lambda tx: store_message(tx, message, self.contexts.get(tx), self._rules)

    async def ingest(self, message: InboundMessage) -> IngestOutcome:
        return await self._writer.write(self.job(message))
