"""ACK building and parsing: corpus round trips, broken input, escaping, ERR, fuzz invariants."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.corpus import corpus_files
from drivers.protocols.hl7.ack import Ack, build_ack, parse_ack, read_msh
from drivers.protocols.hl7.message import detect_charset
from drivers.protocols.hl7.mllp import frame
from gateway.errors import LocalProtocolError, RemoteProtocolError

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ORU = (
    b"MSH|^~\\&|ANALYSER|POC|TRYGG|LAB|20240501115900||ORU^R01^ORU_R01|MSG-17|P|2.5.1\r"
    b"PID|1||12345678901\rOBR|1||S1|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.5|mmol/L|||||F\r"
)


def segments(ack: bytes) -> list[list[str]]:
    return [line.split("|") for line in ack.decode().split("\r") if line]


def segments_latin1(ack: bytes) -> list[list[str]]:
    return [line.split("|") for line in ack.decode("latin-1").split("\r") if line]


@pytest.mark.parametrize("path", corpus_files("hl7", "*.hl7"), ids=lambda p: p.name)
@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_every_corpus_message_gets_an_ack_that_reads_back(path: Path, code: str) -> None:
    raw = path.read_bytes()
    ack = build_ack(raw, code, control_id="ACK-1", now=NOW, text="checked")
    frame(ack)  # frameable: no VT/FS inside
    parsed = parse_ack(ack)
    msh = read_msh(raw)
    assert msh is not None  # every corpus file has an MSH (the stago file after comment lines)
    assert parsed.code == code
    assert parsed.acked_control_id == msh.control_id != ""
    assert parsed.control_id == "ACK-1"
    assert parsed.text == "checked"
    assert parsed.version == msh.version
    # an independent parser agrees on the structure
    other = hl7.parse(ack.decode())
    assert str(other.segment("MSH")(9)) == f"ACK^{msh.trigger_event}^ACK"
    assert str(other.segment("MSA")(2)) == msh.control_id


def test_ack_fields_follow_the_original() -> None:
    ack = build_ack(ORU, "AA", control_id="A1", now=NOW, sending_facility="OUS")
    msh, msa = segments(ack)
    assert msh[:12] == [
        "MSH",
        "^~\\&",
        "TRYGG",
        "OUS",
        "ANALYSER",
        "POC",
        "20240501120000+0000",
        "",
        "ACK^R01^ACK",
        "A1",
        "P",
        "2.5.1",
    ]
    assert msa == ["MSA", "AA", "MSG-17"]
    assert ack.endswith(b"\r")


def test_timestamp_keeps_the_local_offset() -> None:
    summer = datetime(2024, 7, 1, 14, 0, 0, tzinfo=ZoneInfo("Europe/Oslo"))
    assert segments(build_ack(ORU, "AA", control_id="A", now=summer))[0][6] == (
        "20240701140000+0200"
    )


@pytest.mark.parametrize("separator", [b"\r", b"\n", b"\r\n"])
def test_segment_separators_are_all_accepted(separator: bytes) -> None:
    raw = ORU.replace(b"\r", separator)
    ack = build_ack(raw, "AA", control_id="A", now=NOW)
    assert parse_ack(ack).acked_control_id == "MSG-17"
    assert parse_ack(ack.replace(b"\r", separator)).acked_control_id == "MSG-17"


def test_broken_body_still_gets_an_ack_from_its_msh() -> None:
    broken = ORU.replace(b"PID|1", b"#not a segment\x00\xff|1").replace(b"2.5.1", b"2.4")
    ack = parse_ack(build_ack(broken, "AR", control_id="A", now=NOW, text="bad"))
    assert (ack.code, ack.acked_control_id, ack.version) == ("AR", "MSG-17", "2.4")


def test_junk_before_msh_is_skipped() -> None:
    raw = b"# comment line\n\n" + ORU
    assert parse_ack(build_ack(raw, "AR", control_id="A", now=NOW)).acked_control_id == "MSG-17"


@pytest.mark.parametrize("garbage", [b"", b"hello", b"\xff\xfe\x00", b"MSH", b"MSHA|^~\\&|x"])
def test_no_usable_msh_falls_back_to_defaults(garbage: bytes) -> None:
    ack = build_ack(garbage, "AR", control_id="A", now=NOW, text="unreadable")
    msh, msa = segments(ack)[:2]
    assert msh[1] == "^~\\&"
    assert msh[8] == "ACK"
    assert msh[11] == "2.5.1"
    assert msa == ["MSA", "AR", "", "unreadable"]
    assert parse_ack(ack).acked_control_id == ""


def test_unusable_encoding_characters_fall_back_and_escape_copied_fields() -> None:
    raw = b"MSH|^^|APP^X|FAC|||20240101||ORU^R01|ID^1|P|2.5.1\r"
    ack = build_ack(raw, "AR", control_id="A", now=NOW)
    msh = segments(ack)[0]
    assert msh[1] == "^~\\&"
    assert msh[4] == "APP\\S\\X"
    assert parse_ack(ack).acked_control_id == "ID^1"


def test_custom_delimiters_are_kept() -> None:
    raw = (
        ORU.replace(b"|", b"#").replace(b"^~\\&", b"$*\\@").replace(b"ORU^R01^ORU_R01", b"ORU$R01")
    )
    ack = build_ack(raw, "AE", control_id="A", now=NOW, text="a#b$c")
    assert ack.startswith(b"MSH#$*\\@#TRYGG#")
    assert b"ACK$R01$ACK" in ack
    parsed = parse_ack(ack)
    assert (parsed.code, parsed.acked_control_id, parsed.text) == ("AE", "MSG-17", "a#b$c")


def test_text_is_escaped_and_read_back() -> None:
    text = "Ugyldig prøve | felt ^ del ~ rep & sub \\ esc\nlinje 2"
    ack = build_ack(ORU, "AE", control_id="A", now=NOW, text=text)
    assert b"\\F\\" in ack and b"\\S\\" in ack and b"\\.br\\" in ack
    assert parse_ack(ack).text == text


def test_control_characters_in_text_cannot_break_framing() -> None:
    ack = build_ack(ORU, "AE", control_id="A", now=NOW, text="bad\x0bvt\x1cfs\x00nul")
    frame(ack)
    assert parse_ack(ack).text == "bad vt fs nul"


def test_long_text_is_cut_in_msa_and_kept_whole_in_err() -> None:
    text = "x" * 200
    ack = build_ack(ORU, "AE", control_id="A", now=NOW, text=text, error_code="207")
    _msh, msa, err = segments(ack)
    assert msa[3] == "x" * 80
    assert err[8] == text


def test_err_segment_v25_layout() -> None:
    ack = build_ack(
        ORU, "AE", control_id="A", now=NOW, text="no value", error_code="101",
        error_location="OBX[3]-5",
    )  # fmt: skip
    err = segments(ack)[2]
    assert err[:5] == ["ERR", "", "OBX^3^5", "101^Required field missing^HL70357", "E"]
    assert err[8] == "no value"
    assert parse_ack(ack).error_code == "101"


def test_err_segment_v23_layout() -> None:
    raw = ORU.replace(b"2.5.1", b"2.3")
    ack = build_ack(raw, "AR", control_id="A", now=NOW, error_code="203", error_location="MSH-12")
    err = segments(ack)[2]
    assert err == ["ERR", "MSH^1^12^203&Unsupported version id&HL70357"]
    parsed = parse_ack(ack)
    assert (parsed.error_code, parsed.text) == ("203", "Unsupported version id")


def test_no_trigger_gives_plain_ack_type() -> None:
    raw = ORU.replace(b"ORU^R01^ORU_R01", b"ORU")
    assert segments(build_ack(raw, "AA", control_id="A", now=NOW))[0][8] == "ACK"


@pytest.mark.parametrize("code", ["", "OK", "aa", "AAA"])
def test_build_refuses_unknown_codes(code: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        build_ack(ORU, code, control_id="A", now=NOW)
    assert info.value.field == "MSA-1"


def test_build_needs_a_control_id() -> None:
    with pytest.raises(LocalProtocolError):
        build_ack(ORU, "AA", control_id="", now=NOW)


def test_parse_textbook_ack() -> None:
    raw = (
        b"MSH|^~\\&|LABADT|DH|EPICADT|DH|201301011228||ACK^A01^ACK|HL7ACK00001|P|2.3\r"
        b"MSA|AA|HL7MSG00001\r"
    )
    assert parse_ack(raw) == Ack("AA", "HL7MSG00001", "", "HL7ACK00001", "", "2.3")
    assert parse_ack(raw).accepted


def test_parse_reads_err_text_when_msa3_is_empty() -> None:
    raw = (
        b"MSH|^~\\&|LIS||TRYGG||20240101||ACK^R01^ACK|9|P|2.5.1\n"
        b"MSA|AE|MSG-17\nERR||PID^1^3|101^Required field missing^HL70357|E||||Pasient-ID mangler\n"
    )
    ack = parse_ack(raw)
    assert (ack.code, ack.text, ack.error_code, ack.accepted) == (
        "AE",
        "Pasient-ID mangler",
        "101",
        False,
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "MSH"),
        (b"MSA|AA|1\r", "MSH"),
        (b"MSH|^~\\&|A||||x||ORU^R01|1|P|2.5.1\rMSA|AA|1\r", "MSH-9"),
        (b"MSH|^~\\&|A||||x||ACK^R01^ACK|1|P|2.5.1\r", "MSA"),
        (b"MSH|^~\\&|A||||x||ACK^R01^ACK|1|P|2.5.1\rMSA|OK|1\r", "MSA-1"),
        (b"MSH|^~\\&|A||||x||ACK^R01^ACK|1|P|2.5.1\rMSA||1\r", "MSA-1"),
        (b"MSHA^~\\&|A\rMSA|AA|1\r", "MSH-1"),
        (b"MSH|^^\\&|A||||x||ACK|1\rMSA|AA|1\r", "MSH-2"),
    ],
)
def test_parse_names_the_broken_field(raw: bytes, field: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_ack(raw)
    assert info.value.field == field


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(alphabet="MSHACK|^~\\&\r\nAERX0129.", max_size=120).map(str.encode),
        st.text(max_size=120).map(lambda t: ("MSH|^~\\&|||||||ACK|1|P|2.5\rMSA|" + t).encode()),
    )
)
def test_parse_ack_either_parses_or_raises_remote_protocol_error(raw: bytes) -> None:
    try:
        ack = parse_ack(raw)
    except RemoteProtocolError as exc:
        assert exc.field
    else:
        assert ack.code in {"AA", "AE", "AR", "CA", "CE", "CR"}


def as_read_back(value: str, charset: str) -> str:
    """What a value looks like after build_ack and parse_ack: controls blanked, breaks as LF."""
    value = "".join(c if c >= " " or c in "\t\r\n" else " " for c in value).replace("\x7f", " ")
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.encode(charset, "replace").decode(charset).strip()


LATIN1_ORU = ORU.replace(b"|P|2.5.1", b"|P|2.5.1||||||8859/1").replace(b"Glucose", b"Gluk\xf8se")


@settings(max_examples=200, deadline=None)
@given(
    raw=st.one_of(st.binary(max_size=200), st.sampled_from([ORU, LATIN1_ORU])),
    code=st.sampled_from(["AA", "AE", "AR"]),
    text=st.text(max_size=100),
    control_id=st.text(min_size=1, max_size=20).filter(lambda t: t.strip() != ""),
)
def test_build_ack_always_round_trips(raw: bytes, code: str, text: str, control_id: str) -> None:
    ack = build_ack(raw, code, control_id=control_id, now=NOW, text=text)
    frame(ack)
    parsed = parse_ack(ack)
    charset = detect_charset(raw) if read_msh(raw) is not None else "utf-8"
    assert parsed.code == code
    assert parsed.text == as_read_back(text[:80], charset)
    assert parsed.control_id == as_read_back(control_id, charset)
    if raw in (ORU, LATIN1_ORU):
        assert parsed.acked_control_id == "MSG-17"


def test_latin1_message_gets_a_latin1_ack() -> None:
    ack = build_ack(LATIN1_ORU, "AE", control_id="A", now=NOW, text="Ugyldig prøve")
    assert "Ugyldig prøve".encode("latin-1") in ack
    assert segments_latin1(ack)[0][17] == "8859/1"
    assert parse_ack(ack).text == "Ugyldig prøve"
