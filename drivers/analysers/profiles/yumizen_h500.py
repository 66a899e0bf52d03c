"""HORIBA Yumizen H500 (and H550) haematology analyser: ASTM LIS2-A2 mapping.

Sources. HORIBA's "Output Format for Host Connection" (RAA055DEN for the H500, RAA066AEN for the
H550) is published, but the copies the search tools could reach showed only the first pages:
the contents (LIS01-A2 framing, LIS2-A2 records, curves and matrices in M records) and that no
frame carries more than one record. The field mapping is therefore based on LIS2-A2 field
numbering, the two corpus QC messages (H500 framed, H550 plain records), and patient messages
from H550 analysers published in open projects (read for facts only):

* H.5 ``H500^910YOXH02826^2.2.2.2b`` (model^serial^software); H.12 processing ID: ``Q`` for a
  control run, ``P`` for patients; H.14 the message date.
* P.3 patient ID (LIS2-A2 "practice assigned"; P.4 and P.5 are read when P.3 is empty). The
  captured messages carry no patient ID at all (QC, or samples identified by O.3 only).
* O.3 sample ID (for a control run: the control lot, e.g. ``PX440N``); O.5 ``^^^DIF``; O.7 the
  sampling time; O.16 specimen descriptor ``BLOOD`` or ``CTRL^^CTRL MEDIUM`` for controls.
* C records after O: the analyser's alarms (``CONTROL_FAILED^^PLT_ABOVE_TOLERANCE``,
  ``SUSPECTED_PATHOLOGY^^ANEMIA``) and the control material name (``ABXdifftrol N``): kept as
  ``("order_comment", ...)`` on every observation of the sample.
* M records: ``HISTOGRAM`` and ``MATRIX`` carry deflated base64 curves and are skipped;
  ``REAGENT`` gives ``name\\...`` in M.4 and ``lot^opened^expiry\\...`` in M.5, kept as
  ``("reagent_lot:CLEANER", lot)`` and ``("reagent_expiry:CLEANER", date)``; other M types
  (``SETTING``) are skipped.
* R.3 ``^^^CODE^LOINC`` (the LOINC goes to ``("loinc", ...)``); R.4 value; R.5 unit; R.6
  ``84.0 - 94.0^REFERENCE_RANGE``; R.7 flags (``N L H LL HH``); R.9 status (``F``, ``W`` when the
  value is questionable); R.11 ``operator^^USER``; R.12 start and R.13 completion of the test
  (analyser local time; R.13 is used when sent); R.14 the analyser serial (H550).

QC: H.12 = ``Q``, O.16 ``CTRL`` or O.12 = ``Q``. The lot is O.3; the level is read from O.16
(``CTRL LOW``/``CTRLLOW`` -> low, ``MEDIUM``/``NORMAL`` -> normal, ``HIGH`` -> high), else from the
lot's last letter (ABX Difftrol lots end in L, N or H); the sent text is kept as
``("control_level_text", ...)``.

Every R record becomes an observation. The H550 can send research-use parameters (LIC, ALY;
``M|..|SETTING|RUO...``), but the message does not mark which results they are, so none are
dropped: the site's test mapping decides, and an unmapped code is held, not lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drivers.analysers.astm_base import (
    field_error,
    measured_at,
    normalise_range,
    normalise_value,
    repeated_flags,
    universal_test_code,
)
from drivers.analysers.astm_messages import (
    SampleResults,
    observations_by_sample,
)
from drivers.model import Method, Observation
from drivers.protocols.astm.records import Record

_LOT_LEVELS = {"L": "low", "N": "normal", "H": "high"}


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def _text(record: Record, number: int, component: int = 0) -> str:
    return record.value(number, 0, component).strip()


def control_level(descriptor: str, lot: str) -> str:
    """low/normal/high from O.16's third component, else from the lot's level letter."""
    text = descriptor.upper().replace("CTRL", "")
    for word, level in (("LOW", "low"), ("MED", "normal"), ("NORM", "normal"), ("HIGH", "high")):
        if word in text:
            return level
    return _LOT_LEVELS.get(lot[-1:].upper(), "") if lot else ""


@dataclass(slots=True)
class _Header:
    """What the H record says: the analyser, and whether this is a control run (H.12 = Q)."""

    model: str = ""
    serial: str = ""
    qc_run: bool = False

    @classmethod
    def read(cls, record: Record) -> _Header:
        return cls(_text(record, 5, 0), _text(record, 5, 1), _text(record, 12).upper() == "Q")


def _order(record: Record, patient_id: str, header: _Header) -> SampleResults:
    specimen = _text(record, 3)
    descriptor = record.field(16)[0] if record.field(16) else ()
    kind = descriptor[0].strip().upper() if descriptor else ""
    is_qc = header.qc_run or kind == "CTRL" or _text(record, 12).upper() == "Q"
    level_text = next((c.strip() for c in reversed(descriptor[1:]) if c.strip()), "")
    extra = [("analyser_model", header.model)] if header.model else []
    if is_qc and level_text:
        extra.append(("control_level_text", level_text))
    return SampleResults(
        specimen_id=specimen,
        patient_id="" if is_qc else patient_id,
        is_qc=is_qc,
        control_lot=specimen if is_qc else "",
        control_level=control_level(level_text, specimen) if is_qc else "",
        extra=extra,
    )


def reagent_lots(record: Record) -> list[tuple[str, str]]:
    """``("reagent_lot:NAME", lot)`` and ``("reagent_expiry:NAME", date)`` from a REAGENT M."""
    names = [rep[0].strip() if rep else "" for rep in record.field(4)]
    out: list[tuple[str, str]] = []
    for index, rep in enumerate(record.field(5)):
        lot = rep[0].strip() if rep else ""
        if not lot:
            continue
        name = names[index] if index < len(names) and names[index] else str(index + 1)
        out.append((f"reagent_lot:{name}", lot))
        if len(rep) > 2 and rep[2].strip():
            out.append((f"reagent_expiry:{name}", rep[2].strip()))
    return out


def _reagents(record: Record, sample: SampleResults) -> None:
    """M records: the REAGENT one's lots are kept; curves and settings are not mapped."""
    if record.type == "M" and _text(record, 3).upper() == "REAGENT":
        sample.extra.extend(reagent_lots(record))


