"""Siemens DCA Vantage (HbA1c, urine albumin/creatinine): its ASTM E1394 dialect both ways.

Sources. Siemens' "DCA Vantage Analyzer Host Computer Communications Link" (17306; Rev. D 2011
and Rev. E 2012 exist) is the vendor document; only its title and contents pages could be read
here. The field map below comes from (a) the analyser's message in the corpus
(``siemens_dca_vantage__senaite.astm.txt``), (b) the field notes senaite.astm publishes for its
DCA Vantage instrument, which quote that document (facts only), and (c) the DCA Vantage
Operator's Guide, appendix G (ASTM E1381/E1394 over serial or Ethernet; a blank patient ID is
allowed in ASTM). What the message looks like::

    H|\\^&|||DCA VANTAGE^04.04.00.00^S067337|||||||P||20240820151746
    P|1|BU24R554
    O|1||660^0090||||||||||||||||||||||F
    R|1|^^^Alb|63.7|mg/L||||F|||20240820151030
    C|1|I|1.000^0.0 mg/L|G
    R|2|^^^Crt|230.8|mg/dL||||F|||20240820151030
    C|1|I|1.000^0.0 mg/dL|G
    R|3|^^^Ratio|27.6|mg/g||||F|||20240820151030
    L|1|N

* H.5 = ``DCA VANTAGE^<software version>^<serial number>``; H.12 ``P`` (production) or ``D``
  (service mode: debugging data, not mapped: such a message is refused so it is quarantined).
* P.3 = practice-assigned patient ID (may be blank).
* O.4 = ``<sample sequence number 001-999>^<reagent cartridge lot>``; O.12 = ``Q`` when a
  control was run; O.26 report type ``F`` final or ``C`` correction.
* R.3.4 = ``HbA1c``, ``Alb``, ``Crt`` or ``Ratio``; R.4 value (``<``/``>`` outside the range);
  R.7 = ``< > H L``; R.9 = ``F`` or ``C``; R.11 = operator ID (when operator entry is on);
  R.12 = time the test started (R.13 is read too, should a firmware send it).
* A C record after a result carries the user correction ``<slope>^<offset> <unit>`` and, after
  HbA1c, ``^<NGSP|IFCC primary unit>^<eAG>``: kept in ``extra``. C records after the order
  (GFR inputs, free comments that may hold patient data) are not mapped.

Assumption, not confirmed from the vendor document: for controls the control's level and lot
are carried where the patient ID goes, as ``P.3 = <level>^<control lot>``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from drivers.analysers.astm_base import (
    AstmProfile,
    SimSample,
    format_astm_datetime,
    parse_astm_datetime,
    universal_test_code,
)
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Field, Record
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.model import Method, Observation

SENDER_NAME = "DCA VANTAGE"
SOFTWARE_VERSION = "04.04.00.00"
ABNORMAL_FLAGS = frozenset({"<", ">", "H", "L"})
RESULT_STATUSES = frozenset({"F", "C"})
TEST_NAMES = {
    "HbA1c": "Haemoglobin A1c",
    "Alb": "Albumin, urine",
    "Crt": "Creatinine, urine",
    "Ratio": "Albumin/creatinine ratio, urine",
}
#: C.4 components after a result, in order, and the ``extra`` keys they become
CORRECTION_KEYS = ("correction_slope", "correction_offset", "primary_unit", "eag")
_NUMBER = re.compile(r"(?P<cmp>[<>]=?)?\s*(?P<num>[0-9]{1,6}(?:[.,][0-9]{1,4})?)")
_SEQUENCE = re.compile(r"[0-9]{1,4}")


def _fail(field: str, problem: str, text: str) -> RemoteProtocolError:
    # The offending text goes in ``data`` only: the message itself may be logged.
    return RemoteProtocolError(problem, field=field, data=text.encode("latin-1", "replace"))


def _when(text: str, field: str) -> datetime | None:
    # parse_astm_datetime's own message quotes the text; ours keeps it in ``data`` only, and
    # also covers dates the UTC conversion cannot represent (year 1: OverflowError).
    try:
        return parse_astm_datetime(text, field=field)
    except (RemoteProtocolError, OverflowError) as exc:
        raise _fail(field, "not an ASTM date/time (YYYYMMDD[HHMM[SS]])", text) from exc


def _measured_value(text: str, field: str) -> tuple[str, str]:
    """R.4 -> (value, HL7 value type): a number, or ``<``/``>`` and a number."""
    match = _NUMBER.fullmatch(text.strip())
    if match is None:
        raise _fail(field, "value is not a number or '<'/'>' and a number", text)
    comparator = match["cmp"] or ""
    return comparator + match["num"].replace(",", "."), ("SN" if comparator else "NM")


def _record(kind: str, fields: Mapping[int, str | tuple[str, ...]]) -> Record:
    """A record from {standard field number: text or components}; gaps become empty fields."""
    built: list[Field] = []
    for number in range(2, max(fields) + 1):
        value = fields.get(number, "")
        built.append(((value,) if isinstance(value, str) else value,))
    return Record(kind, tuple(built))


@dataclass(frozen=True, slots=True)
class _Context:
    """What the P and O records say about the results that follow them."""

    patient_id: str = ""
    control_level: str = ""
    control_lot: str = ""
    specimen_id: str = ""
    reagent_lot: str = ""
    is_qc: bool = False


class DcaVantageProfile:
    """The DCA Vantage dialect (see the module docstring for the field map and its sources)."""

    key: str = "astm_dca_vantage"
    name: str = "Siemens DCA Vantage"
    description: str = (
        "Siemens DCA Vantage (HbA1c, urine albumin/creatinine) over ASTM E1381/E1394; "
        "operator, reagent lot, user correction and controls (O.12 = Q) mapped"
    )
    #: it sends a whole message in one frame longer than E1381's 247 bytes
    lenient: bool = True
    encoding: str = "latin-1"

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        """Map one H..L message to observations, or raise ``RemoteProtocolError``."""
        if not records or records[0].type != "H":
            raise _fail("H", "a message must start with its H record", "")
        header = records[0]
        processing = header.value(12).strip() or "P"
        if processing != "P":
            raise _fail("H.12", "not a production message (service mode data)", processing)
        serial = header.value(5, 0, 2).strip()
        sent_at = _when(header.value(14), "H.14")
        context = _Context()
        found: list[Observation] = []
        after_result = False
        for record in records[1:]:
            if record.type == "H":
                raise _fail("H", "a second H record inside one message", header.value(5))
            if record.type == "L":
                break
            if record.type == "C" and after_result:
                found[-1] = _with_correction(found[-1], record)
            elif record.type == "P":
                # P.3 is the patient ID, or for a control <level>^<lot>: the O record decides
                context = _Context(
                    patient_id=record.value(3).strip(), control_lot=record.value(3, 0, 1).strip()
                )
            elif record.type == "O":
                context = _order(context, record)
            elif record.type == "R":
                found.append(_result(record, instrument_id, serial, sent_at, context))
            after_result = record.type == "R" or (record.type == "C" and after_result)
        return tuple(found)

    def simulated_message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """The records a DCA Vantage sends for ``sample``: H, P, O, R (+C correction), L."""
        stamp = format_astm_datetime(sample.performed_at)
        for code, _, _ in sample.values:
            if code not in TEST_NAMES:
                raise LocalProtocolError(f"the DCA Vantage does not measure {code!r}", field="R.3")
        records = [
            _record(
                "H",
                {
                    2: delimiters.definition,
                    5: (SENDER_NAME, SOFTWARE_VERSION, sample.instrument_serial),
                    12: "P",
                    14: stamp,
                },
            ),
            _record(
                "P",
                {
                    2: "1",
                    3: (sample.control_level, sample.control_lot)
                    if sample.is_qc
                    else sample.patient_id,
                },
            ),
            _record(
                "O",
                {
                    2: "1",
                    4: (sample.specimen_id, _reagent_lot(sample)),
                    12: "Q" if sample.is_qc else "",
                    26: "F",
                },
            ),
        ]
        for sequence, (code, value, unit) in enumerate(sample.values, start=1):
            flag = value[0] if value[:1] in ("<", ">") else ""
            records.append(
                _record(
                    "R",
                    {
                        2: str(sequence),
                        3: ("", "", "", code),
                        4: value,
                        5: unit,
                        7: flag,
                        9: "F",
                        11: sample.operator_id,
                        12: stamp,
                    },
                )
            )
            if code == "HbA1c":
                primary = "IFCC" if unit == "mmol/mol" else "NGSP"
                records.append(
                    _record("C", {2: "1", 3: "I", 4: ("1.000", f"0.0 {unit}", primary), 5: "G"})
                )
            elif code != "Ratio":
                records.append(_record("C", {2: "1", 3: "I", 4: ("1.000", f"0.0 {unit}"), 5: "G"}))
        records.append(_record("L", {2: "1", 3: "N"}))
        return records

    def simulated_sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """One cartridge: HbA1c or the albumin/creatinine panel, patient or control."""
        if now.tzinfo is None:
            raise LocalProtocolError("now must be timezone-aware", field="now")
        hba1c = rng.random() < 0.5
        if hba1c:
            level = rng.choice(("Normal", "Abnormal")) if qc else ""
            values = _hba1c(rng, {"Normal": 5.4, "Abnormal": 9.8}.get(level))
        else:
            level = rng.choice(("Low", "High")) if qc else ""
            values = _acr(rng, {"Low": (25.0, 90.0), "High": (160.0, 180.0)}.get(level))
        return SimSample(
            specimen_id=f"{rng.randint(1, 999):03d}",
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=f"{rng.randint(10000, 99999)}" if qc else "",
            control_level=level,
            instrument_serial=f"S0{rng.randint(0, 99999):05d}",
        )


def _order(context: _Context, record: Record) -> _Context:
    sequence = record.value(4).strip()
    if sequence and _SEQUENCE.fullmatch(sequence) is None:
        raise _fail("O.4", "sample sequence number is not 1-4 digits", record.value(4))
    action = record.value(12).strip()
    if action not in ("", "Q"):
        raise _fail("O.12", "action code is neither empty nor Q (control)", action)
    is_qc = action == "Q"
    return _Context(
        patient_id="" if is_qc else context.patient_id,
        control_level=context.patient_id if is_qc else "",
        control_lot=context.control_lot if is_qc else "",
        specimen_id=record.value(3).strip() or sequence,
        reagent_lot=record.value(4, 0, 1).strip(),
        is_qc=is_qc,
    )


def _result(
    record: Record, instrument_id: str, serial: str, sent_at: datetime | None, context: _Context
) -> Observation:
    code = universal_test_code(record, 3)
    if not code:
        raise _fail("R.3", "result has no test code", record.value(3))
    value, value_type = _measured_value(record.value(4), "R.4")
    flag = record.value(7).strip()
    if flag and flag not in ABNORMAL_FLAGS:
        raise _fail("R.7", f"abnormal flag is not one of {sorted(ABNORMAL_FLAGS)}", flag)
    status = record.value(9).strip() or "F"
    if status not in RESULT_STATUSES:
        raise _fail("R.9", "result status is neither F (final) nor C (correction)", status)
    performed = _when(record.value(13), "R.13") or _when(record.value(12), "R.12") or sent_at
    return Observation(
        instrument_id=instrument_id,
        test_code=code,
        value=value,
        value_type=value_type,
        unit=record.value(5).strip(),
        reference_range=record.value(6).strip(),
        abnormal_flags=(flag,) if flag else (),
        method=Method.MEASURED,
        performed_at=performed,
        operator_id=record.value(11).strip(),
        specimen_id=context.specimen_id,
        patient_id=context.patient_id,
        result_status=status,
        instrument_serial=serial,
        test_name=TEST_NAMES.get(code, ""),
        is_qc=context.is_qc,
        control_lot=context.control_lot if context.is_qc else "",
        control_level=context.control_level if context.is_qc else "",
        extra=(("reagent_lot", context.reagent_lot),) if context.reagent_lot else (),
    )


def _with_correction(observation: Observation, comment: Record) -> Observation:
    parts = (comment.value(4, 0, n).strip() for n in range(len(CORRECTION_KEYS)))
    extra = tuple((key, part) for key, part in zip(CORRECTION_KEYS, parts, strict=True) if part)
    return replace(observation, extra=observation.extra + extra)


def _reagent_lot(sample: SimSample) -> str:
    """A plausible 4-digit cartridge lot, stable for one test and month."""
    test = "1" if any(code == "HbA1c" for code, _, _ in sample.values) else "2"
    return f"{sample.performed_at.year % 10}{sample.performed_at.month:02d}{test}"


Values = tuple[tuple[str, str, str], ...]


def _hba1c(rng: random.Random, centre: float | None) -> Values:
    percent = rng.gauss(centre, centre * 0.02) if centre is not None else rng.uniform(4.0, 13.5)
    if centre is None and rng.random() < 0.03:
        percent = rng.choice((2.0, 15.0))
    if rng.random() < 0.5:  # IFCC primary reporting unit
        mmol = round((percent - 2.15) * 10.929)
        text = "<4" if mmol < 4 else ">130" if mmol > 130 else str(mmol)
        return (("HbA1c", text, "mmol/mol"),)
    text = "<2.5" if percent < 2.5 else ">14.0" if percent > 14.0 else f"{percent:.1f}"
    return (("HbA1c", text, "%"),)


def _acr(rng: random.Random, centre: tuple[float, float] | None) -> Values:
    """Albumin mg/L, creatinine and the ratio, in conventional or SI units."""
    if centre is None:
        albumin, creatinine_mg_dl = rng.uniform(3.0, 320.0), rng.uniform(20.0, 400.0)
    else:
        albumin, creatinine_mg_dl = (rng.gauss(c, c * 0.04) for c in centre)
    si = rng.random() < 0.5
    creatinine = creatinine_mg_dl * 0.0884 if si else creatinine_mg_dl
    ratio = albumin / creatinine if si else albumin / creatinine_mg_dl * 100
    units = ("mmol/L", "mg/mmol") if si else ("mg/dL", "mg/g")
    if albumin < 5.0:
        alb_text, ratio_text = "<5", f"<{5.0 / creatinine * (1 if si else 100):.1f}"
    elif albumin > 300.0:
        alb_text, ratio_text = ">300", f">{300.0 / creatinine * (1 if si else 100):.1f}"
    else:
        alb_text, ratio_text = f"{albumin:.1f}", f"{ratio:.1f}"
    return (
        ("Alb", alb_text, "mg/L"),
        ("Crt", f"{creatinine:.2f}" if si else f"{creatinine:.1f}", units[0]),
        ("Ratio", ratio_text, units[1]),
    )


PROFILE: AstmProfile = DcaVantageProfile()
