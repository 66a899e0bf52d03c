"""Walking the records of one E1394 message: the one-sample layout of point-of-care analysers
(H, P, O, R..., L) and the many-sample layout of haematology analysers; pure functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from drivers.analysers.astm_base import (
    Extra,
    comment_text,
    field_error,
    first_patient_id,
    measured_at,
    parse_astm_datetime,
    universal_test_code,
)
from drivers.model import Method, Observation
from drivers.protocols.astm.records import Record

# ---------------------------------------------------------------------------------------------
# Messages of one sample (point-of-care analysers): H, P, O, R..., L
# ---------------------------------------------------------------------------------------------


def message_header(records: Sequence[Record]) -> Record:
    """The H record a message must start with; ``RemoteProtocolError`` on field H otherwise."""
    if not records or records[0].type != "H":
        raise field_error("H", "a message must start with its H record", "")
    return records[0]


def message_body(records: Sequence[Record]) -> Iterator[Record]:
    """The records after the H record up to the L record; a second H record is refused."""
    for record in records[1:]:
        if record.type == "H":
            raise field_error("H", "a second H record inside one message", records[0].value(5))
        if record.type == "L":
            return
        yield record


@dataclass(frozen=True, slots=True)
class ResultContext:
    """What the P and O records say about the results that follow them.

    The patient ID is dropped, and the control's lot and level kept, only when ``is_qc``.
    """

    specimen_id: str = ""
    patient_id: str = ""
    is_qc: bool = False
    control_lot: str = ""
    control_level: str = ""
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class ResultRules:
    """What one analyser's R records may hold, and the names of its tests."""

    #: (R.4 text, field name) -> (value, HL7 value type), or ``RemoteProtocolError``
    read_value: Callable[[str, str], tuple[str, str]]
    flags: frozenset[str]
    statuses: frozenset[str]
    test_names: Mapping[str, str]
    flag_problem: str = ""
    status_problem: str = ""
    #: where the time of measurement is read: the first one sent (R.13 completed, R.12 started)
    time_fields: tuple[int, ...] = (13,)


@dataclass(frozen=True, slots=True)
class MessageSource:
    """Who sent a message, and when: the instrument, H.5.3 its serial, H.14 the time sent."""

    instrument_id: str
    serial: str
    sent_at: datetime | None

    @classmethod
    def read(cls, instrument_id: str, header: Record) -> MessageSource:
        sent_at = parse_astm_datetime(header.value(14), field="H.14")
        return cls(instrument_id, header.value(5, 0, 2).strip(), sent_at)


def read_result(
    record: Record, rules: ResultRules, context: ResultContext, source: MessageSource
) -> Observation:
    """One R record -> an observation, or ``RemoteProtocolError`` naming the bad field."""
    code = universal_test_code(record, 3)
    if not code:
        raise field_error("R.3", "result has no test code", record.value(3))
    value, value_type = rules.read_value(record.value(4), "R.4")
    flag = record.value(7).strip()
    if flag and flag not in rules.flags:
        problem = rules.flag_problem or f"abnormal flag is not one of {sorted(rules.flags)}"
        raise field_error("R.7", problem, flag)
    status = record.value(9).strip() or "F"
    if status not in rules.statuses:
        problem = rules.status_problem or f"result status is not one of {sorted(rules.statuses)}"
        raise field_error("R.9", problem, status)
    qc = context.is_qc
    return Observation(
        instrument_id=source.instrument_id,
        test_code=code,
        value=value,
        value_type=value_type,
        unit=record.value(5).strip(),
        reference_range=record.value(6).strip(),
        abnormal_flags=(flag,) if flag else (),
        method=Method.MEASURED,
        performed_at=measured_at(record, rules.time_fields) or source.sent_at,
        operator_id=record.value(11).strip(),
        specimen_id=context.specimen_id,
        patient_id="" if qc else context.patient_id,
        result_status=status,
        instrument_serial=source.serial,
        test_name=rules.test_names.get(code, ""),
        is_qc=qc,
        control_lot=context.control_lot if qc else "",
        control_level=context.control_level if qc else "",
        extra=context.extra,
    )


