"""Result message parsing: the corpus fed three ways, field mapping, QC, errors, and fuzzing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.corpus import corpus_dir, corpus_files
from drivers.analysers.profiles.hl7_generic import is_qc, parse_results
from drivers.model import Method
from drivers.protocols.hl7.ack import read_msh
from drivers.protocols.hl7.message import (
    Delimiters,
    ParsedMessage,
    QcEvidence,
    Tree,
    escape,
    format_ts,
    parse_observations,
    parse_ts,
    split_message,
    unescape,
)
from drivers.protocols.hl7.mllp import MllpDecoder, frame
from gateway.errors import RemoteProtocolError
from tests.conftest import require_corpus

CORPUS = corpus_dir("hl7")
CORPUS_FILES = corpus_files("hl7", "*.hl7")

#: Files this parser refuses on purpose: file name -> (error field, why).
KNOWN_REFUSED = {
    "stago_start4_coag_oru_r01_v251_fixture_with_comment_lines.hl7": (
        "MSH",
        "starts with '#' comment lines, which are not HL7",
    ),
    "genexpert_qbp_z03_hostquery.hl7": ("MSH-9", "a host query (QBP^Z03), not a result message"),
    "genexpert_qcn_j01_cancelquery.hl7": ("MSH-9", "a query cancel (QCN^J01), not a result"),
    "pythonhl7_ack_aa_v23.hl7": ("MSH-9", "an acknowledgement, not a result message"),
    "fhirconv_oul_r22_v28_ihe_law_style.hl7": (
        "OBX[3]-3",
        "its third OBX (an ED attachment) has no observation identifier: a result without a "
        "test code cannot be mapped, and dropping it silently could lose a result",
    ),
}

#: Accepted files and how many observations each must yield.
EXPECTED_OBSERVATIONS = {
    "abbott_architect_oru_r01_v251_fixture.hl7": 2,
    "fhirconv_lab_oru_r01_v25_preliminary_and_incomplete.hl7": 10,
    "genexpert_oru_r32_ctng.hl7": 23,
    "mindray_bc5380_cbc_oru_r01_v231_fixture.hl7": 4,
    "mindray_bs200_chem_oru_r01_v231_fixture.hl7": 3,
    "nhapi_orf_r04_hba1c_v231_with_msa.hl7": 1,
    "pythonhl7_ghh_lab_oru_r01_v24.hl7": 2,
    "reportstream_poc_covid_oru_r01_v251_corrected.hl7": 6,
}

OSLO = ZoneInfo("Europe/Oslo")
GARBAGE = b"\x00\xffgarbage\r\n\x1c\r"


def corpus(name: str) -> bytes:
    return require_corpus(CORPUS / name).read_bytes()


def three_ways(raw: bytes) -> list[bytes]:
    """The sample through the MLLP decoder whole, byte by byte, and followed by garbage."""
    out = []
    whole = MllpDecoder()
    whole.receive_data(frame(raw))
    out.append(whole.next_message())
    trickle = MllpDecoder()
    got = []
    for byte in frame(raw):
        trickle.receive_data(bytes([byte]))
        if (message := trickle.next_message()) is not None:
            got.append(message)
    assert len(got) == 1
    out.append(got[0])
    garbage = MllpDecoder()
    garbage.receive_data(frame(raw) + GARBAGE)
    out.append(garbage.next_message())
    assert garbage.next_message() is None
    assert garbage.discarded == len(GARBAGE)
    assert all(m == raw for m in out)
    return [m for m in out if m is not None]


def outcome(raw: bytes) -> ParsedMessage | tuple[str | None, str]:
    try:
        return parse_results(raw, "inst-1")
    except RemoteProtocolError as exc:
        return (exc.field, str(exc))


# --------------------------------------------------------------------------- the corpus


@pytest.mark.corpus(CORPUS)
def test_corpus_is_present_and_every_file_is_classified() -> None:
    names = {p.name for p in CORPUS_FILES}
    assert names, "corpus directory is empty"
    unclassified = names - set(KNOWN_REFUSED) - set(EXPECTED_OBSERVATIONS)
    assert not unclassified, f"new corpus files need an expectation: {sorted(unclassified)}"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_sample_fed_three_ways(path: Path) -> None:
    raw = path.read_bytes()
    results = [outcome(message) for message in three_ways(raw)]
    assert results[0] == results[1] == results[2]
    result = results[0]
    if path.name in KNOWN_REFUSED:
        field, why = KNOWN_REFUSED[path.name]
        assert isinstance(result, tuple), f"expected refusal: {why}"
        assert result[0] == field, result[1]
        return
    assert isinstance(result, ParsedMessage), result
    msh = read_msh(raw)
    assert msh is not None
    assert result.control_id == msh.control_id
    expected = EXPECTED_OBSERVATIONS.get(path.name)
    if expected is not None:
        assert len(result.observations) == expected
    for obs in result.observations:
        assert obs.instrument_id == "inst-1"
        assert obs.test_code
        assert obs.performed_at is None or obs.performed_at.utcoffset() is not None


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_sample_with_cr_lf_and_crlf_separators(path: Path) -> None:
    text = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    variants = [text, text.replace(b"\n", b"\r"), text.replace(b"\n", b"\r\n")]
    results = [outcome(v) for v in variants]
    assert results[0] == results[1] == results[2]


def test_stago_comment_lines_are_refused_with_a_clear_error() -> None:
    raw = corpus("stago_start4_coag_oru_r01_v251_fixture_with_comment_lines.hl7")
    with pytest.raises(RemoteProtocolError) as info:
        parse_results(raw, "stago")
    assert info.value.field == "MSH"
    assert "must start with an MSH segment" in str(info.value)
    assert info.value.data is not None and info.value.data.startswith(b"# Stago")
    # without the comment lines the same message parses
    body = b"\n".join(line for line in raw.splitlines() if not line.startswith(b"#"))
    parsed = parse_results(body, "stago")
    assert [o.test_code for o in parsed.observations] == ["PT", "INR", "APTT", "FIB", "TT"]
    assert parsed.observations[0].reference_range == "11.0-13.5"


def test_ghh_glucose_mapping() -> None:
    parsed = parse_results(corpus("pythonhl7_ghh_lab_oru_r01_v24.hl7"), "ghh")
    assert (parsed.control_id, parsed.message_type, parsed.version) == (
        "CNTRL-3456",
        "ORU^R01",
        "2.4",
    )
    assert (parsed.sending_application, parsed.sending_facility) == ("GHH LAB", "ELAB-3")
    glucose = parsed.observations[0]
    assert (glucose.test_code, glucose.test_name, glucose.value_type) == ("1554-5", "GLUCOSE", "SN")
    assert (glucose.value, glucose.unit, glucose.reference_range) == ("182", "mg/dl", "70_105")
    assert glucose.abnormal_flags == ("H",)
    assert glucose.result_status == "F"
    assert glucose.patient_id == "555-44-4444"
    assert glucose.specimen_id == "1045813"  # OBR-3 filler order number
    # OBR-7 200202150730 in Oslo (winter, +01:00)
    assert glucose.performed_at == datetime(2002, 2, 15, 6, 30, tzinfo=UTC)
    assert glucose.is_qc is False


def test_mindray_code_in_component_four() -> None:
    parsed = parse_results(corpus("mindray_bc5380_cbc_oru_r01_v231_fixture.hl7"), "bc5380")
    first = parsed.observations[0]
    assert (first.test_code, first.test_name, first.value, first.unit) == (
        "WBC",
        "WHITE BLOOD CELL",
        "7.5",
        "10*3/uL",
    )
    assert first.patient_id == "PAT001"


def test_genexpert_operator_serial_comment_and_specimen() -> None:
    parsed = parse_results(corpus("genexpert_oru_r32_ctng.hl7"), "gx")
    assert parsed.message_type == "ORU^R32"
    assert parsed.message_structure == "ORU_R30"
    ct = parsed.observations[0]
    assert ct.value == "NOT DETECTED"
    assert ct.operator_id == "patricia barett"
    assert ct.instrument_serial == "20120527"
    assert ("sub_id", "CT") in ct.extra
    assert ct.comment == "Notes^^notes for OBM"
    assert ct.specimen_id == "sidOBM"  # from the SPM that follows the OBX
    assert ct.patient_id == "pidOBM"
    assert parsed.observations[2].value == "0.0"  # "^0.0" sent under ST
    assert parsed.observations[10].value == "DETECTED"
    assert parsed.observations[1].comment == ""


def test_preliminary_and_incomplete_statuses_and_spm_specimen() -> None:
    parsed = parse_results(corpus("fhirconv_lab_oru_r01_v25_preliminary_and_incomplete.hl7"), "lab")
    statuses = [o.result_status for o in parsed.observations[:5]]
    assert statuses == ["I", "P", "I", "P", "F"]
    assert parsed.observations[0].value == ""
    assert parsed.observations[1].unit == "tera.l-1"
    assert all(o.specimen_id == "SpecimenID" for o in parsed.observations)
    # 201410060627 in Oslo is summer time (+02:00)
    assert parsed.observations[1].performed_at == datetime(2014, 10, 6, 4, 27, tzinfo=UTC)


def test_offsets_fractions_and_coded_values() -> None:
    parsed = parse_results(corpus("reportstream_poc_covid_oru_r01_v251_corrected.hl7"), "poc")
    assert parsed.sent_at == datetime(2021, 6, 8, 18, 59, 37, 746000, tzinfo=UTC)
    covid = parsed.observations[0]
    assert (covid.value_type, covid.value, covid.result_status) == ("CWE", "840539006", "C")
    assert dict(covid.extra)["value_text"].startswith("Disease caused by")
    assert covid.performed_at == datetime(2021, 6, 4, 11, 25, tzinfo=UTC)
    assert covid.patient_id == "kc3oy"
    assert covid.specimen_id == "885617"


def test_orf_r04_unit_in_component_two() -> None:
    parsed = parse_results(corpus("nhapi_orf_r04_hba1c_v231_with_msa.hl7"), "q")
    hba1c = parsed.observations[0]
    assert parsed.message_type == "ORF^R04"
    assert (hba1c.value, hba1c.unit, hba1c.reference_range) == ("12", "% TOTAL HGB", "4.0 - 6.0")
    assert hba1c.patient_id == "38923"


# --------------------------------------------------------------------------- synthetic messages


def message(*segments: str, msh9: str = "ORU^R01^ORU_R01", version: str = "2.5.1") -> bytes:
    msh = f"MSH|^~\\&|AFINION|POC|TRYGG|LAB|20240115083000||{msh9}|C1|P|{version}"
    return "\r".join([msh, *segments]).encode()


def test_spm_role_q_marks_qc() -> None:
    parsed = parse_results(
        message(
            "OBR|1||QC-1|HBA1C^HbA1c",
            "OBX|1|NM|HBA1C^HbA1c||5.4|%|||||F|||20240115082900||||AF2-SN123",
            "SPM|1|CTRL-LOT-7||BLD|||||||Q",
        ),
        "afinion",
    )
    obs = parsed.observations[0]
    assert obs.is_qc is True
    assert obs.specimen_id == "CTRL-LOT-7"  # SPM-2 wins over OBR-3
    assert obs.instrument_serial == "AF2-SN123"
    assert obs.performed_at == datetime(2024, 1, 15, 7, 29, tzinfo=UTC)


def test_no_patient_and_qc_order_marks_qc() -> None:
    parsed = parse_results(
        message("OBR|1||S-1|QC^QC level 1", "OBX|1|NM|CRP^CRP||10|mg/L|||||F"), "x"
    )
    assert parsed.observations[0].is_qc is True


def test_patient_result_is_not_qc_even_if_text_mentions_control() -> None:
    parsed = parse_results(
        message(
            "PID|1||01017012345^^^^FNR",
            "OBR|1||S-1|QC^QC level 1",
            "OBX|1|NM|CRP^CRP||10|mg/L|||||F",
        ),
        "x",
    )
    obs = parsed.observations[0]
    assert (obs.is_qc, obs.patient_id) == (False, "01017012345")


def test_oul_r22_specimen_groups_precede_orders() -> None:
    raw = message(
        "PID|1||01017012345^^^^FNR",
        "SPM|1|SPEC-9||SER|||||||P",
        "OBR|1||ORD-1|CRP^CRP",
        "NTE|1||order note, not a result comment",
        "OBX|1|NM|CRP^C-reactive protein||12|mg/L|<5|H|||F|||20240115082000",
        "NTE|1||Hemolysed",
        "NTE|2||Repeat\\.br\\requested",
        "SPM|2|CTRL-1||SER|||||||Q",
        "OBR|2||ORD-2|CRP^CRP",
        "OBX|1|NM|CRP^C-reactive protein||45|mg/L|||||F",
        msh9="OUL^R22^OUL_R22",
    )
    first, second = parse_results(raw, "cobas").observations
    assert (first.specimen_id, first.is_qc, first.abnormal_flags) == ("SPEC-9", False, ("H",))
    assert first.reference_range == "<5"
    assert first.comment == "Hemolysed\nRepeat\nrequested"
    assert (second.specimen_id, second.is_qc, second.comment) == ("CTRL-1", True, "")


@pytest.mark.parametrize(
    ("obx17", "method"),
    [
        ("VIS^Visual reading^L", Method.VISUAL),
        ("^Visuell avlesning", Method.VISUAL),
        ("MAN^Manuell registrering", Method.MANUAL),
        ("AUTO^Photometry", None),
        ("", None),
    ],
)
def test_method_from_obx17(obx17: str, method: Method | None) -> None:
    obx = f"OBX|1|ST|UHCG^Urine hCG||NEG||||||F|||||OP7^Nordmann^Kari|{obx17}"
    obs = parse_results(message("PID|1||1", "OBR|1||S", obx), "x").observations[0]
    assert obs.method == method
    assert obs.operator_id == "OP7"


@pytest.mark.parametrize(
    ("obx2", "obx5", "value", "extra"),
    [
        ("SN", "<^5", "<5", None),
        ("SN", "^1^:^128", "1:128", None),
        ("NM", "60~120", "60~120", None),
        ("ST", "pos\\S\\neg", "pos^neg", None),
        ("ST", "a\\F\\b\\E\\c\\T\\d\\R\\e", "a|b\\c&d~e", None),
        ("ST", "hex \\X41C6\\", "hex AÆ", None),
        ("CWE", "260385009^Negative^SCT", "260385009", ("value_text", "Negative")),
        ("CE", "^Positive", "Positive", ("value_text", "Positive")),
        ("", "  7.1 ", "7.1", None),
    ],
)
def test_value_mapping(obx2: str, obx5: str, value: str, extra: tuple[str, str] | None) -> None:
    obx = f"OBX|1|{obx2}|GLU^Glucose||{obx5}|mmol/L^^UCUM|||||F"
    obs = parse_results(message(obx), "x").observations[0]
    assert obs.value == value
    assert obs.value_type == (obx2 or "ST")
    assert obs.unit == "mmol/L"
    if extra:
        assert extra in obs.extra


def test_repeated_flags_and_equipment() -> None:
    obx = "OBX|1|NM|K^Kalium||6.1|mmol/L|3.5-5.0|H~A|||F|||||||SN-1~SN-2"
    obs = parse_results(message(obx), "x").observations[0]
    assert obs.abnormal_flags == ("H", "A")
    assert obs.instrument_serial == "SN-1"
    assert ("equipment", "SN-1~SN-2") in obs.extra


def test_custom_delimiters() -> None:
    raw = (
        b"MSH#$*\\@#APP#FAC#TRYGG#LAB#20240115083000##ORU$R01#C9#P#2.5.1\n"
        b"PID#1##555$$$$FNR\n"
        b"OBX#1#SN#GLU$Glucose##$5.5#mmol/L$$UCUM#4-6#H*A###F\n"
    )
    parsed = parse_results(raw, "x")
    obs = parsed.observations[0]
    assert (parsed.message_type, obs.patient_id, obs.value) == ("ORU^R01", "555", "5.5")
    assert (obs.test_name, obs.unit, obs.abnormal_flags) == ("Glucose", "mmol/L", ("H", "A"))


def test_latin1_declared_in_msh18_and_undeclared_fallback() -> None:
    declared = (
        b"MSH|^~\\&|A|B|C|D|20240115083000||ORU^R01|C1|P|2.5.1||||||8859/1\r"
        b"OBX|1|NM|GLU^Gluk\xf8se||5|mmol/L|||||F\r"
    )
    assert parse_results(declared, "x").observations[0].test_name == "Glukøse"
    undeclared = declared.replace(b"8859/1", b"")
    assert parse_results(undeclared, "x").observations[0].test_name == "Glukøse"
    utf8 = undeclared.replace(b"\xf8", "ø".encode())
    assert parse_results(utf8, "x").observations[0].test_name == "Glukøse"


def test_header_facts() -> None:
    parsed = parse_results(message("OBX|1|NM|A^B||1|u|||||F"), "x")
    assert parsed.sending_application == "AFINION"
    assert parsed.sending_facility == "POC"
    assert parsed.receiving_application == "TRYGG"
    assert parsed.receiving_facility == "LAB"
    assert parsed.message_structure == "ORU_R01"
    assert parsed.processing_id == "P"
    assert parsed.sent_at == datetime(2024, 1, 15, 7, 30, tzinfo=UTC)


def test_local_time_zone_is_a_parameter() -> None:
    raw = message("OBX|1|NM|A^B||1|u|||||F|||20240701120000")
    assert parse_results(raw, "x").observations[0].performed_at == datetime(
        2024, 7, 1, 10, 0, tzinfo=UTC
    )
    assert parse_observations(raw, "x", tz=UTC, qc=is_qc).observations[0].performed_at == (
        datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    )


def test_what_is_qc_is_the_callers_policy() -> None:
    raw = message(
        "OBR|1||QC-1|HBA1C^HbA1c",
        "OBX|1|NM|HBA1C^HbA1c||5.4|%|||||F",
        "OBX|2|NM|HBA1C^HbA1c||5.5|%|||||F",
        "SPM|1|CTRL-LOT-7||BLD^Blood|||||||Q^Control",
    )
    seen: list[QcEvidence] = []

    def never(evidence: QcEvidence) -> bool:
        seen.append(evidence)
        return False

    parsed = parse_observations(raw, "x", tz=UTC, qc=never)
    assert [o.is_qc for o in parsed.observations] == [False, False]
    # asked once for the group its two OBX share, with what the message says
    assert seen == [
        QcEvidence(
            patient_id="",
            specimen_id="CTRL-LOT-7",
            specimen_roles=(("Q", "Control"),),
            descriptions=("HBA1C HbA1c", "BLD Blood"),
        )
    ]
    always = parse_observations(raw, "x", tz=UTC, qc=lambda evidence: True)
    assert [o.is_qc for o in always.observations] == [True, True]
    assert [o.is_qc for o in parse_results(raw, "x").observations] == [True, True]


def test_a_message_without_obx_has_no_observations() -> None:
    assert parse_results(message("PID|1||1", "OBR|1||S"), "x").observations == ()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "MSH"),
        (b"\r\n\r\n", "MSH"),
        (b"garbage", "MSH"),
        (b"MSH", "MSH-1"),
        (b"MSHA^~\\&|x", "MSH-1"),
        (b"MSH|^^~&|A", "MSH-2"),
        (b"MSH|^~\\|A", "MSH-2"),
        (message("obx|1|NM|A||1"), "segment[2]"),
        (message("OBX^1"), "segment[2]"),
        (message("PID|1", "MSH|^~\\&|A"), "segment[3]"),
        (message(msh9="QBP^Z03^QBP_Z03"), "MSH-9"),
        (message(msh9="ORU^R99"), "MSH-9"),
        (message(msh9=""), "MSH-9"),
        (message(version="3.0"), "MSH-12"),
        (message("OBX|1|NM|A^B||1"), None),
        (message("OBX|1|NM|A^B||1", "OBX|2|NM|||1"), "OBX[2]-3"),
        (message("OBX|1|NM|A^B||1||||||F|||2024013"), "OBX[1]-14"),
        (message("OBX|1|NM|A^B||1||||||F|||20241301"), "OBX[1]-14"),
        (message("OBX|1|NM|A^B||1||||||F|||20240101120000+2500"), "OBX[1]-14"),
        (message("OBR|1||S||||yesterday"), "OBR[1]-7"),
        (b"MSH|^~\\&|A|B|C|D|2024-01-01||ORU^R01|1|P|2.5.1", "MSH-7"),
        (b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01||P|2.5.1", "MSH-10"),
    ],
)
def test_refusals_name_the_field(raw: bytes, field: str | None) -> None:
    if field is None:
        parse_results(raw, "x")
        return
    with pytest.raises(RemoteProtocolError) as info:
        parse_results(raw, "x")
    assert info.value.field == field
    assert isinstance(info.value.data, bytes)
    assert info.value.data or not raw


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024", datetime(2023, 12, 31, 23, 0, tzinfo=UTC)),
        ("20240701", datetime(2024, 6, 30, 22, 0, tzinfo=UTC)),
        ("202407011230", datetime(2024, 7, 1, 10, 30, tzinfo=UTC)),
        ("20240701123015.25", datetime(2024, 7, 1, 10, 30, 15, 250000, tzinfo=UTC)),
        ("20240701123015-0500", datetime(2024, 7, 1, 17, 30, 15, tzinfo=UTC)),
        ("20240115120000+0000", datetime(2024, 1, 15, 12, 0, tzinfo=UTC)),
        ("20241027023000", datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),  # ambiguous: first (DST)
    ],
)
def test_parse_ts(text: str, expected: datetime) -> None:
    assert parse_ts(text, tz=OSLO) == expected


@pytest.mark.parametrize("text", ["", "24", "2024-07-01", "20240230", "99991231235959-1200", "x"])
def test_parse_ts_refuses(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_ts(text, tz=OSLO, field="OBX[1]-14")
    assert info.value.field == "OBX[1]-14"


def test_format_ts() -> None:
    assert format_ts(datetime(2024, 7, 1, 12, 0, 5, tzinfo=UTC)) == "20240701120005+0000"
    assert format_ts(datetime(2024, 7, 1, 12, 0, 5)) == "20240701120005"  # noqa: DTZ001
    # DTM's year is always four digits (strftime's %Y would give "999")
    assert format_ts(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "09990102030405+0000"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_escape_unescape_round_trip(text: str) -> None:
    assert unescape(escape(text)) == text.replace("\r\n", "\n").replace("\r", "\n")
    custom = Delimiters("#", "$", "*", "!", "@")
    assert unescape(escape(text, custom), custom) == text.replace("\r\n", "\n").replace("\r", "\n")
    for char in "|^~&\r":
        assert char not in escape(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_escape_with_hex_controls_leaves_no_control_and_round_trips(text: str) -> None:
    escaped = escape(text, hex_controls=True)
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in escaped)
    assert unescape(escaped) == text.replace("\r\n", "\n").replace("\r", "\n")


def test_escape_hex_controls_are_section_2_7_hex_sequences() -> None:
    assert escape("a\tb\x01|", hex_controls=True) == "a\\X09\\b\\X01\\\\F\\"
    assert escape("a\tb") == "a\tb"  # without the flag, controls other than line breaks stay


def test_unescape_keeps_unknown_and_broken_sequences() -> None:
    assert unescape("a\\Zfoo\\b") == "a\\Zfoo\\b"
    assert unescape("tail\\F") == "tail\\F"
    assert unescape("\\H\\bold\\N\\") == "bold"
    assert unescape("\\Xzz\\") == "\\Xzz\\"


# --------------------------------------------------------------------------- python-hl7 as oracle


def hl7_tree(field: Any) -> Tree:
    """python-hl7's nested containers (whose depth varies) as a repetition/component tree."""
    reps: Tree = []
    for rep in field:
        if isinstance(rep, str):
            reps.append([[rep]])
        else:
            reps.append([[comp] if isinstance(comp, str) else list(comp) for comp in rep])
    return reps or [[[""]]]


