"""Tests for the ORU^R01 builder and its outbound check (gateway.lis.oru, gateway.lis.oru_check)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.model import Method
from gateway.config import LisConfig
from gateway.errors import LocalProtocolError
from gateway.lis.oru import OutboundResult, build_oru
from gateway.lis.oru_check import validate_oru
from gateway.model import Result
from gateway.national_id import D_NUMMER_OID, FH_NUMMER_OID, FODSELSNUMMER_OID, H_NUMMER_OID

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2024, 5, 1, 14, 0, 5, tzinfo=OSLO)  # summer time: 12:00:05 UTC
PERFORMED = datetime(2024, 5, 1, 13, 58, 30, tzinfo=OSLO)
LIS = LisConfig(
    url="tcp://127.0.0.1:2575",
    sending_facility="LEGEKONTOR",
    receiving_facility="SYKEHUS",
)

# Valid numbers (both mod-11 control digits hold): 01.01.1990, the same as D- and H-number.
FNR = "01019012480"
DNR = "41019012474"
HNR = "01419012463"
FHNR = "81234567802"


def _result(**changes: Any) -> Result:
    base = Result(
        instrument_id="afinion-1",
        test_code="CRP",
        value="12",
        value_type="NM",
        unit="mg/L",
        reference_range="<5",
        abnormal_flags=("H",),
        method=Method.MEASURED,
        performed_at=PERFORMED,
        operator_id="op17",
        specimen_id="S1",
        patient_id=FNR,
        nlk_code="NPU19748",
        test_name="CRP",
        instrument_serial="AS0123",
    )
    return replace(base, **changes)


def _out(result_id: int = 1, *, corrected: bool = False, **changes: Any) -> OutboundResult:
    return OutboundResult(result_id, _result(**changes), corrected=corrected)


def _build(*items: OutboundResult, control_id: str = "MSG0001") -> str:
    return build_oru(items, control_id=control_id, now=NOW, lis=LIS)


def _field(message: hl7.Message, segment: hl7.Segment, number: int) -> str:
    """SEG-n unescaped ('' when absent); python-hl7 counts MSH fields the HL7 way."""
    if number >= len(segment):
        return ""
    return str(message.unescape(str(segment[number])))


def _components(message: hl7.Message, segment: hl7.Segment, number: int) -> list[str]:
    raw = str(segment[number]) if number < len(segment) else ""
    return [str(message.unescape(part)) for part in raw.split("^")]


def _names(text: str) -> list[str]:
    return [segment[:3] for segment in text.split("\r") if segment]


# --- building ------------------------------------------------------------------------------


def test_one_result_gives_every_field_we_promise() -> None:
    text = _build(_out(comment="taken after meal"))
    validate_oru(text)
    assert text.endswith("\r") and "\n" not in text
    assert _names(text) == ["MSH", "PID", "ORC", "OBR", "OBX", "NTE"]
    assert text.startswith("MSH|^~\\&|TRYGG|LEGEKONTOR|LIS|SYKEHUS|20240501120005+0000||")

    message = hl7.parse(text)
    msh = message.segment("MSH")
    assert _field(message, msh, 9) == "ORU^R01^ORU_R01"
    assert _field(message, msh, 10) == "MSG0001"
    assert _field(message, msh, 11) == "P"
    assert _field(message, msh, 12) == "2.5.1"
    assert _field(message, msh, 15) == "" and _field(message, msh, 16) == ""  # original mode
    assert _field(message, msh, 18) == "UNICODE UTF-8"

    pid = message.segment("PID")
    assert str(pid[1]) == "1"
    assert str(pid[3]) == f"{FNR}^^^NO-FNR&{FODSELSNUMMER_OID}&ISO^NNNOR"
    assert str(pid[5]) == "^^^^^^U"

    orc, obr = message.segment("ORC"), message.segment("OBR")
    assert str(orc[1]) == "RE" and str(orc[3]) == "S1"
    assert str(obr[1]) == "1" and str(obr[3]) == "S1"
    assert str(obr[4]) == "NPU19748^CRP^NLK"
    assert str(obr[7]) == "20240501115830+0000"
    assert str(obr[22]) == "20240501120005+0000"
    assert str(obr[25]) == "F"

    obx = message.segment("OBX")
    expected = {
        1: "1",
        2: "NM",
        3: "NPU19748^CRP^NLK",
        5: "12",
        6: "mg/L^^UCUM",
        7: "<5",
        8: "H",
        11: "F",
        14: "20240501115830+0000",
        16: "op17",
        17: "measured^Measured by instrument^99TRYGG",
        18: "AS0123~afinion-1^TRYGG",
        19: "20240501115830+0000",
    }
    assert {n: str(obx[n]) for n in expected} == expected
    nte = message.segment("NTE")
    assert [str(nte[n]) for n in (1, 2, 3, 4)] == [
        "1",
        "L",
        "taken after meal",
        "RE^Remark^HL70364",
    ]


def test_results_group_by_patient_then_specimen_in_first_seen_order() -> None:
    items = [
        _out(1, patient_id=FNR, specimen_id="S1", value="1"),
        _out(2, patient_id=DNR, specimen_id="S3", value="2"),
        _out(3, patient_id=FNR, specimen_id="S2", value="3"),
        _out(4, patient_id=FNR, specimen_id="S1", value="4"),
        _out(5, patient_id=DNR, specimen_id="S3", value="5"),
    ]
    text = _build(*items)
    validate_oru(text)
    assert _names(text) == [
        "MSH",
        *["PID", "ORC", "OBR", "OBX", "OBX", "ORC", "OBR", "OBX"],
        *["PID", "ORC", "OBR", "OBX", "OBX"],
    ]
    message = hl7.parse(text)
    assert [str(s[3]).split("^")[0] for s in message.segments("PID")] == [FNR, DNR]
    assert [str(s[1]) for s in message.segments("PID")] == ["1", "2"]
    assert [str(s[3]) for s in message.segments("OBR")] == ["S1", "S2", "S3"]
    assert [str(s[1]) for s in message.segments("OBR")] == ["1", "2", "3"]
    obx = message.segments("OBX")
    assert [str(s[5]) for s in obx] == ["1", "4", "3", "2", "5"]
    assert [str(s[1]) for s in obx] == ["1", "2", "1", "1", "2"]


def test_corrected_result_marks_obx_11_and_its_order() -> None:
    text = _build(
        _out(1, specimen_id="S1"),
        _out(2, specimen_id="S1", corrected=True, value="14"),
        _out(3, specimen_id="S2"),
    )
    validate_oru(text)
    message = hl7.parse(text)
    assert [str(s[11]) for s in message.segments("OBX")] == ["F", "C", "F"]
    assert [str(s[25]) for s in message.segments("OBR")] == ["C", "F"]


DELIMITERS = "a|b^c~d\\e&f \\F\\ |^~\\& end"


def test_delimiters_are_escaped_and_round_trip() -> None:
    item = _out(
        value=DELIMITERS,
        value_type="ST",
        unit="x^y|z",
        reference_range="1&2~3",
        test_name="CRP ^ |quick|",
        specimen_id="S&1",
        operator_id="op|7",
        abnormal_flags=("H~", "A^"),
        instrument_serial="SN\\1",
        comment=DELIMITERS,
    )
    text = _build(item)
    validate_oru(text)
    obx_raw = next(s for s in text.split("\r") if s.startswith("OBX"))
    assert "|a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f \\E\\F\\E\\ \\F\\\\S\\\\R\\\\E\\\\T\\ end|" in obx_raw

    message = hl7.parse(text)
    obx, nte = message.segment("OBX"), message.segment("NTE")
    assert _field(message, obx, 5) == DELIMITERS
    assert _components(message, obx, 6) == ["x^y|z", "", "L"]
    assert _field(message, obx, 7) == "1&2~3"
    assert _components(message, obx, 3) == ["NPU19748", "CRP ^ |quick|", "NLK"]
    assert [str(message.unescape(f)) for f in str(obx[8]).split("~")] == ["H~", "A^"]
    assert _field(message, obx, 16) == "op|7"
    assert str(message.unescape(str(obx[18]).split("~")[0])) == "SN\\1"
    assert _field(message, message.segment("OBR"), 3) == "S&1"
    assert _field(message, nte, 3) == DELIMITERS


def test_comment_line_breaks_and_tabs_use_formatting_escapes() -> None:
    text = _build(_out(comment="line 1\r\nline 2\nline\t3"))
    validate_oru(text)
    nte = next(s for s in text.split("\r") if s.startswith("NTE"))
    assert nte.split("|")[3] == "line 1\\.br\\line 2\\.br\\line\\X09\\3"
    message = hl7.parse(text)
    assert _field(message, message.segment("NTE"), 3) == "line 1\rline 2\rline\t3"


@pytest.mark.parametrize(
    ("patient_id", "namespace", "oid"),
    [
        (FNR, "NO-FNR", FODSELSNUMMER_OID),
        (DNR, "NO-DNR", D_NUMMER_OID),
        (HNR, "NO-HNR", H_NUMMER_OID),
        (FHNR, "NO-FHN", FH_NUMMER_OID),
        ("01819012446", "NO-FNR", FODSELSNUMMER_OID),  # Tenor synthetic, month + 80
        ("41819010186", "NO-DNR", D_NUMMER_OID),  # Tenor synthetic D-number
    ],
)
def test_pid3_names_the_norwegian_identifier_system(
    patient_id: str, namespace: str, oid: str
) -> None:
    text = _build(_out(patient_id=patient_id))
    validate_oru(text)
    pid = hl7.parse(text).segment("PID")
    assert str(pid[3]) == f"{patient_id}^^^{namespace}&{oid}&ISO^NNNOR"


def test_anonymous_results_keep_pid_with_empty_pid3_one_per_specimen() -> None:
    text = _build(
        _out(1, patient_id="", specimen_id="QC1"),
        _out(2, patient_id="", specimen_id="QC2"),
        _out(3, patient_id="", specimen_id="QC1"),
    )
    validate_oru(text)
    assert _names(text) == [
        "MSH",
        *["PID", "ORC", "OBR", "OBX", "OBX"],
        *["PID", "ORC", "OBR", "OBX"],
    ]
    pids = [s for s in text.split("\r") if s.startswith("PID")]
    assert pids == ["PID|1||||^^^^^^U", "PID|2||||^^^^^^U"]


def test_result_without_specimen_is_its_own_order_numbered_by_result_id() -> None:
    text = _build(_out(7, specimen_id=""), _out(8, specimen_id=""))
    validate_oru(text)
    message = hl7.parse(text)
    assert [str(s[3]) for s in message.segments("ORC")] == ["7^TRYGG", "8^TRYGG"]
    assert [str(s[3]) for s in message.segments("OBR")] == ["7^TRYGG", "8^TRYGG"]
    assert len(message.segments("PID")) == 1  # same patient


def test_times_are_utc_with_explicit_offset_and_optional() -> None:
    winter = datetime(2024, 1, 15, 8, 30, tzinfo=OSLO)
    text = build_oru(
        [_out(1, performed_at=winter), _out(2, performed_at=None, specimen_id="S9")],
        control_id="T1",
        now=datetime(2024, 1, 15, 9, 0, tzinfo=UTC),
        lis=LIS,
    )
    validate_oru(text)
    message = hl7.parse(text)
    assert str(message.segment("MSH")[7]) == "20240115090000+0000"
    first, second = message.segments("OBX")
    assert str(first[14]) == str(first[19]) == "20240115073000+0000"
    assert _field(message, second, 14) == _field(message, second, 19) == ""
    assert _field(message, message.segments("OBR")[1], 7) == ""


@pytest.mark.parametrize(
    ("method", "code"),
    [
        (Method.MEASURED, "measured^Measured by instrument^99TRYGG"),
        (Method.VISUAL, "visual^Visual reading^99TRYGG"),
        (Method.MANUAL, "manual^Manual entry^99TRYGG"),
    ],
)
def test_method_codes(method: Method, code: str) -> None:
    text = _build(_out(method=method))
    validate_oru(text)
    assert str(hl7.parse(text).segment("OBX")[17]) == code


def test_local_test_code_and_instrument_without_serial() -> None:
    text = _build(_out(nlk_code="", test_code="HBA1C", test_name="HbA1c", instrument_serial=""))
    validate_oru(text)
    message = hl7.parse(text)
    obx = message.segment("OBX")
    assert str(obx[3]) == "HBA1C^HbA1c^L"
    assert str(message.segment("OBR")[4]) == "HBA1C^HbA1c^L"
    assert str(obx[18]) == "afinion-1^TRYGG"


@pytest.mark.parametrize(
    ("unit", "encoded"),
    [("mmol/L", "mmol/L^^UCUM"), ("µmol/L", "µmol/L^^L"), ("10^9/L", "10\\S\\9/L^^L"), ("", "")],
)
def test_unit_coding_system(unit: str, encoded: str) -> None:
    text = _build(_out(unit=unit))
    validate_oru(text)
    obx = next(s for s in text.split("\r") if s.startswith("OBX")).split("|")
    assert obx[6] == encoded


@pytest.mark.parametrize(
    ("value", "encoded"),
    [("<0.5", "<^0.5"), (">= 10", ">=^10"), ("1:128", "^1^:^128"), ("2-5", "^2^-^5"), ("7", "^7")],
)
def test_structured_numeric_values(value: str, encoded: str) -> None:
    text = _build(_out(value=value, value_type="SN"))
    validate_oru(text)
    assert str(hl7.parse(text).segment("OBX")[5]) == encoded


@pytest.mark.parametrize("value_type", ["ST", "TX", "CE", "FT"])
def test_text_value_types(value_type: str) -> None:
    text = _build(_out(value="POS", value_type=value_type))
    validate_oru(text)
    obx = hl7.parse(text).segment("OBX")
    assert (str(obx[2]), str(obx[5])) == (value_type, "POS")


def test_a_value_of_199_escaped_characters_is_the_most_hl7apy_accepts() -> None:
    validate_oru(_build(_out(value="x" * 199, value_type="ST")))
    with pytest.raises(LocalProtocolError) as caught:
        _build(_out(value="x" * 198 + "|", value_type="ST"))
    assert caught.value.field == "OBX-5"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"value": "12,5"}, "OBX-5"),  # NM needs a decimal point
        ({"value": ""}, "OBX-5"),
        ({"value": "high", "value_type": "SN"}, "OBX-5"),
        ({"value_type": "ED"}, "OBX-2"),
        ({"value": "a\x1cb", "value_type": "ST"}, "OBX-5"),  # MLLP end byte
        ({"value": '""', "value_type": "ST"}, "OBX-5"),
        ({"patient_id": "12345"}, "PID-3"),
        ({"performed_at": datetime(2024, 5, 1, 12, 0)}, "OBX-14"),  # noqa: DTZ001 (naive on purpose)
        ({"nlk_code": "", "test_code": ""}, "OBR-4"),
        ({"abnormal_flags": ("H" * 21,)}, "OBX-8"),
    ],
)
def test_unencodable_results_raise_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        _build(_out(**changes))
    assert caught.value.field == field


def test_builder_refuses_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        build_oru([], control_id="X", now=NOW, lis=LIS)
    for control_id in ("", "A" * 21, "A|B"):
        with pytest.raises(LocalProtocolError) as caught:
            _build(_out(), control_id=control_id)
        assert caught.value.field == "MSH-10"
    with pytest.raises(LocalProtocolError) as caught:
        build_oru([_out()], control_id="X", now=datetime(2024, 5, 1), lis=LIS)  # noqa: DTZ001
    assert caught.value.field == "MSH-7"
    with pytest.raises(LocalProtocolError) as caught:
        _build(_out(1, patient_id=FNR, specimen_id="S1"), _out(2, patient_id=DNR, specimen_id="S1"))
    assert caught.value.field == "OBR-3"
    long_name = LisConfig(url="tcp://127.0.0.1:2575", sending_application="A" * 21)
    with pytest.raises(LocalProtocolError) as caught:
        build_oru([_out()], control_id="X", now=NOW, lis=long_name)
    assert caught.value.field == "MSH-3"


# --- the outbound check --------------------------------------------------------------------

GOOD = _build(
    _out(1, comment="note"), _out(2, specimen_id="S2"), _out(3, patient_id=DNR, specimen_id="S3")
)


def _segments(text: str) -> list[str]:
    return text.rstrip("\r").split("\r")


def _swap_first_obr_and_obx(text: str) -> str:
    segments = _segments(text)
    i, j = _names(text).index("OBR"), _names(text).index("OBX")
    segments[i], segments[j] = segments[j], segments[i]
    return "\r".join(segments) + "\r"


def _edit_field(text: str, name: str, number: int, value: str) -> str:
    segments = _segments(text)
    index = _names(text).index(name)
    fields = segments[index].split("|")
    position = number - 1 if name == "MSH" else number
    fields += [""] * (position + 1 - len(fields))
    fields[position] = value
    segments[index] = "|".join(fields)
    return "\r".join(segments) + "\r"


def _drop(text: str, name: str) -> str:
    segments = _segments(text)
    del segments[_names(text).index(name)]
    return "\r".join(segments) + "\r"


def test_validate_accepts_a_built_message() -> None:
    validate_oru(GOOD)
    validate_oru(GOOD, with_hl7apy=False)


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        (_swap_first_obr_and_obx(GOOD), "OBX"),
        (_edit_field(GOOD, "MSH", 10, ""), "MSH-10"),
        (_edit_field(GOOD, "MSH", 12, "2.5"), "MSH-12"),
        (_edit_field(GOOD, "MSH", 9, "ORU^R01"), "MSH-9"),
        (_edit_field(GOOD, "OBX", 5, "twelve"), "OBX-5"),
        (_edit_field(GOOD, "OBX", 11, "Q"), "OBX-11"),
        (_edit_field(GOOD, "OBX", 14, "20240501115830"), "OBX-14"),  # no offset
        (_edit_field(GOOD, "PID", 3, f"{DNR}^^^NO-FNR&{FODSELSNUMMER_OID}&ISO^NNNOR"), "PID-3"),
        (_edit_field(GOOD, "PID", 3, f"{FNR}^^^NO-FNR"), "PID-3"),
        (_edit_field(GOOD, "OBR", 25, "K"), "OBR-25"),
        (GOOD.replace("\r", "\n"), None),
        (GOOD + "ZZZ|1\r", "ZZZ"),
        (GOOD + "PID|9||||^^^^^^U\r", None),  # a patient group without an OBR
        (_drop(GOOD, "OBR"), "OBX"),
        (GOOD.replace("MSH|^~\\&|", "MSH|^~\\#|", 1), "MSH-2"),
    ],
)
def test_validate_rejects_broken_messages(broken: str, field: str | None) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        validate_oru(broken)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        (_edit_field(GOOD, "ORC", 1, ""), "ORC-1"),  # required
        (_edit_field(GOOD, "OBX", 3, ""), "OBX-3"),  # required
        (_edit_field(GOOD, "OBR", 7, "20241301115830+0000"), None),  # month 13
        (_edit_field(GOOD, "PID", 5, ""), "PID-5"),  # required
    ],
)
def test_hl7apy_layer_catches_what_the_explicit_checks_do_not(
    broken: str, field: str | None
) -> None:
    validate_oru(broken, with_hl7apy=False)
    with pytest.raises(LocalProtocolError) as caught:
        validate_oru(broken)
    assert str(caught.value).startswith(f"{field}: hl7apy:" if field else "hl7apy:")


# --- property ------------------------------------------------------------------------------

# Printable: no control characters (Cc) and no lone surrogates (Cs); '""' is HL7's null.
printable = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=60).filter(
    lambda s: s != '""'
)
patients = st.sampled_from(["", FNR, DNR, HNR])


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.tuples(
            printable.filter(bool),
            printable,
            printable,
            printable.filter(bool),
            st.sampled_from(["ST", "TX", "CE"]),
            patients,
            st.sampled_from(["S1", "S2", ""]),
        ),
        min_size=1,
        max_size=4,
    ),
    reference=printable,
    test_name=printable,
)
def test_any_printable_text_validates_and_parses_back(
    items: list[tuple[str, str, str, str, str, str, str]], reference: str, test_name: str
) -> None:
    built: list[OutboundResult] = []
    for number, (value, unit, comment, operator, value_type, patient, specimen) in enumerate(
        items, start=1
    ):
        # One specimen belongs to one patient: qualify the specimen id by the patient.
        specimen_id = f"{specimen}-{patient or 'anon'}" if specimen else ""
        built.append(
            _out(
                number,
                value=value,
                value_type=value_type,
                unit=unit,
                comment=comment,
                operator_id=operator,
                patient_id=patient,
                specimen_id=specimen_id,
                reference_range=reference,
                test_name=test_name,
            )
        )
    text = build_oru(built, control_id="P1", now=NOW, lis=LIS)
    validate_oru(text)

    message = hl7.parse(text)
    parsed = [
        (
            _field(message, obx, 5),
            _components(message, obx, 6)[0] if _field(message, obx, 6) else "",
            _field(message, obx, 16),
            _field(message, obx, 7),
            _components(message, obx, 3)[1],
        )
        for obx in message.segments("OBX")
    ]
    comments = (
        [_field(message, nte, 3) for nte in message.segments("NTE")] if "\rNTE" in text else []
    )
    # Segments come out grouped, so compare as multisets of what went in.
    sent = [
        (r.result.value, r.result.unit, r.result.operator_id, reference, test_name) for r in built
    ]
    assert sorted(parsed) == sorted(sent)
    assert sorted(comments) == sorted(r.result.comment for r in built if r.result.comment)
