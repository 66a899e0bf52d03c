"""HL7 v2.5.1 ORU^R01 for the LIS: the builder, and the encoding rules its check shares."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from drivers.model import Method
from drivers.protocols.hl7.message import escape, format_ts
from gateway.config import LisConfig
from gateway.errors import LocalProtocolError
from gateway.model import Result
from gateway.national_id import NationalIdKind, national_id_kind
from gateway.rules.processing_id import PRODUCTION

# Encoding (HL7 v2.5.1 chapter 2.5.4 and 2.7): the standard delimiters, segments end in CR.
SEGMENT_SEPARATOR = "\r"
FIELD_SEPARATOR = "|"
ENCODING_CHARACTERS = "^~\\&"
VERSION = "2.5.1"
MESSAGE_TYPE = "ORU^R01^ORU_R01"
# MSH-18, table 0211. The forwarder must encode the message text as UTF-8.
CHARACTER_SET = "UNICODE UTF-8"
COUNTRY_CODE = "NOR"  # MSH-17, ISO 3166 alpha-3

# PID-3 for Norwegian national identity numbers: HL7 table 0203 "NNxxx" (national person
# identifier, xxx = ISO 3166 country code); the assigning authority is the identifier system's
# OID (``gateway.national_id``).
IDENTIFIER_TYPE = "NNNOR"

# Coding systems (table 0396): NLK for mapped tests, "L" for the site's local test codes,
# "99TRYGG" (a 99zzz local system) for the codes this gateway defines itself.
NLK = "NLK"
LOCAL = "L"
TRYGG_CODES = "99TRYGG"
UCUM = "UCUM"

# OBX-17 observation method, one code per ``Method``.
METHOD_CODES: dict[Method, tuple[str, str]] = {
    Method.MEASURED: ("measured", "Measured by instrument"),
    Method.VISUAL: ("visual", "Visual reading"),
    Method.MANUAL: ("manual", "Manual entry"),
}

# OBX-2 value types (table 0125) the builder can encode.
VALUE_TYPES = frozenset({"NM", "SN", "ST", "TX", "FT", "CE", "CWE"})

# hl7apy's strict level refuses ST leaves over 199 characters and IS leaves over 20; OBX-5 is
# always read as ST whatever OBX-2 says. NTE-3 (FT) may hold 65536.
ST_MAX = 199
IS_MAX = 20
FT_MAX = 65536
CONTROL_ID_MAX = 20  # MSH-10 length in v2.5.1

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
NM = re.compile(rf"[+-]?{NUMBER}")  # an HL7 NM value
_SN = re.compile(
    rf"(?P<cmp>>=|<=|<>|>|<|=)?\s*(?P<n1>[+-]?{NUMBER})?"
    rf"(?:\s*(?P<sep>[-+/:])\s*(?P<n2>{NUMBER}))?"
)
_UCUM_CHARS = re.compile(r"[!-~]+")


@dataclass(frozen=True, slots=True)
class OutboundResult:
    """One stored result to send; ``corrected`` makes OBX-11 "C" instead of "F"."""

    result_id: int
    result: Result
    corrected: bool = False


def pid3_kind(patient_id: str) -> NationalIdKind:
    """The identifier system PID-3 names for ``patient_id``; refused unless it is shaped like
    a Norwegian person number (``gateway.national_id.national_id_kind``)."""
    kind = national_id_kind(patient_id)
    if kind is None:
        raise LocalProtocolError("patient id is not a Norwegian person number", field="PID-3")
    return kind


# --- encoding helpers ----------------------------------------------------------------------


def _text(value: str, field: str, *, limit: int = ST_MAX) -> str:
    """Escape one leaf (ST, ID, IS, NM) and check it fits; control characters are refused."""
    if CONTROL.search(value):
        raise LocalProtocolError("control characters are not allowed here", field=field)
    if value == '""':
        raise LocalProtocolError('the text "" would read as the HL7 null value', field=field)
    escaped = escape(value)
    if len(escaped) > limit:
        raise LocalProtocolError(
            f"{len(escaped)} characters after escaping, at most {limit} fit", field=field
        )
    return escaped


def _formatted_text(value: str, field: str, *, limit: int) -> str:
    """Escape FT text: line breaks become ``\\.br\\``, other C0 controls ``\\Xhh\\``."""
    if re.search(r"[\x80-\x9f\ud800-\udfff]", value):
        raise LocalProtocolError("C1 control or surrogate characters", field=field)
    if value == '""':
        raise LocalProtocolError('the text "" would read as the HL7 null value', field=field)
    escaped = escape(value, hex_controls=True)
    if len(escaped) > limit:
        raise LocalProtocolError(
            f"{len(escaped)} characters after escaping, at most {limit} fit", field=field
        )
    return escaped


def _ts(moment: datetime | None, field: str) -> str:
    """HL7 TS in UTC with an explicit +0000 offset, to the second; empty for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise LocalProtocolError("naive datetime; an aware one is needed", field=field)
    return format_ts(moment.astimezone(UTC))