def assert_same_split_as_python_hl7(raw: bytes) -> None:
    segments = split_message(raw)
    oracle = hl7.parse("\r".join(s.raw for s in segments))
    assert len(oracle) == len(segments)
    for ours, theirs in zip(segments, oracle, strict=True):
        assert ours.field_count == len(theirs) - 1
        for n in range(3 if ours.name == "MSH" else 1, len(theirs)):
            assert ours.tree(n) == hl7_tree(theirs[n]), (ours.raw, n)


@pytest.mark.parametrize(
    "path", [p for p in CORPUS_FILES if p.name in EXPECTED_OBSERVATIONS], ids=lambda p: p.name
)
def test_splitting_agrees_with_python_hl7_on_the_corpus(path: Path) -> None:
    assert_same_split_as_python_hl7(path.read_bytes())


field_text = st.text(alphabet="AZ09 .-^~&", max_size=10)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["PID", "OBR", "OBX", "NTE", "ZXY"]), st.lists(field_text)),
        max_size=6,
    )
)
def test_splitting_agrees_with_python_hl7_on_generated_messages(
    segments: list[tuple[str, list[str]]],
) -> None:
    lines = ["MSH|^~\\&|A^B&C|F~G||||||ORU^R01|1|P|2.5.1"]
    lines += ["|".join([name, *fields]).rstrip() for name, fields in segments]
    assert_same_split_as_python_hl7("\r".join(lines).encode())


