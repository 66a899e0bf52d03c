"""EQA (EKV) rounds, their samples and split samples in the store: the commands (each a
function of ``Tx``, audited) and the reads the pages and the CLI show.

The rules (the round's moves, the grades, the split-sample difference) are
``gateway.qc.eqa``'s; this module checks who acts (``EQA_MANAGERS`` register rounds and
record assessments, ``EQA_ENTRY`` enter values, answer and record split samples) and writes.
Answering a round, recording an assessment and recording a split sample are electronic
signatures: the caller has checked the password; the ``signatures`` row is written here in
the same transaction as the action.

An EQA sample is measured like a patient sample. Linking it to that result (by specimen ID)
copies the value into the round and changes nothing on the result: whether the result goes
to the LIS is the site's routine. Labs run EQA samples under a dedicated patient ID or a
specimen-ID prefix the LIS recognises (Noklus' advice), so the value never lands in a
patient's record; the gateway does not guess which results are EQA samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy import Connection, and_, func, insert, select, update

from gateway import deviations
from gateway.deviations.categories import Category
from gateway.model import Deviation
from gateway.people.roles import Role, parse_roles
from gateway.qc.eqa import (
    EQA_ENTRY,
    EQA_MANAGERS,
    QUALITIES,
    Assessment,
    EqaRuleError,
    RoundState,
    SplitJudgement,
    check_move,
    judge_split,
)
from gateway.store.signatures import add_signature
from gateway.store.tables import eqa_rounds, eqa_samples, results, split_samples, users
from gateway.store.writer import Tx

#: a text field's longest accepted length (the columns' sizes)
SHORT: Final = 64
SCHEME_CHARS: Final = 128
NOTE_CHARS: Final = 2000

EqaRefused = EqaRuleError  # the same error: a rule of the round, or who may act


def _signer_roles(conn: Connection, person: str) -> frozenset[Role]:
    query = select(users.c.roles, users.c.active).where(users.c.person == person)
    row = conn.execute(query).first()
    if row is None:
        raise EqaRefused("unknown_person")
    if not row.active:
        raise EqaRefused("inactive")
    return parse_roles(str(row.roles))


def _require(tx: Tx, person: str, allowed: Iterable[Role]) -> None:
    if _signer_roles(tx.conn, person).isdisjoint(allowed):
        raise EqaRefused("no_role")


def _text(value: str, limit: int, *, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise EqaRefused("empty")
    if len(cleaned) > limit:
        raise EqaRefused("too_long")
    return cleaned


def _round(conn: Connection, round_id: int) -> Any:
    row = conn.execute(select(eqa_rounds).where(eqa_rounds.c.id == round_id)).first()
    if row is None:
        raise EqaRefused("not_found")
    return row


def _sample(conn: Connection, sample_id: int) -> Any:
    row = conn.execute(select(eqa_samples).where(eqa_samples.c.id == sample_id)).first()
    if row is None:
        raise EqaRefused("not_found")
    return row


# --- commands --------------------------------------------------------------------------------


def register_round(
    tx: Tx,
    *,
    scheme: str,
    shipment: str,
    instrument_id: str,
    actor: str,
    provider: str = "Noklus",
    received_on: date | None = None,
    due_on: date | None = None,
    samples: Sequence[tuple[str, str]] = (),
) -> int:
    """Register a round (state registered) with its samples ``(label, test code)``; its id."""
    _require(tx, actor, EQA_MANAGERS)
    values = {
        "scheme": _text(scheme, SCHEME_CHARS),
        "provider": _text(provider, SHORT),
        "shipment": _text(shipment, SHORT),
        "instrument_id": _text(instrument_id, SHORT),
    }
    if received_on and due_on and due_on < received_on:
        raise EqaRefused("due_before_received")
    exists = tx.conn.execute(
        select(eqa_rounds.c.id).where(
            eqa_rounds.c.provider == values["provider"],
            eqa_rounds.c.shipment == values["shipment"],
            eqa_rounds.c.instrument_id == values["instrument_id"],
        )
    ).first()
    if exists is not None:
        raise EqaRefused("duplicate")
    check_move(None, RoundState.REGISTERED)
    round_id = int(
        tx.conn.execute(
            insert(eqa_rounds).returning(eqa_rounds.c.id),
            {
                **values,
                "received_on": received_on,
                "due_on": due_on,
                "state": RoundState.REGISTERED.value,
                "created_at": tx.now,
                "created_by": actor,
            },
        ).scalar_one()
    )
    tx.audit(
        actor=actor,
        action="eqa.registered",
        entity="eqa_round",
        entity_id=round_id,
        after={**values, "state": RoundState.REGISTERED.value},
    )
    for label, test_code in samples:
        _insert_sample(tx, round_id, label, test_code, "", actor)
    tx.event("eqa", values["instrument_id"], {"round": round_id, "state": "registered"})
    return round_id


def _insert_sample(tx: Tx, round_id: int, label: str, test_code: str, unit: str, actor: str) -> int:
    sample = _text(label, SHORT)
    test = _text(test_code, SHORT)
    exists = tx.conn.execute(
        select(eqa_samples.c.id).where(
            eqa_samples.c.round_id == round_id,
            eqa_samples.c.sample == sample,
            eqa_samples.c.test_code == test,
        )
    ).first()
    if exists is not None:
        raise EqaRefused("duplicate_sample")
    sample_id = int(
        tx.conn.execute(
            insert(eqa_samples).returning(eqa_samples.c.id),
            {
                "round_id": round_id,
                "sample": sample,
                "test_code": test,
                "unit": _text(unit, SHORT, required=False),
            },
        ).scalar_one()
    )
    tx.audit(
        actor=actor,
        action="eqa.sample_added",
        entity="eqa_sample",
        entity_id=sample_id,
        after={"round": round_id, "sample": sample, "test": test},
    )
    return sample_id


def add_sample(
    tx: Tx, round_id: int, *, sample: str, test_code: str, actor: str, unit: str = ""
) -> int:
    """Add a sample (label and test) to a registered round; its id."""
    _require(tx, actor, EQA_MANAGERS)
    row = _round(tx.conn, round_id)
    if row.state != RoundState.REGISTERED:
        raise EqaRefused(f"state_{row.state}")
    return _insert_sample(tx, round_id, sample, test_code, unit, actor)


def _editable_sample(tx: Tx, sample_id: int, actor: str) -> tuple[Any, Any]:
    _require(tx, actor, EQA_ENTRY)
    sample = _sample(tx.conn, sample_id)
    parent = _round(tx.conn, int(sample.round_id))
    if parent.state != RoundState.REGISTERED:
        raise EqaRefused(f"state_{parent.state}")  # the answer was sent: values stay as sent
    return sample, parent


def find_result(conn: Connection, instrument_id: str, test_code: str, specimen_id: str) -> Any:
    """The newest result of ``test_code`` on ``instrument_id`` for ``specimen_id`` (None)."""
    return conn.execute(
        select(results.c.id, results.c.value, results.c.unit)
        .where(
            results.c.instrument_id == instrument_id,
            results.c.specimen_id == specimen_id,
            results.c.test_code == test_code,
        )
        .order_by(results.c.id.desc())
        .limit(1)
    ).first()


def link_sample(tx: Tx, sample_id: int, *, specimen_id: str, actor: str) -> int:
    """Link a sample to the result measured under ``specimen_id`` on the round's instrument
    (the newest, for the sample's test): its value and unit become the answer. The result
    itself is not changed. The result's id."""
    sample, parent = _editable_sample(tx, sample_id, actor)
    specimen = _text(specimen_id, SHORT)
    found = find_result(tx.conn, str(parent.instrument_id), str(sample.test_code), specimen)
    if found is None:
        raise EqaRefused("no_result")
    before = {"value": sample.value, "unit": sample.unit, "result": sample.result_id}
    tx.conn.execute(
        update(eqa_samples)
        .where(eqa_samples.c.id == sample_id)
        .values(result_id=found.id, value=found.value, unit=found.unit or sample.unit)
    )
    tx.audit(
        actor=actor,
        action="eqa.sample_linked",
        entity="eqa_sample",
        entity_id=sample_id,
        before=before,
        after={"value": found.value, "unit": found.unit, "result": int(found.id)},
    )
    return int(found.id)


def enter_value(tx: Tx, sample_id: int, *, value: str, actor: str, unit: str | None = None) -> None:
    """Type a sample's value in (a measurement not received from the instrument); any link
    to a result is dropped."""
    sample, _ = _editable_sample(tx, sample_id, actor)
    typed = _text(value, SHORT)
    new_unit = sample.unit if unit is None else _text(unit, SHORT, required=False)
    tx.conn.execute(
        update(eqa_samples)
        .where(eqa_samples.c.id == sample_id)
        .values(value=typed, unit=new_unit, result_id=None)
    )
    tx.audit(
        actor=actor,
        action="eqa.value_entered",
        entity="eqa_sample",
        entity_id=sample_id,
        before={"value": sample.value, "unit": sample.unit, "result": sample.result_id},
        after={"value": typed, "unit": new_unit, "result": None},
    )


def answer_round(tx: Tx, round_id: int, *, actor: str, comment: str = "") -> int:
    """Sign that the round's values were answered to the programme (registered -> answered);
    every sample needs a value. The signature's id."""
    _require(tx, actor, EQA_ENTRY)
    parent = _round(tx.conn, round_id)
    check_move(RoundState(parent.state), RoundState.ANSWERED)
    rows = tx.conn.execute(
        select(eqa_samples).where(eqa_samples.c.round_id == round_id).order_by(eqa_samples.c.id)
    ).all()
    if not rows:
        raise EqaRefused("no_samples")
    if any(not r.value for r in rows):
        raise EqaRefused("no_value")
    note = _text(comment, NOTE_CHARS, required=False)
    answered = {f"{r.sample}/{r.test_code}": f"{r.value} {r.unit}".strip() for r in rows}
    signature = add_signature(
        tx,
        person=actor,
        meaning="eqa_answer",
        result_id=None,
        comment=note,
        detail={"round": round_id, "shipment": parent.shipment, "values": answered},
    )
    tx.conn.execute(
        update(eqa_rounds)
        .where(eqa_rounds.c.id == round_id, eqa_rounds.c.state == RoundState.REGISTERED.value)
        .values(state=RoundState.ANSWERED.value, answered_at=tx.now, answered_by=actor)
    )
    tx.audit(
        actor=actor,
        action="eqa.answered",
        entity="eqa_round",
        entity_id=round_id,
        reason=note,
        before={"state": parent.state},
        after={"state": RoundState.ANSWERED.value, "signature": signature, "values": answered},
    )
    tx.event("eqa", str(parent.instrument_id), {"round": round_id, "state": "answered"})
    return signature


@dataclass(frozen=True, slots=True)
class Assessed:
    """What recording one sample's assessment did."""

    signature_id: int
    deviation_id: int | None
    #: the round's state after it (assessed once every sample is)
    round_state: RoundState


def assess_sample(
    tx: Tx,
    sample_id: int,
    *,
    grades: Assessment,
    actor: str,
    target_value: str = "",
    note: str = "",
) -> Assessed:
    """Record the programme's assessment of one sample of an answered round (signed). A poor
    grade opens a deviation (quality, ``eqa_poor``); when every sample is assessed the round
    moves answered -> assessed."""
    _require(tx, actor, EQA_MANAGERS)
    sample = _sample(tx.conn, sample_id)
    round_id = int(sample.round_id)
    parent = _round(tx.conn, round_id)
    if parent.state != RoundState.ANSWERED:
        raise EqaRefused(f"state_{parent.state}")
    if any(getattr(sample, q) for q in QUALITIES):
        raise EqaRefused("already_assessed")
    target = _text(target_value, SHORT, required=False)
    comment = _text(note, NOTE_CHARS, required=False)
    graded = {q: (g.value if g else "") for q, g in zip(QUALITIES, _grades(grades), strict=True)}
    signature = add_signature(
        tx,
        person=actor,
        meaning="eqa_assess",
        result_id=sample.result_id,
        comment=comment,
        detail={
            "round": round_id,
            "sample": sample.sample,
            "test": sample.test_code,
            "value": sample.value,
            "target": target,
            **graded,
        },
    )
    deviation_id = None
    if grades.poor:
        deviation_id = deviations.record(
            tx,
            Deviation(
                kind="eqa_poor",
                category=Category.QUALITY.value,
                summary=(
                    f"EQA {parent.provider} {parent.scheme} shipment {parent.shipment}, sample "
                    f"{sample.sample} ({sample.test_code} on {parent.instrument_id}): poor "
                    f"{', '.join(grades.poor)}"
                ),
                detail=(
                    f"answered {sample.value} {sample.unit}".rstrip()
                    + (f", target {target}" if target else "")
                    + (f"; {comment}" if comment else "")
                    + "; follow up: find the cause, correct it, and document it (DOMAIN rule 9)"
                ),
                instrument_id=str(parent.instrument_id),
                result_id=sample.result_id,
            ),
            actor=actor,
        )
    tx.conn.execute(
        update(eqa_samples)
        .where(eqa_samples.c.id == sample_id)
        .values(**graded, target_value=target, deviation_id=deviation_id)
    )
    tx.audit(
        actor=actor,
        action="eqa.assessed",
        entity="eqa_sample",
        entity_id=sample_id,
        reason=comment,
        after={**graded, "target": target, "signature": signature, "deviation": deviation_id},
    )
    state = RoundState.ANSWERED
    left = tx.conn.execute(
        select(func.count())
        .select_from(eqa_samples)
        .where(
            eqa_samples.c.round_id == round_id,
            and_(*(getattr(eqa_samples.c, q) == "" for q in QUALITIES)),
        )
    ).scalar_one()
    if left == 0:
        check_move(RoundState.ANSWERED, RoundState.ASSESSED)
        tx.conn.execute(
            update(eqa_rounds)
            .where(eqa_rounds.c.id == round_id)
            .values(
                state=RoundState.ASSESSED.value,
                assessed_at=tx.now,
                assessed_by=actor,
                assessment_note=comment or parent.assessment_note,
            )
        )
        tx.audit(
            actor=actor,
            action="eqa.round_assessed",
            entity="eqa_round",
            entity_id=round_id,
            before={"state": RoundState.ANSWERED.value},
            after={"state": RoundState.ASSESSED.value},
        )
        state = RoundState.ASSESSED
    tx.event(
        "eqa",
        str(parent.instrument_id),
        {"round": round_id, "sample": sample_id, "state": state.value, "poor": list(grades.poor)},
    )
    return Assessed(signature, deviation_id, state)


def _grades(grades: Assessment) -> tuple[Any, ...]:
    return (grades.trueness, grades.accuracy, grades.precision)


@dataclass(frozen=True, slots=True)
class SplitRecorded:
    split_id: int
    judgement: SplitJudgement
    signature_id: int
    deviation_id: int | None
    result_id: int | None


def record_split(
    tx: Tx,
    *,
    instrument_id: str,
    test_code: str,
    sample: str,
    central_value: str,
    allowed_percent: float | None,
    actor: str,
    local_value: str = "",
    specimen_id: str = "",
    measured_on: date | None = None,
) -> SplitRecorded:
    """Record a split sample (signed): the local value typed in, or the result measured under
    ``specimen_id`` on ``instrument_id``; judged against the central lab's value. Outside the
    allowed difference opens a deviation (quality, ``split_sample``)."""
    _require(tx, actor, EQA_ENTRY)
    instrument = _text(instrument_id, SHORT)
    test = _text(test_code, SHORT)
    label = _text(sample or specimen_id, SHORT)
    result_id: int | None = None
    local = local_value.strip()
    if specimen_id.strip():
        found = find_result(tx.conn, instrument, test, _text(specimen_id, SHORT))
        if found is None:
            raise EqaRefused("no_result")
        result_id, local = int(found.id), str(found.value)
    judged = judge_split(_text(local, SHORT), _text(central_value, SHORT), allowed_percent)
    values = {
        "instrument_id": instrument,
        "test_code": test,
        "sample": label,
        "result_id": result_id,
        "local_value": str(judged.local),
        "central_value": str(judged.central),
        "allowed_percent": str(judged.allowed_percent),
        "difference_percent": judged.difference_text,
        "within": judged.within,
        "measured_on": measured_on,
    }
    signature = add_signature(
        tx,
        person=actor,
        meaning="split_sample",
        result_id=result_id,
        detail={k: v for k, v in values.items() if k != "measured_on"}
        | {"measured_on": measured_on.isoformat() if measured_on else ""},
    )
    deviation_id = None
    if not judged.within:
        deviation_id = deviations.record(
            tx,
            Deviation(
                kind="split_sample",
                category=Category.QUALITY.value,
                summary=(
                    f"Split sample {label} ({test} on {instrument}): {judged.difference_text} % "
                    f"from the central lab, allowed ±{judged.allowed_percent} %"
                ),
                detail=(
                    f"local {judged.local}, central {judged.central}; check the instrument's "
                    "QC and calibration, and document what was done"
                ),
                instrument_id=instrument,
                result_id=result_id,
            ),
            actor=actor,
        )
    split_id = int(
        tx.conn.execute(
            insert(split_samples).returning(split_samples.c.id),
            {**values, "recorded_at": tx.now, "recorded_by": actor, "deviation_id": deviation_id},
        ).scalar_one()
    )
    tx.audit(
        actor=actor,
        action="eqa.split_recorded",
        entity="split_sample",
        entity_id=split_id,
        after={
            "difference_percent": judged.difference_text,
            "allowed_percent": str(judged.allowed_percent),
            "within": judged.within,
            "signature": signature,
            "deviation": deviation_id,
        },
    )
    tx.event(
        "split_sample",
        instrument,
        {"id": split_id, "test": test, "within": judged.within, "deviation": deviation_id},
    )
    return SplitRecorded(split_id, judged, signature, deviation_id, result_id)


# --- reads -----------------------------------------------------------------------------------


def _round_dict(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "scheme": row.scheme,
        "provider": row.provider,
        "shipment": row.shipment,
        "instrument": row.instrument_id,
        "received_on": row.received_on,
        "due_on": row.due_on,
        "state": row.state,
        "answered_at": row.answered_at,
        "answered_by": row.answered_by,
        "assessed_at": row.assessed_at,
        "assessed_by": row.assessed_by,
        "assessment_note": row.assessment_note,
        "created_at": row.created_at,
        "created_by": row.created_by,
    }


def _sample_dict(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "round_id": int(row.round_id),
        "sample": row.sample,
        "test": row.test_code,
        "result_id": row.result_id,
        "value": row.value,
        "unit": row.unit,
        "target_value": row.target_value,
        "trueness": row.trueness,
        "accuracy": row.accuracy,
        "precision": row.precision,
        "deviation_id": row.deviation_id,
        "assessed": any(getattr(row, q) for q in QUALITIES),
    }


_COUNTS: Final = ("samples", "valued", "assessed", "poor")


def list_rounds(conn: Connection, *, instrument_id: str = "") -> list[dict[str, Any]]:
    """Every round, newest first, with counts of its samples (valued, assessed, poor)."""
    query = select(eqa_rounds).order_by(eqa_rounds.c.id.desc())
    if instrument_id:
        query = query.where(eqa_rounds.c.instrument_id == instrument_id)
    rounds = [_round_dict(r) for r in conn.execute(query)]
    counts: dict[int, dict[str, int]] = {}
    for s in conn.execute(select(eqa_samples)):
        c = counts.setdefault(int(s.round_id), dict.fromkeys(_COUNTS, 0))
        c["samples"] += 1
        c["valued"] += bool(s.value)
        c["assessed"] += any(getattr(s, q) for q in QUALITIES)
        c["poor"] += any(getattr(s, q) == "poor" for q in QUALITIES)
    for r in rounds:
        r.update(counts.get(r["id"], dict.fromkeys(_COUNTS, 0)))
    return rounds


def get_round(conn: Connection, round_id: int) -> dict[str, Any] | None:
    """One round with its samples (oldest first; a linked sample names its result's
    specimen ID), or None."""
    row = conn.execute(select(eqa_rounds).where(eqa_rounds.c.id == round_id)).first()
    if row is None:
        return None
    found = _round_dict(row)
    rows = conn.execute(
        select(eqa_samples, results.c.specimen_id)
        .select_from(eqa_samples.outerjoin(results, results.c.id == eqa_samples.c.result_id))
        .where(eqa_samples.c.round_id == round_id)
        .order_by(eqa_samples.c.id)
    ).all()
    found["samples"] = [_sample_dict(r) | {"specimen": r.specimen_id or ""} for r in rows]
    return found


def sample_ids(conn: Connection, round_id: int) -> dict[tuple[str, str], int]:
    """A round's samples by (label, test code)."""
    return {
        (r.sample, r.test_code): int(r.id)
        for r in conn.execute(
            select(eqa_samples.c.id, eqa_samples.c.sample, eqa_samples.c.test_code).where(
                eqa_samples.c.round_id == round_id
            )
        )
    }


def list_splits(
    conn: Connection, *, instrument_id: str = "", limit: int = 200
) -> list[dict[str, Any]]:
    """Recorded split samples, newest first."""
    query = select(split_samples).order_by(split_samples.c.id.desc()).limit(limit)
    if instrument_id:
        query = query.where(split_samples.c.instrument_id == instrument_id)
    return [
        {
            "id": int(r.id),
            "instrument": r.instrument_id,
            "test": r.test_code,
            "sample": r.sample,
            "result_id": r.result_id,
            "local_value": r.local_value,
            "central_value": r.central_value,
            "allowed_percent": r.allowed_percent,
            "difference_percent": r.difference_percent,
            "within": bool(r.within),
            "measured_on": r.measured_on,
            "recorded_at": r.recorded_at,
            "recorded_by": r.recorded_by,
            "deviation_id": r.deviation_id,
        }
        for r in conn.execute(query)
    ]