def _segment(name: str, fields: dict[int, str]) -> str:
    """One segment from ``{field number: encoded text}``; trailing empty fields are dropped."""
    last = max((n for n, text in fields.items() if text), default=0)
    return FIELD_SEPARATOR.join([name] + [fields.get(n, "") for n in range(1, last + 1)])


def _join(*components: str) -> str:
    return "^".join(components).rstrip("^")


# --- the builder ---------------------------------------------------------------------------


def build_oru(
    results: Sequence[OutboundResult], *, control_id: str, now: datetime, lis: LisConfig
) -> str:
    """Build one ORU^R01 (v2.5.1) with the given results, segments ended by ``\\r``.

    One PATIENT_RESULT group per patient (PID), in order of first appearance; within it one
    ORC + OBR per specimen, then that specimen's OBX (+ NTE) in input order. Raises
    ``LocalProtocolError`` naming the field when a result cannot be encoded, and
    (``MSH-11``) for any result whose processing ID is not P: test data is never relabelled.
    """
    if not results:
        raise LocalProtocolError("an ORU^R01 needs at least one result")
    for item in results:
        # never relabel: MSH-11 says lis.processing_id, so only production results may go
        if item.result.processing_id != PRODUCTION:
            raise LocalProtocolError(
                f"result {item.result_id} is test data (processing ID "
                f"{item.result.processing_id!r}); it is never sent to the LIS",
                field="MSH-11",
            )
    segments = [_msh(control_id, now, lis)]
    reported_at = _ts(now, "OBR-22")
    obr_set_id = 0
    for pid_set_id, (patient_id, orders) in enumerate(_group(results), start=1):
        segments.append(_pid(pid_set_id, patient_id))
        for filler_order, members in orders:
            obr_set_id += 1
            segments.extend(_order(obr_set_id, filler_order, members, reported_at, lis))
            for obx_set_id, item in enumerate(members, start=1):
                segments.extend(_observation(obx_set_id, item, lis))
    return SEGMENT_SEPARATOR.join(segments) + SEGMENT_SEPARATOR