# --------------------------------------------------------------------------- the fuzz invariant


def hl7ish() -> st.SearchStrategy[bytes]:
    ts = st.one_of(
        st.text(alphabet="0123456789", max_size=16),
        st.sampled_from(["20240115083000", "20240701120000+0200", "2024.5", "20240101+9999"]),
    )
    value = st.text(alphabet="AB01.<^~&\\XF ", max_size=8)
    obx = st.builds(
        lambda vt, code, v, when, op, method: (
            f"OBX|1|{vt}|{code}||{v}|u|r|H~L|||F|||{when}||{op}|{method}|SN"
        ),
        st.sampled_from(["NM", "SN", "CWE", "ST", "", "ED"]),
        st.sampled_from(["GLU^Glucose", "^^^WBC^White", "", "&&", "A\\S\\B"]),
        value,
        ts,
        value,
        value,
    )
    other = st.sampled_from(
        [
            "PID|1||123^^^^FNR",
            "PID",
            "OBR|1|P|F|QC^Control|||20240115",
            "SPM|1|S&X^T||BLD|||||||Q",
            "SPM|",
            "NTE|1||note\\.br\\",
            "ORC|RE",
            "",
            "bad line",
        ]
    )
    header = st.builds(
        lambda msh9, control, version, when: (
            f"MSH|^~\\&|A|B|C|D|{when}||{msh9}|{control}|P|{version}"
        ),
        st.sampled_from(["ORU^R01", "OUL^R22", "ORF^R04", "ORU^R32^ORU_R30", "QBP^Z03", ""]),
        st.sampled_from(["C1", ""]),
        st.sampled_from(["2.5.1", "2.3", "", "3"]),
        ts,
    )
    return st.builds(
        lambda h, body, sep: sep.join([h, *body]).encode("utf-8"),
        header,
        st.lists(st.one_of(obx, other), max_size=8),
        st.sampled_from(["\r", "\n", "\r\n"]),
    )


