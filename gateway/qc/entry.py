"""Manual QC entry (issue 11 item 2): a control value a signed-in person types in, judged at once.

An analyser that cannot send its controls (or a reading by eye: a urine strip's control, a
rapid test's positive and negative control) is run by a person who types the outcome in. The
entry names a configured instrument and a registered control lot (``control_lots``: the lot
carries the test, the level and whether it is quantitative or qualitative), the value (a
number, decimal comma accepted, for a quantitative lot; the observed answer, "neg" or
"Positiv", for a qualitative one), when it was run (default now, never in the future) and a
comment. ``check_entry`` is pure and reports every mistake as an ``EntryError`` (texts
``qc.entry.error.<code>``), as ``gateway.manual`` does for patient results.

Who may: a person with a role that works with results (``gateway.manual.ENTRY_ROLES``), and
with ``[people] enforce`` on, certified for the QC task on that instrument and test (a task of
kind ``qc``, ``qc/afinion-1:HbA1c``: DOMAIN rule 1 names internal QC work as its own task).
The lot must be usable on the day it was run (``qc_lots.lot_usable``: active, not expired,
within its in-use days once opened): a control from an expired lot says nothing.

"Raw first" holds for typed controls too: the entry's JSON record (what was typed, by whom,
when) is stored as a raw message (protocol ``manual-qc``) before the value is stored through
``gateway.ingest.store_controls`` (source ``manual``, performed by the person), which judges
it in the same transaction (``gateway.store.qc_live``); the evaluation is read back for the
page. The same control typed twice (same instrument, test, value, lot, level and minute) is
refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from sqlalchemy import insert, select

from drivers.model import Method, Observation
from gateway import manual
from gateway.ingest import qc_fingerprint, store_controls
from gateway.manual import error_messages as error_messages
from gateway.people.permissions import is_certified
from gateway.people.tasks import TaskKind, WorkItem
from gateway.rule_context import current_context
from gateway.rules import RuleContext
from gateway.store import qc_lots, qc_queries
from gateway.store.qc_lots import Lot
from gateway.store.qc_queries import EvaluationRow
from gateway.store.tables import qc_comments, qc_results
from gateway.store.writer import Tx
from gateway.texts import render

#: ``raw_messages.protocol`` of a typed control's raw record
PROTOCOL: Final = "manual-qc"
#: ``qc_results.source`` of a typed control
SOURCE: Final = "manual"
MAX_ANSWER: Final = 64  # control_lots.expected: a qualitative answer is as long
MAX_NUMBER: Final = 32
MAX_COMMENT: Final = manual.MAX_COMMENT  # checked by manual.check_comment

#: every code ``check_entry`` and ``enter`` report (catalogue ``qc.entry.error.<code>``)
ERROR_CODES: Final = (
    "required",
    "unknown_instrument",
    "unknown_lot",
    "wrong_instrument",
    "lot_inactive",
    "lot_expired",
    "lot_in_use_expired",
    "not_a_number",
    "too_long",
    "control_characters",
    "not_a_time",
    "in_future",
    "unknown_person",
    "inactive_person",
    "no_role",
    "not_certified",
    "duplicate",
)


class EntryError(manual.EntryError):
    """One mistake in an entry: the field it is in, its code, and what its text names. The
    fields are a patient entry's; only the catalogue differs (``qc.entry.error.<code>``)."""

    __slots__ = ()

    def message(self, lang: str) -> str:
        return render(lang, f"qc.entry.error.{self.code}", dict(self.params))


def _qc_errors(found: Iterable[manual.EntryError]) -> list[EntryError]:
    """``gateway.manual``'s shared checks' errors with this module's texts."""
    return [EntryError(e.field, e.code, e.params) for e in found]


@dataclass(frozen=True, slots=True)
class QcEntry:
    """What the form holds, as typed. ``lot_id`` is the chosen lot's id as text;
    ``performed_at`` an aware datetime, an ISO text (no offset: the site's time) or empty."""

    instrument_id: str
    lot_id: str
    value: str
    performed_at: datetime | str | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Checked:
    errors: tuple[EntryError, ...]
    observation: Observation | None = None


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """What ``enter`` did: ``errors`` (nothing stored), or the stored control's id, its raw
    record and the live judge's evaluation of it (None when the judge left it unjudged)."""

    errors: tuple[EntryError, ...] = ()
    qc_result_id: int | None = None
    raw_message_id: int | None = None
    evaluation: EvaluationRow | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _error(field: str, code: str, **params: object) -> EntryError:
    return EntryError(field, code, tuple((k, str(v)) for k, v in params.items()))