def _msh(control_id: str, now: datetime, lis: LisConfig) -> str:
    if not control_id or len(control_id) > CONTROL_ID_MAX:
        raise LocalProtocolError(f"must be 1 to {CONTROL_ID_MAX} characters", field="MSH-10")
    if any(c in control_id for c in "|^~\\&") or CONTROL.search(control_id):
        raise LocalProtocolError("must not contain delimiters or controls", field="MSH-10")
    fields = {
        3: _text(lis.sending_application, "MSH-3", limit=IS_MAX),
        4: _text(lis.sending_facility, "MSH-4", limit=IS_MAX),
        5: _text(lis.receiving_application, "MSH-5", limit=IS_MAX),
        6: _text(lis.receiving_facility, "MSH-6", limit=IS_MAX),
        7: _ts(now, "MSH-7"),
        9: MESSAGE_TYPE,
        10: control_id,
        11: lis.processing_id,
        12: VERSION,
        # MSH-15 and MSH-16 stay empty: original acknowledgment mode (2.9.2), one ACK per
        # message with MSA-1 AA/AE/AR, which is what the forwarder waits for.
        17: COUNTRY_CODE,
        18: CHARACTER_SET,
    }
    last = max(fields)
    rest = [fields.get(number, "") for number in range(3, last + 1)]
    return FIELD_SEPARATOR.join(["MSH", ENCODING_CHARACTERS, *rest])


_OrderKey = tuple[str, str]  # ("S", specimen id) or ("R", result id) without a specimen
_Order = tuple[_OrderKey, list[OutboundResult]]


def _group(results: Sequence[OutboundResult]) -> list[tuple[str, list[_Order]]]:
    """Patients, then specimens within each, in order of first appearance.

    Results without a patient are not merged: each specimen (or, without a specimen, each
    result) gets its own anonymous PATIENT_RESULT. Without a specimen id every result is its
    own order.
    """
    patients: dict[tuple[str, str], dict[_OrderKey, list[OutboundResult]]] = {}
    owner: dict[str, str] = {}
    for item in results:
        result = item.result
        if result.specimen_id:
            order_key = ("S", result.specimen_id)
            if owner.setdefault(result.specimen_id, result.patient_id) != result.patient_id:
                raise LocalProtocolError(
                    "one specimen id carries results for two patients", field="OBR-3"
                )
        else:
            order_key = ("R", str(item.result_id))
        patient_key = ("P", result.patient_id) if result.patient_id else order_key
        patients.setdefault(patient_key, {}).setdefault(order_key, []).append(item)
    return [
        (key[1] if key[0] == "P" else "", list(orders.items())) for key, orders in patients.items()
    ]


def _pid(set_id: int, patient_id: str) -> str:
    cx = ""
    if patient_id:
        kind = pid3_kind(patient_id)
        cx = f"{patient_id.strip()}^^^{kind.namespace}&{kind.oid}&ISO^{IDENTIFIER_TYPE}"
    # PID-5 is required in v2.5.1 and we do not carry names: an empty name of type U
    # (unspecified, table 0200) says so without sending the null value "".
    return _segment("PID", {1: str(set_id), 3: cx, 5: "^^^^^^U"})


def _test_code(result: Result, field: str) -> str:
    name = _text(result.test_name, f"{field}.2")
    if result.nlk_code:
        return _join(_text(result.nlk_code, f"{field}.1"), name, NLK)
    if not result.test_code:
        raise LocalProtocolError("the result has neither an NLK nor a local code", field=field)
    return _join(_text(result.test_code, f"{field}.1"), name, LOCAL)


def _order(
    set_id: int,
    order_key: _OrderKey,
    members: list[OutboundResult],
    reported_at: str,
    lis: LisConfig,
) -> list[str]:
    """ORC + OBR for one specimen.

    The filler order number is the specimen id; without one it is the result id in the
    sending application's namespace (the gateway assigned it). OBR-4 is the first result's
    test (each OBX-3 names its own), OBR-7 the earliest analysis time, OBR-22 the message
    time, OBR-25 "C" when any result in the order is a correction.
    """
    first = members[0]
    if order_key[0] == "S":
        filler = _text(order_key[1], "OBR-3")
    else:
        namespace = _text(lis.sending_application, "OBR-3.2", limit=IS_MAX)
        filler = _join(order_key[1], namespace)
    # Same format, all UTC: the smallest text is the earliest time.
    times = [_ts(m.result.performed_at, "OBX-14") for m in members if m.result.performed_at]
    observed = min(times, default="")
    status = "C" if any(m.corrected for m in members) else "F"
    orc = _segment("ORC", {1: "RE", 3: filler})
    obr = _segment(
        "OBR",
        {
            1: str(set_id),
            3: filler,
            4: _test_code(first.result, "OBR-4"),
            7: observed,
            22: reported_at,
            25: status,
        },
    )
    return [orc, obr]