def mutated_corpus() -> st.SearchStrategy[bytes]:
    samples = [p.read_bytes() for p in CORPUS_FILES] or [message("OBX|1|NM|A^B||1|u|||||F")]

    def mutate(sample: bytes, seed: int, edits: int) -> bytes:
        rng = random.Random(seed)
        data = bytearray(sample)
        for _ in range(edits):
            at = rng.randrange(len(data) + 1)
            action = rng.randrange(3)
            byte = rng.choice(b"|^~\\&\r\n0123456789AZ \x00\xff")
            if action == 0:
                data.insert(at, byte)
            elif action == 1 and at < len(data):
                del data[at]
            elif at < len(data):
                data[at] = byte
        return bytes(data)

    return st.builds(mutate, st.sampled_from(samples), st.integers(0, 2**32), st.integers(1, 12))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), hl7ish(), mutated_corpus()))
def test_any_bytes_parse_or_raise_remote_protocol_error(raw: bytes) -> None:
    try:
        parsed = parse_results(raw, "fuzz")
    except RemoteProtocolError as exc:
        assert exc.field, str(exc)
        assert isinstance(exc.data, bytes)
    else:
        assert isinstance(parsed, ParsedMessage)
        for obs in parsed.observations:
            assert obs.test_code
            assert obs.performed_at is None or obs.performed_at.tzinfo is UTC