def _result(
    record: Record, sample: SampleResults, instrument_id: str, header: _Header
) -> Observation:
    components = record.field(3)[0] if record.field(3) else ()
    # the code sits in component 4 (the LOINC follows); a bare "WBC" is read as the code itself
    code = components[3].strip() if len(components) > 3 else universal_test_code(record)
    if not code:
        raise field_error("R.3", "result record has no test code", "^".join(components))
    value, value_type, extra = normalise_value(record.value(4))
    if loinc := _text(record, 3, 4):
        extra = (("loinc", loinc), *extra)
    return Observation(
        instrument_id=instrument_id,
        test_code=code,
        value=value,
        value_type=value_type,
        unit=_text(record, 5),
        reference_range=normalise_range(record.value(6)),
        abnormal_flags=repeated_flags(record),
        method=Method.MEASURED,
        performed_at=measured_at(record, (13, 12)),  # completed, else started
        operator_id=_text(record, 11),
        specimen_id=sample.specimen_id,
        patient_id=sample.patient_id,
        result_status=_text(record, 9) or "F",
        instrument_serial=_text(record, 14) or header.serial,
        is_qc=sample.is_qc,
        control_lot=sample.control_lot,
        control_level=sample.control_level,
        extra=extra,
    )


def yumizen_observations(instrument_id: str, records: Sequence[Record]) -> tuple[Observation, ...]:
    """Map one Yumizen message (H..L) to observations (see the module docstring)."""

    def result(record: Record, sample: SampleResults, header: _Header) -> Observation:
        return _result(record, sample, instrument_id, header)

    return observations_by_sample(
        records,
        read_header=_Header.read,
        read_order=_order,
        read_result=result,
        code_component=3,
        read_other=_reagents,
    )


class YumizenProfile:
    """The AstmProfile of the Yumizen H500 (H550 messages decode the same way)."""

    key = "astm_yumizen_h500"
    name = "HORIBA Yumizen H500"
    description = (
        "HORIBA Yumizen H500/H550 haematology analyser, ASTM LIS01-A2/LIS2-A2 (one record per "
        "frame): CBC + 5-part DIFF, ABX Difftrol QC, reagent lots from M records"
    )
    qc_recognition = (
        "a control run has H.12 = Q, O.12 = Q or O.16 kind CTRL; the lot is O.3 (the "
        "control's sample ID), the level O.16's text (low, normal, high)"
    )
    lenient = True  # frames far over 247 bytes (base64 curves), CR before ETX
    encoding = "utf-8"  # the H500 sends characters beyond ASCII (RAA055CEN); UTF-8 assumed

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        return yumizen_observations(instrument_id, records)


PROFILE = YumizenProfile()