def _value(result: Result) -> str:
    value_type, value = result.value_type, result.value
    if value_type not in VALUE_TYPES:
        raise LocalProtocolError(f"value type {value_type!r} is not supported", field="OBX-2")
    if not value:
        raise LocalProtocolError("the result has no value", field="OBX-5")
    if value_type == "NM":
        if not NM.fullmatch(value):
            raise LocalProtocolError(f"{value!r} is not an HL7 NM number", field="OBX-5")
        return _text(value, "OBX-5")
    if value_type == "SN":
        return _structured_numeric(value)
    if value_type == "FT":
        return _formatted_text(value, "OBX-5", limit=ST_MAX)
    # ST, TX, CE and CWE: the text as one leaf (for CE/CWE the code, component 1).
    return _text(value, "OBX-5")


def _structured_numeric(value: str) -> str:
    """SN from text such as ``<0.5``, ``>=10``, ``1:128`` or ``2-5``."""
    match = _SN.fullmatch(value.strip())
    if match is None or not (match["n1"] or match["n2"]):
        raise LocalProtocolError(f"{value!r} is not a structured numeric", field="OBX-5")
    if match["n2"] and not match["sep"]:
        raise LocalProtocolError(f"{value!r} is not a structured numeric", field="OBX-5")
    parts = [match["cmp"] or "", match["n1"] or "", match["sep"] or "", match["n2"] or ""]
    return _join(*parts)


def _unit(unit: str) -> str:
    if not unit:
        return ""
    system = UCUM if _UCUM_CHARS.fullmatch(unit) and not any(c in unit for c in "|^~\\&") else LOCAL
    return _join(_text(unit, "OBX-6.1"), "", system)


def _equipment(result: Result, lis: LisConfig) -> str:
    repetitions = []
    if result.instrument_serial:
        repetitions.append(_text(result.instrument_serial, "OBX-18.1"))
    if result.instrument_id:
        namespace = _text(lis.sending_application, "OBX-18.2", limit=IS_MAX)
        repetitions.append(_join(_text(result.instrument_id, "OBX-18.1"), namespace))
    return "~".join(repetitions)


def _observation(set_id: int, item: OutboundResult, lis: LisConfig) -> list[str]:
    result = item.result
    method = METHOD_CODES.get(result.method)
    if method is None:
        raise LocalProtocolError(f"unknown method {result.method!r}", field="OBX-17")
    method_code, method_text = method
    performed = _ts(result.performed_at, "OBX-14")
    obx = _segment(
        "OBX",
        {
            1: str(set_id),
            2: result.value_type,
            3: _test_code(result, "OBX-3"),
            5: _value(result),
            6: _unit(result.unit),
            7: _text(result.reference_range, "OBX-7"),
            8: "~".join(_text(flag, "OBX-8", limit=IS_MAX) for flag in result.abnormal_flags),
            11: "C" if item.corrected else "F",
            14: performed,
            16: _text(result.operator_id, "OBX-16"),
            17: _join(method_code, method_text, TRYGG_CODES),
            18: _equipment(result, lis),
            19: performed,
        },
    )
    if not result.comment:
        return [obx]
    # NTE-2 "L": the filler (the lab) is the source; NTE-4 "RE" remark (table 0364). NTE-4
    # also keeps the comment from being the message's last field, where trailing blanks
    # would be stripped by parsers.
    comment = _formatted_text(result.comment, "NTE-3", limit=FT_MAX)
    return [obx, _segment("NTE", {1: "1", 2: "L", 3: comment, 4: "RE^Remark^HL70364"})]