def check_value(raw: str, lot: Lot) -> tuple[str, list[EntryError]]:
    """The value as stored: a number with a decimal point (quantitative), the answer as
    typed without surrounding space (qualitative); or errors."""
    value = raw.strip()
    if not value:
        return value, [_error("value", "required")]
    if manual.CONTROL_CHARACTERS.search(value):
        return value, [_error("value", "control_characters")]
    if lot.kind == "qualitative":
        if len(value) > MAX_ANSWER:
            return value, [_error("value", "too_long", max=MAX_ANSWER)]
        return " ".join(value.split()), []
    if len(value) > MAX_NUMBER or not manual.NUMBER.fullmatch(value):
        return value, [_error("value", "not_a_number")]
    try:
        number = Decimal(value.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return value, [_error("value", "not_a_number")]
    return str(number), []


def _check_person(
    person: str, context: RuleContext, work: WorkItem | None, at: datetime | None
) -> list[EntryError]:
    found = manual.check_person(person, context.facts)
    if found:
        return _qc_errors(found)
    if (
        context.enforce_people
        and work is not None
        and at is not None
        and not is_certified(context.facts, person, work, at, context.zone)
    ):
        task = f"qc/{work.instrument_id}:{work.test_code}"
        return [_error("person", "not_certified", person=person, task=task)]
    return []


def check_entry(
    entry: QcEntry, lot: Lot | None, person: str, context: RuleContext, now: datetime
) -> Checked:
    """Every mistake in ``entry`` by ``person`` with the lot it names (``lot``: the store's
    row for ``entry.lot_id``, None when there is none), or the observation it becomes. Pure:
    ``context.facts`` holds the people and certifications, ``now`` is when it is checked."""
    instrument_id = entry.instrument_id.strip()
    errors = _qc_errors(manual.check_instrument(instrument_id, context))
    performed_at, found = manual.performed_time(entry.performed_at, now, context.zone)
    time_errors = _qc_errors(found)
    if not entry.lot_id.strip():
        errors.append(_error("lot_id", "required"))
    elif lot is None:
        errors.append(_error("lot_id", "unknown_lot"))
    else:
        if instrument_id and lot.instrument_id not in ("", instrument_id):
            errors.append(
                _error("lot_id", "wrong_instrument", lot=lot.lot, instrument=lot.instrument_id)
            )
        day = (performed_at or now).astimezone(context.zone).date()
        why = qc_lots.lot_usable(lot, day)
        if why is not None:
            errors.append(_error("lot_id", f"lot_{why}", lot=lot.lot))
    value = entry.value.strip()
    if lot is not None:
        value, value_errors = check_value(entry.value, lot)
        errors += value_errors
    elif not value:
        errors.append(_error("value", "required"))
    errors += time_errors
    comment = entry.comment.strip()
    errors += _qc_errors(manual.check_comment(comment))
    work = None
    if lot is not None and instrument_id in context.drivers:
        test = context.find_test(instrument_id, lot.test_code)
        work = WorkItem(
            instrument_id=instrument_id,
            driver=context.drivers[instrument_id],
            test_code=lot.test_code,
            group="" if test is None else test.group,
            kind=TaskKind.QC,
        )
    errors = _check_person(person, context, work, performed_at or now) + errors
    if errors:
        return Checked(tuple(errors))
    assert lot is not None and performed_at is not None
    test = context.find_test(instrument_id, lot.test_code)
    return Checked(
        (),
        Observation(
            instrument_id=instrument_id,
            test_code=lot.test_code,
            value=value,
            value_type="ST" if lot.kind == "qualitative" else "NM",
            unit=lot.unit or ("" if test is None else test.unit),
            method=Method.MANUAL,
            performed_at=performed_at,
            operator_id=manual.operator_id_for(context.facts, person, instrument_id),
            comment=comment,
            is_qc=True,
            control_lot=lot.lot,
            control_level=lot.level,
        ),
    )


def raw_record(entry: QcEntry, person: str, observation: Observation, now: datetime) -> bytes:
    """The entry's raw record: what was typed, by whom, when, and which lot it named."""
    typed = {
        "instrument_id": entry.instrument_id,
        "lot_id": entry.lot_id,
        "value": entry.value,
        "performed_at": manual.typed_time(entry.performed_at),
        "comment": entry.comment,
    }
    lot = {
        "test_code": observation.test_code,
        "level": observation.control_level,
        "lot": observation.control_lot,
    }
    return manual.entry_record("manual_qc_entry", person, observation, now, typed, lot=lot)


def _lot_of(tx: Tx, lot_id: str) -> Lot | None:
    text = lot_id.strip()
    if not text.isdigit() or len(text) > 12:
        return None
    return qc_lots.get_lot(tx.conn, int(text))


def enter(tx: Tx, entry: QcEntry, person: str, base: RuleContext) -> EntryOutcome:
    """The writer job of one typed control by ``person``: check it against the config in
    ``base``, the store's people and lots as they are now; refuse a duplicate; store the raw
    record, then the control (judged in the same transaction); read back its evaluation."""
    context = current_context(tx, base)
    lot = _lot_of(tx, entry.lot_id)
    checked = check_entry(entry, lot, person, context, tx.now)
    if checked.errors or checked.observation is None:
        return EntryOutcome(errors=checked.errors)
    observation = checked.observation
    earlier = tx.conn.execute(
        select(qc_results.c.id).where(qc_results.c.fingerprint == qc_fingerprint(observation))
    ).scalar()
    if earlier is not None:
        return EntryOutcome(errors=(_error("entry", "duplicate", qc_result_id=earlier),))
    raw = raw_record(entry, person, observation, tx.now)
    raw_id = manual.keep_entry_raw(tx, PROTOCOL, observation, raw)
    ids = store_controls(
        tx, raw_id, [observation], context, performed_by=person, source=SOURCE, actor=person
    )
    (qc_id,) = ids
    if observation.comment:
        # the comment is the person's note on this control point (the LJ chart shows it)
        tx.conn.execute(
            insert(qc_comments),
            {"qc_result_id": qc_id, "person": person, "at": tx.now, "text": observation.comment},
        )
    return EntryOutcome(
        qc_result_id=qc_id,
        raw_message_id=raw_id,
        evaluation=qc_queries.evaluation_for(tx.conn, qc_id),
    )


def entry_job(entry: QcEntry, person: str, base: RuleContext) -> Callable[[Tx], EntryOutcome]:
    """``enter`` as a writer job (``await web.write(entry_job(...))``)."""
    return lambda tx: enter(tx, entry, person, base)