# ---------------------------------------------------------------------------------------------
# Messages of many samples (haematology): H, then P, O, R and C records per sample, L
# ---------------------------------------------------------------------------------------------

#: Records after which the results that follow belong to another sample.
_CLOSES_SAMPLE = frozenset("HPOL")


@dataclass(slots=True)
class SampleResults:
    """One O record's sample, and the results and sample-level facts that follow it."""

    specimen_id: str = ""
    patient_id: str = ""
    is_qc: bool = False
    control_lot: str = ""
    control_level: str = ""
    extra: list[tuple[str, str]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    _last_kept: bool = False

    def add(self, observation: Observation | None) -> None:
        """Keep a result's observation; None (a skipped record) leaves nothing to comment on."""
        self._last_kept = observation is not None
        if observation is not None:
            self.observations.append(observation)

    def comment_on_last(self, text: str) -> bool:
        """Attach a C record to the result just before it; False when that one was skipped."""
        if not self._last_kept:
            return False
        last = self.observations[-1]
        comment = f"{last.comment}\n{text}" if last.comment else text
        self.observations[-1] = replace(last, comment=comment)
        return True

    def shared_extra(self) -> Extra:
        """What every observation of the sample carries in ``extra``."""
        return tuple(self.extra)

    def finish(self) -> Iterator[Observation]:
        """The sample's observations with the sample-level facts attached."""
        shared = self.shared_extra()
        for obs in self.observations:
            yield replace(obs, extra=shared + obs.extra) if shared else obs


HeaderT = TypeVar("HeaderT")
SampleT = TypeVar("SampleT", bound=SampleResults)


def observations_by_sample(
    records: Sequence[Record],
    *,
    read_header: Callable[[Record], HeaderT],
    read_order: Callable[[Record, str, HeaderT], SampleT],
    read_result: Callable[[Record, SampleT, HeaderT], Observation | None],
    code_component: int,
    read_other: Callable[[Record, SampleT], None] | None = None,
) -> tuple[Observation, ...]:
    """Map a message (H..L) whose O records each open a sample, result by result.

    A C record after an R comments on that result, after an O on the sample (``order_comment``),
    after a P on the patient's samples (``patient_comment``). ``code_component`` is where R.3
    carries the code (quoted when a result comes before any order); ``read_other`` sees the
    remaining record types (M, ...) inside a sample.
    """
    if not records:
        return ()
    if records[0].type != "H":
        raise field_error("record type", "a message must start with an H record", records[0].type)
    header = read_header(records[0])
    patient_id = ""
    patient_notes: list[tuple[str, str]] = []
    sample: SampleT | None = None
    finished: list[Observation] = []
    previous = "H"  # the last record that was not a comment: what a C record comments on
    for record in records[1:]:
        kind = record.type
        if kind in _CLOSES_SAMPLE and sample is not None:
            finished.extend(sample.finish())
            sample = None
        if kind == "H":
            header, patient_id, patient_notes = read_header(record), "", []
        elif kind == "P":
            patient_id, patient_notes = first_patient_id(record), []
        elif kind == "O":
            sample = read_order(record, patient_id, header)
            sample.extra.extend(patient_notes)
        elif kind == "R":
            if sample is None:
                code = record.value(3, 0, code_component)
                raise field_error("R", "result record before any order record", code)
            sample.add(read_result(record, sample, header))
        elif kind == "C" and (text := comment_text(record)):
            if sample is None:
                patient_notes.append(("patient_comment", text))
            elif previous != "R" or not sample.comment_on_last(text):
                sample.extra.append(("order_comment", text))
        elif kind != "C" and sample is not None and read_other is not None:
            read_other(record, sample)
        if kind != "C":
            previous = kind
    if sample is not None:
        finished.extend(sample.finish())
    return tuple(finished)
