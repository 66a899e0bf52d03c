"""Manual result entry (DOMAIN rule 5): a value a signed-in person types in becomes a result.

The entry names a configured instrument and a ``[[tests]]`` mapping that applies to it
(``choices`` lists them for the page), the value (checked against the test's
``allowed_values``, or ``low``/``high`` and its value type; Norwegians type ``5,2``), the unit
(the test's, when it has one), the patient ID (``gateway.national_id.classify`` with the
site's ``[rules]``), an optional specimen ID, when it was performed (default now, never in the
future) and a comment. ``check_entry`` is pure and reports every mistake as an
``EntryError`` (field, code, params; texts ``manual.error.<code>``): a user's mistake is never
an exception.

A valid entry goes through the same path as an instrument's result (``gateway.ingest``):
method ``manual``, ``performed_by`` the person, ``operator_id`` their operator ID on that
instrument (else their person ID), the same rules in the same transaction. So with ``[people]
enforce = true`` an uncertified person's entry is held ``uncertified_operator`` and a
trainee's waits for a co-signature; and whatever ``enforce`` says, a manual entry waits for a
second person's verification (``gateway.rules.people.verification_rule``). The arrival is
audited ``result.received`` with the person as actor and the reason "entered by hand".

Why an entry stores a raw record: every result elsewhere points at the raw message it was read
from, stored first, before anything is read from it; an entry keeps that invariant with a
JSON record of what was typed, by whom and when (``raw_messages`` with protocol ``manual``,
``results.raw_message_id`` pointing at it). The record is the evidence a verifier or an
auditor compares the stored result with (the value as typed, "5,2", before it became "5.2"),
and the raw views and the integrity checks need no special case for results without one. The
record's digest is unique per entry (it holds the entry time); duplicates are caught by the
result's fingerprint as for instruments, and refused before anything is written: the same
patient, specimen, test, value and time (an entry's default time is the current minute, so a
form sent twice is one result).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select

from drivers.model import InboundMessage, Method, Observation
from gateway.config import Config, TestConfig
from gateway.ingest import digest, fingerprint, keep_raw, normalise, store_observations
from gateway.lis.oru import ST_MAX
from gateway.model import Params
from gateway.national_id import classify
from gateway.people.roles import Role
from gateway.rule_context import current_context
from gateway.rules import RULES, Rule, RuleContext, context_from_config
from gateway.rules.facts import Facts
from gateway.store.tables import holds, results
from gateway.store.writer import Tx
from gateway.texts import render

#: ``raw_messages.protocol`` of an entry's raw record
PROTOCOL: Final = "manual"
#: the reason on the arrival's audit row
REASON: Final = "entered by hand"
#: who may type a result in: anyone who works with results (admin manages users, not results)
ENTRY_ROLES: Final = frozenset(
    {Role.OPERATOR, Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER}
)
#: the longest value the LIS message can carry (OBX-5 is read as ST)
MAX_VALUE: Final = ST_MAX
MAX_SPECIMEN_ID: Final = 64  # results.specimen_id
MAX_UNIT: Final = 64  # results.unit
MAX_COMMENT: Final = 2000

#: every error code ``check_entry`` and ``enter`` report (catalogue ``manual.error.<code>``)
ERROR_CODES: Final = (
    "required",
    "unknown_instrument",
    "unknown_test",
    "not_allowed",
    "not_a_number",
    "too_low",
    "too_high",
    "wrong_unit",
    "invalid_patient_id",
    "too_long",
    "control_characters",
    "not_a_time",
    "in_future",
    "unknown_person",
    "inactive_person",
    "no_role",
    "duplicate",
)
#: the fields an error may name (the form's inputs; "person" the signed-in person, "entry"
#: the entry as a whole)
FIELDS: Final = (
    "instrument_id",
    "test_code",
    "value",
    "unit",
    "patient_id",
    "specimen_id",
    "performed_at",
    "comment",
    "person",
    "entry",
)

#: what no typed field may hold (``gateway.qc.entry`` checks its fields with these too)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: a number as typed: a decimal point or a decimal comma
NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")
_COMPARATOR = re.compile(r"(>=|<=|<>|>|<|=)?\s*(.*)", re.S)
#: params shown as numbers: bokmål writes them with a decimal comma
_NUMERIC_PARAMS: Final = ("low", "high")


class EntryError(NamedTuple):
    """One mistake in an entry: the field it is in, its code, and what its text names."""

    field: str
    code: str
    params: Params = ()

    def message(self, lang: str) -> str:
        """The mistake in ``lang`` (``manual.error.<code>``; a patient ID's problem nested)."""
        params = dict(self.params)
        if lang == "nb":
            for key in _NUMERIC_PARAMS:
                if key in params:
                    params[key] = params[key].replace(".", ",")
        return render(lang, f"manual.error.{self.code}", params)


@dataclass(frozen=True, slots=True)
class ManualEntry:
    """What the form holds, as typed. ``performed_at``: an aware datetime, an ISO text (a
    time without an offset is the site's local time), or None/"" for now."""

    instrument_id: str
    test_code: str
    value: str
    patient_id: str
    unit: str = ""
    specimen_id: str = ""
    performed_at: datetime | str | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Choice:
    """An instrument/test pair an entry may use, with what the page's inputs need."""

    instrument_id: str
    instrument_name: str
    test_code: str
    test_name: str
    nlk: str
    unit: str
    value_type: str
    #: how the test is usually done (``measured``, ``visual``): the entry itself is ``manual``
    method: str
    allowed_values: tuple[str, ...]
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class Checked:
    """``check_entry``'s verdict: the errors, or the observation the entry becomes."""

    errors: tuple[EntryError, ...]
    observation: Observation | None = None


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """What ``enter`` did: ``errors`` (nothing stored), or the new result's id, its state
    (``held`` for an entry: it waits for verification) and its hold reason codes."""

    errors: tuple[EntryError, ...] = ()
    result_id: int | None = None
    state: str = ""
    holds: tuple[str, ...] = ()
    raw_message_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


# --- the page's choices ----------------------------------------------------------------------


def choices(config: Config) -> list[Choice]:
    """Every instrument/test pair an entry may use, in config order (instruments, then the
    test codes): each configured instrument's own mappings and the site-wide ones (instrument
    "") it has no own mapping for. A disabled instrument is offered too: typing results in is
    what a lab does when its analyser cannot send them."""
    context = context_from_config(config)
    found: list[Choice] = []
    for instrument in config.instruments:
        codes = {t.code for t in config.tests if t.instrument in ("", instrument.id)}
        for code in sorted(codes):
            test = context.find_test(instrument.id, code)
            assert test is not None
            found.append(_choice(instrument.id, instrument.name or instrument.id, test))
    return found


def _choice(instrument_id: str, instrument_name: str, test: TestConfig) -> Choice:
    return Choice(
        instrument_id=instrument_id,
        instrument_name=instrument_name,
        test_code=test.code,
        test_name=test.name or test.code,
        nlk=test.nlk,
        unit=test.unit,
        value_type=test.value_type,
        method=test.method.value,
        allowed_values=tuple(test.allowed_values),
        low=test.low,
        high=test.high,
    )


# --- checking --------------------------------------------------------------------------------


def _error(field: str, code: str, **params: object) -> EntryError:
    return EntryError(field, code, tuple((k, str(v)) for k, v in params.items()))


def _number_text(number: float) -> str:
    return f"{number:g}"


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def check_value(raw: str, test: TestConfig) -> tuple[str, list[EntryError]]:
    """The value as stored (an allowed value's configured spelling, a decimal point), or errors.

    ``allowed_values`` are exhaustive when given (matched ignoring case and spacing), unless
    the test also has ``low``/``high``: then a number in range is accepted too. A test of type
    NM or SN, or with a range, takes a number (SN also a comparator: ``<0,5``).
    """
    value = raw.strip()
    if not value:
        return value, [_error("value", "required")]
    if len(value) > MAX_VALUE:
        return value, [_error("value", "too_long", max=MAX_VALUE)]
    if CONTROL_CHARACTERS.search(value):
        return value, [_error("value", "control_characters")]
    allowed = test.allowed_values
    has_range = test.low is not None or test.high is not None
    if allowed:
        wanted = _folded(value)
        for spelling in allowed:
            if _folded(spelling) == wanted:
                return spelling, []
        if not has_range:
            return value, [_error("value", "not_allowed", allowed=", ".join(allowed))]
    if not has_range and test.value_type not in ("NM", "SN"):
        return value, []  # free text (ST, TX, CE without allowed values)
    comparator, number_text = "", value
    if test.value_type == "SN":
        match = _COMPARATOR.fullmatch(value)
        assert match is not None  # the pattern matches any text
        comparator, number_text = match.group(1) or "", match.group(2).strip()
    if not NUMBER.fullmatch(number_text):
        if allowed:
            return value, [_error("value", "not_allowed", allowed=", ".join(allowed))]
        return value, [_error("value", "not_a_number")]
    number_text = number_text.replace(",", ".")
    number = float(number_text)
    if test.low is not None and number < test.low:
        return value, [_error("value", "too_low", low=_number_text(test.low))]
    if test.high is not None and number > test.high:
        return value, [_error("value", "too_high", high=_number_text(test.high))]
    return comparator + number_text, []


def _check_unit(raw: str, test: TestConfig) -> tuple[str, list[EntryError]]:
    """The test's unit when it has one (an empty input means it); else the unit as typed."""
    unit = raw.strip()
    if test.unit:
        if unit and unit != test.unit:
            return unit, [_error("unit", "wrong_unit", unit=test.unit)]
        return test.unit, []
    if len(unit) > MAX_UNIT:
        return unit, [_error("unit", "too_long", max=MAX_UNIT)]
    if CONTROL_CHARACTERS.search(unit):
        return unit, [_error("unit", "control_characters")]
    return unit, []


def _check_patient(raw: str, context: RuleContext, specimen_id: str) -> list[EntryError]:
    patient_id = raw.strip()
    if not patient_id:
        # a site that sends results by specimen ID alone still needs one of the two
        if context.require_patient_id:
            return [_error("patient_id", "required")]
        return [] if specimen_id else [_error("specimen_id", "required")]
    check = classify(
        patient_id,
        allow_synthetic=context.allow_synthetic_ids,
        accept_2032_rule=context.accept_2032_ids,
    )
    if check.valid:
        return []
    # the params never hold the number itself (the text is shown beside the input)
    params = (("kind", check.kind or "unknown"), ("problem", check.code), *check.params)
    return [EntryError("patient_id", "invalid_patient_id", params)]


def _check_specimen(raw: str) -> list[EntryError]:
    specimen_id = raw.strip()
    if len(specimen_id) > MAX_SPECIMEN_ID:
        return [_error("specimen_id", "too_long", max=MAX_SPECIMEN_ID)]
    if CONTROL_CHARACTERS.search(specimen_id):
        return [_error("specimen_id", "control_characters")]
    return []


def check_instrument(instrument_id: str, context: RuleContext) -> list[EntryError]:
    """``instrument_id`` (stripped) names a configured instrument."""
    if not instrument_id:
        return [_error("instrument_id", "required")]
    if instrument_id not in context.drivers:
        return [_error("instrument_id", "unknown_instrument", instrument=instrument_id)]
    return []


def check_comment(comment: str) -> list[EntryError]:
    """``comment`` (stripped) is not too long."""
    if len(comment) > MAX_COMMENT:
        return [_error("comment", "too_long", max=MAX_COMMENT)]
    return []


def performed_time(
    given: datetime | str | None, now: datetime, zone: ZoneInfo
) -> tuple[datetime | None, list[EntryError]]:
    """When the entry says it was performed, aware, or an error. Default: ``now`` to the
    minute (the precision of the form's input, and what makes a form sent twice one result).
    A time without an offset is wall-clock time in ``zone``."""
    if given is None or (isinstance(given, str) and not given.strip()):
        return now.replace(second=0, microsecond=0), []
    if isinstance(given, str):
        try:
            at = datetime.fromisoformat(given.strip())
        except ValueError:
            return None, [_error("performed_at", "not_a_time")]
    else:
        at = given
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    if at > now:
        return None, [_error("performed_at", "in_future")]
    return at, []


def check_person(person: str, facts: Facts) -> list[EntryError]:
    """Whether ``person`` may type anything in: known, active, with a role that works with
    results (``gateway.qc.entry`` adds its certification check)."""
    known = facts.people.get(person)
    if known is None:
        return [_error("person", "unknown_person", person=person)]
    if not known.active:
        return [_error("person", "inactive_person", person=person)]
    if known.roles.isdisjoint(ENTRY_ROLES):
        return [_error("person", "no_role", person=person)]
    return []


def operator_id_for(facts: Facts, person: str, instrument_id: str) -> str:
    """``person``'s operator ID on ``instrument_id`` (one for that instrument first, then one
    for every instrument); their person ID when they have none."""
    specific: list[str] = []
    anywhere: list[str] = []
    for (instrument, operator), who in facts.operators.items():
        if who != person:
            continue
        if instrument == instrument_id:
            specific.append(operator)
        elif instrument == "":
            anywhere.append(operator)
    return min(specific or anywhere or [person])


def check_entry(entry: ManualEntry, person: str, context: RuleContext, now: datetime) -> Checked:
    """Every mistake in ``entry`` typed by ``person`` (``context.facts`` must hold the
    people), or the observation it becomes. Pure: ``now`` is when it is checked."""
    errors = check_person(person, context.facts)
    instrument_id, test_code = entry.instrument_id.strip(), entry.test_code.strip()
    test: TestConfig | None = None
    errors += check_instrument(instrument_id, context)
    if not test_code:
        errors.append(_error("test_code", "required"))
    elif instrument_id in context.drivers:
        test = context.find_test(instrument_id, test_code)
        if test is None:
            errors.append(
                _error("test_code", "unknown_test", instrument=instrument_id, test=test_code)
            )
    value, unit = entry.value.strip(), entry.unit.strip()
    if test is not None:
        value, value_errors = check_value(entry.value, test)
        unit, unit_errors = _check_unit(entry.unit, test)
        errors += value_errors + unit_errors
    elif not value:
        errors.append(_error("value", "required"))
    specimen_id = entry.specimen_id.strip()
    errors += _check_specimen(entry.specimen_id)
    errors += _check_patient(entry.patient_id, context, specimen_id)
    performed_at, time_errors = performed_time(entry.performed_at, now, context.zone)
    errors += time_errors
    comment = entry.comment.strip()
    errors += check_comment(comment)
    if errors:
        return Checked(tuple(errors))
    assert test is not None and performed_at is not None
    return Checked(
        (),
        Observation(
            instrument_id=instrument_id,
            test_code=test.code,
            value=value,
            value_type=test.value_type,
            unit=unit,
            method=Method.MANUAL,
            performed_at=performed_at,
            operator_id=operator_id_for(context.facts, person, instrument_id),
            specimen_id=specimen_id,
            patient_id=entry.patient_id.strip(),
            comment=comment,
        ),
    )


# --- storing ---------------------------------------------------------------------------------


def typed_time(typed: datetime | str | None) -> str:
    """A typed ``performed_at`` as the raw record keeps it ("" for none)."""
    return typed.isoformat() if isinstance(typed, datetime) else typed or ""


def entry_record(
    kind: str,
    person: str,
    observation: Observation,
    now: datetime,
    typed: Mapping[str, str],
    **more: object,
) -> bytes:
    """A typed entry's raw record (``gateway.qc.entry`` writes its own ``kind`` with it): who,
    when, when it says it was done, what was ``typed``, and ``more``; sorted keys, UTF-8."""
    record = {
        "kind": kind,
        "person": person,
        "entered_at": now.isoformat(),
        "performed_at": observation.performed_at.isoformat() if observation.performed_at else "",
        "typed": dict(typed),
        **more,
    }
    return json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")


def raw_record(entry: ManualEntry, person: str, observation: Observation, now: datetime) -> bytes:
    """The entry's raw record: what was typed, by whom, when, and when it says it was done."""
    typed = {
        "instrument_id": entry.instrument_id,
        "test_code": entry.test_code,
        "value": entry.value,
        "unit": entry.unit,
        "patient_id": entry.patient_id,
        "specimen_id": entry.specimen_id,
        "performed_at": typed_time(entry.performed_at),
        "comment": entry.comment,
    }
    return entry_record("manual_entry", person, observation, now, typed)


def keep_entry_raw(tx: Tx, protocol: str, observation: Observation, raw: bytes) -> int:
    """Store an entry's raw record as a raw message (raw first, as for an instrument's
    message) before its observation is stored; the raw message's id."""
    message = InboundMessage(
        instrument_id=observation.instrument_id,
        protocol=protocol,
        raw=raw,
        received_at=tx.now,
        observations=(observation,),
    )
    return keep_raw(tx, message, digest(raw))


def enter(
    tx: Tx,
    entry: ManualEntry,
    person: str,
    base: RuleContext,
    rules: Sequence[Rule] = RULES,
) -> EntryOutcome:
    """The writer job of one entry by ``person`` (the signed-in person): check it against the
    config in ``base`` and the store's people as they are now, refuse a duplicate, then store
    the raw record and the result through ingest, in ``tx``."""
    context = current_context(tx, base)
    checked = check_entry(entry, person, context, tx.now)
    if checked.errors or checked.observation is None:
        return EntryOutcome(errors=checked.errors)
    observation = checked.observation
    result_print = fingerprint(replace(normalise(observation, context), performed_by=person))
    earlier = tx.conn.execute(
        select(results.c.id).where(results.c.fingerprint == result_print)
    ).scalar()
    if earlier is not None:
        return EntryOutcome(errors=(_error("entry", "duplicate", result_id=earlier),))
    raw = raw_record(entry, person, observation, tx.now)
    raw_id = keep_entry_raw(tx, PROTOCOL, observation, raw)
    store_observations(
        tx, raw_id, (observation,), context, rules, actor=person, reason=REASON, performed_by=person
    )
    row = tx.conn.execute(
        select(results.c.id, results.c.state).where(results.c.fingerprint == result_print)
    ).one()
    reasons = tx.conn.execute(
        select(holds.c.reason).where(holds.c.result_id == row.id).order_by(holds.c.id)
    ).scalars()
    return EntryOutcome(
        result_id=int(row.id), state=str(row.state), holds=tuple(reasons), raw_message_id=raw_id
    )


def entry_job(
    entry: ManualEntry, person: str, base: RuleContext, rules: Sequence[Rule] = RULES
) -> Callable[[Tx], EntryOutcome]:
    """``enter`` as a writer job (``await web.write(entry_job(...))``, ``run_in_transaction``)."""
    return lambda tx: enter(tx, entry, person, base, rules)


def error_messages(errors: Iterable[EntryError], lang: str) -> Mapping[str, list[str]]:
    """The errors' texts in ``lang`` by field, for a form that shows them beside its inputs."""
    out: dict[str, list[str]] = {}
    for error in errors:
        out.setdefault(error.field, []).append(error.message(lang))
    return out