_PLAIN_TEXT = st.text(alphabet="AB1 .-<>:^", max_size=12)
_TIMES = st.sampled_from(["", "20261122101500", "202611221015+0100", " 20261122 "])


@settings(max_examples=300, deadline=None)
@given(
    fields=st.lists(_PLAIN_TEXT, min_size=1, max_size=20),
    value_type=st.sampled_from(["NM", "ST", "CE", "CWE", "SN", "", " nm "]),
    when=_TIMES,
)
def test_the_simple_obx_reader_agrees_with_the_general_one(
    fields: list[str], value_type: str, when: str
) -> None:
    from drivers.protocols.hl7 import message as m

    fields = [*fields, *[""] * (19 - len(fields))]
    fields[1], fields[13] = value_type, when
    fields[2] = fields[2] or "CODE"
    raw = "OBX|" + "|".join(fields)
    seg = m.Segment(raw, 1, m.DEFAULT_DELIMITERS)
    assert m._simple(seg)
    try:
        general = m._obx_fields_general(seg, OSLO)
    except RemoteProtocolError as exc:
        with pytest.raises(RemoteProtocolError) as raised:
            m._obx_fields_simple(seg, OSLO)
        assert raised.value.field == exc.field
        return
    assert m._obx_fields_simple(seg, OSLO) == general
