"""ASTM E1394 records: delimiters, escapes, corpus messages, round trips and the fuzz invariant."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.corpus import corpus_dir
from drivers.protocols.astm.frames import FrameAssembler
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Field,
    Record,
    encode_message,
    encode_record,
    escape,
    parse_message,
    text_field,
    unescape,
)
from gateway.errors import LocalProtocolError, RemoteProtocolError

CORPUS = corpus_dir("astm")
needs_corpus = pytest.mark.corpus(CORPUS)

SIMPLE = b"H|\\^&|||Lab^1\rP|1||PID-7\rR|1|^^^GLU|5,4|mmol/L\rL|1|N\r"


def framed_message(name: str) -> bytes:
    """The message text of a framed corpus file (lenient framing, as some files need it)."""
    raw = (CORPUS / name).read_bytes()
    frames = [b"\x02" + p.rstrip(b"\x04\x05\x06") for p in raw.split(b"\x02")[1:]]
    assembler = FrameAssembler(lenient=True)
    return b"".join(m for f in frames if (m := assembler.feed(f)) is not None)


# --- basics -------------------------------------------------------------------------------------


def test_parse_simple_message() -> None:
    h, p, r, last = parse_message(SIMPLE)
    assert h == Record("H", (text_field("\\^&"), text_field(""), text_field(""), (("Lab", "1"),)))
    assert p.type == "P" and p.value(2) == "1" and p.value(4) == "PID-7"
    assert r.field(3) == (("", "", "", "GLU"),)
    assert r.value(3, component=3) == "GLU"
    assert r.value(4) == "5,4"  # a decimal comma is left alone; the analyser profile maps it
    assert r.value(40) == "" and r.field(40) == ()
    assert last == Record("L", (text_field("1"), text_field("N")))
    assert encode_message([h, p, r, last]) == SIMPLE


def test_field_numbers_start_at_two() -> None:
    with pytest.raises(IndexError):
        Record("L", ()).field(1)


def test_repeats_and_custom_delimiters() -> None:
    # Cepheid GeneXpert declares H|@^\ : repeat '@', component '^', escape '\'.
    text = "H|@^\\|x\rO|1|A@B^C|a\\F\\b\rL|1\r"
    h, o, _ = parse_message(text)
    assert h.fields[0] == text_field("@^\\")
    assert o.field(3) == (("A",), ("B", "C"))
    assert o.value(4) == "a|b"
    assert encode_message([h, o, _], Delimiters("|", "@", "^", "\\")).decode() == text


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("&F&", "|"),
        ("&S&", "^"),
        ("&R&", "\\"),
        ("&E&", "&"),
        ("a&X0D0A&b", "a\r\nb"),
        ("&x&", None),
        ("&X0&", None),
        ("a&b", None),
    ],
)
def test_unescape(escaped: str, plain: str | None) -> None:
    if plain is None:
        with pytest.raises(RemoteProtocolError):
            unescape(escaped, DEFAULT_DELIMITERS)
        assert unescape(escaped, DEFAULT_DELIMITERS, lenient=True) == escaped
    else:
        assert unescape(escaped, DEFAULT_DELIMITERS) == plain
        assert unescape(escape(plain, DEFAULT_DELIMITERS), DEFAULT_DELIMITERS) == plain


def test_escape_output() -> None:
    assert escape("a|b^c\\d&e\rf", DEFAULT_DELIMITERS) == "a&F&b&S&c&R&d&E&e&X0D&f"


def test_lenient_separators_and_literal_ampersand() -> None:
    text = b"H|\\^&\r\nP|1\nC|1||Smith & Co\r\n\r\nL|1\n"
    with pytest.raises(RemoteProtocolError):
        parse_message(text)
    records = parse_message(text, lenient=True)
    assert [r.type for r in records] == ["H", "P", "C", "L"]
    assert records[2].value(4) == "Smith & Co"


@pytest.mark.parametrize(
    "text",
    [
        b"P|1\rL|1\r",  # no header first
        b"H|\\^&\r\rL|1\r",  # empty record
        b"H|\\^&\rX|1\r",  # unknown record type
        b"H|\\^&\rP1\r",  # type not followed by the field delimiter
        b"H|\\|&\r",  # delimiters not distinct
        b"H|\\^a|\r",  # alphanumeric delimiter
        b"H|\\^\r",  # header too short
        b"H|\\^&^\r",  # sixth character is not the field delimiter
        b"H|\\^&\rP|&Q&\r",  # unknown escape
    ],
)
def test_malformed_messages_raise_remote_error(text: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_message(text)


def test_bad_encoding_raises_remote_error() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_message(b"H|\\^&|\xff\r", encoding="utf-8")


def test_encode_is_strict() -> None:
    h = Record("H", (text_field("\\^&"),))
    for bad in (
        [Record("P", ())],  # no header
        [h, h],  # two headers
        [Record("H", (text_field("@^&"),))],  # header disagrees with the delimiters
        [h, Record("Z", ())],  # unknown type
        [h, Record("P", ((),))],  # empty field tuple cannot round-trip
        [h, Record("P", (((),),))],  # empty repeat tuple cannot round-trip
        [h, Record("P", (text_field("\u20ac"),))],  # not latin-1
    ):
        with pytest.raises(LocalProtocolError):
            encode_message(bad)
    assert encode_record(Record("L", ())) == "L"
    with pytest.raises(LocalProtocolError):
        Delimiters("|", "|", "^", "&")


# --- corpus -------------------------------------------------------------------------------------


@needs_corpus
def test_sysmex_xn550_record_text() -> None:
    message = framed_message("sysmex_xn550__senaite.astm.txt")
    records = parse_message(message)
    assert records[0].type == "H" and records[-1] == Record("L", (text_field("1"), text_field("N")))
    assert records[0].value(5, component=0) == "    XN-550"
    patient = records[1]
    assert patient.type == "P" and patient.field(6) == (("", "Jim", "Brown"),)
    order = next(r for r in records if r.type == "O")
    assert order.value(4, component=2).strip() == "27"
    assert ("", "", "", "", "WBC") in order.field(5)
    results = [r for r in records if r.type == "R"]
    assert results and all(r.value(2) for r in results)
    assert parse_message(encode_message(records)) == records


@needs_corpus
def test_roche_e411_multiframe_records() -> None:
    message = framed_message("roche_cobas_e411_multiframe__ruby-astm.raw.bin")
    records = parse_message(message)
    assert "".join(r.type for r in records) == "HPORRRRRRCRL"
    order = records[2]
    assert len(order.field(5)) == 7  # seven repeated test codes
    r4 = records[6]
    assert r4.field(4) == (("-1", "0.282"),) and r4.value(5) == "COI"
    assert encode_message(records) == message  # byte-identical re-encoding


@needs_corpus
def test_cepheid_non_default_delimiters() -> None:
    records = parse_message(framed_message("cepheid_genexpert__senaite.astm.txt"))
    assert records[0].fields[0] == text_field("@^\\")
    result = next(r for r in records if r.type == "R")
    assert result.value(4) == "NOT DETECTED"
    assert result.value(3, component=1) == "MTB-RIF"


@needs_corpus
def test_euroimmun_lf_records_and_decimal_comma() -> None:
    text = (CORPUS / "euroimmun_analyzer1_sarscov2__go-astm.astm").read_bytes()
    with pytest.raises(RemoteProtocolError):
        parse_message(text)
    records = parse_message(text, lenient=True)
    values = [r.value(4) for r in records if r.type == "R"]
    assert "7,41" in values


@needs_corpus
def test_architect_back_to_back_messages() -> None:
    text = (CORPUS / "abbott_architect_i1000sr_multimsg__go-astm.astm").read_bytes()
    records = parse_message(text, lenient=True)
    assert sum(r.type == "H" for r in records) == 5
    assert Record("L", (text_field("1"),)) in records


@needs_corpus
@pytest.mark.parametrize(
    "name",
    [
        "stago_sta_satellite_max__ruby-astm.raw.bin",
        "roche_cobas_c111__senaite.astm.txt",
        "horiba_pentra_xlr__senaite.astm.txt",
        "siemens_dca_vantage__senaite.astm.txt",
        "abbott_afinion2__senaite.astm.txt",
    ],
)
def test_framed_corpus_fed_three_ways(name: str) -> None:
    message = framed_message(name)
    whole = parse_message(message)
    assert whole[0].type == "H" and whole[-1].type == "L"
    assert parse_message(message.decode("latin-1")) == whole
    assert parse_message(encode_message(whole)) == whole
    with pytest.raises(RemoteProtocolError):
        parse_message(message + b"\x00garbage\r")


# --- properties ---------------------------------------------------------------------------------

latin1 = st.text(st.characters(max_codepoint=255), max_size=8)
fields = st.lists(
    st.lists(st.lists(latin1, min_size=1, max_size=3).map(tuple), min_size=1, max_size=3).map(
        tuple
    ),
    max_size=6,
).map(tuple)
punctuation = "|\\^&@!#$%*~`;:/"
delimiter_sets = st.permutations(punctuation).map(lambda p: Delimiters(p[0], p[1], p[2], p[3]))


@st.composite
def messages(draw: st.DrawFn) -> tuple[Delimiters, list[Record]]:
    d = draw(delimiter_sets)
    header_rest: tuple[Field, ...] = draw(fields)
    body = draw(st.lists(st.tuples(st.sampled_from("PORCMQSL"), fields), max_size=6))
    records = [Record("H", (text_field(d.definition), *header_rest))]
    records += [Record(kind, f) for kind, f in body]
    return d, records


@given(messages())
def test_round_trip(message: tuple[Delimiters, list[Record]]) -> None:
    delimiters, records = message
    encoded = encode_message(records, delimiters)
    assert parse_message(encoded) == records
    assert parse_message(encoded, lenient=True) == records


@given(st.binary(max_size=400), st.booleans())
def test_any_bytes_parse_or_raise_remote_error(data: bytes, lenient: bool) -> None:
    try:
        records = parse_message(data, lenient=lenient)
    except RemoteProtocolError:
        return
    assert all(r.type in "HPORCMQSL" for r in records)


@given(st.text("HPORL|\\^&FSREX0aD\r\n1", max_size=200), st.booleans())
def test_structured_junk_parses_or_raises_remote_error(tail: str, lenient: bool) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_message("H|\\^&|" + tail, lenient=lenient)


# --- leniency added with the corpus work --------------------------------------------------------


def test_doubled_backslash_header_is_undone_when_lenient() -> None:
    # Horiba Yumizen H550 as published by go-astm: every backslash was doubled on disk.
    text = b"H|\\\\^&|||H550\nM|3|REAGENT|CLEANER\\\\DILUENT\\\\LYSE\nL|1|N\n"
    h, m, last = parse_message(text, lenient=True)
    assert h.fields == (text_field("\\^&"), text_field(""), text_field(""), text_field("H550"))
    assert m.field(4) == (("CLEANER",), ("DILUENT",), ("LYSE",))
    assert last == Record("L", (text_field("1"), text_field("N")))
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(text.replace(b"\n", b"\r"))
    assert info.value.field == "header"
    # An ordinary header is not mistaken for a doubled one.
    assert parse_message(b"H|\\^&|x\rR|1|a\\b\r", lenient=True)[1].field(3) == (("a",), ("b",))


def test_values_are_kept_exactly_as_sent() -> None:
    text = b"H|\\^&\rR|1|^^^WBC|  5.5|10*3/uL\rR|2|^^^ALB|7,41|g/L| 3,5 to 5,0 \rL|1|N \r"
    _, first, second, last = parse_message(text)
    assert first.value(4) == "  5.5"  # space padding kept: the profile interprets it
    assert second.value(4) == "7,41" and second.value(6) == " 3,5 to 5,0 "
    assert last.value(3) == "N "


def test_lf_only_line_ends_are_lenient_only() -> None:
    text = b"H|\\^&\nP|1\nL|1\n"
    assert [r.type for r in parse_message(text, lenient=True)] == ["H", "P", "L"]
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(text)
    assert info.value.field == "separator"


def test_comment_line_is_an_unknown_record_type_even_lenient() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(b"# sample from a manual\nH|\\^&\nL|1\n", lenient=True)
    assert info.value.field == "record type" and info.value.data == b"# sample from a manual"


def test_encoding_error_names_the_offending_bytes() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(b"H|\\^&|\xff\xfe|x\r", encoding="ascii")
    assert info.value.field == "encoding"
    assert info.value.data is not None and b"\xff" in info.value.data
    assert "\\xff" not in info.value.without_data()  # the log line does not quote the bytes


def reference_fields(text: str, d: Delimiters, lenient: bool) -> tuple[Field, ...]:
    """The plain definition: split fields, repeats, components; unescape every component."""
    return tuple(
        tuple(
            tuple(unescape(c, d, lenient=lenient) for c in rep.split(d.component))
            for rep in field.split(d.repeat)
        )
        for field in text.split(d.field)
    )


@given(messages(), st.text("|\\^&@!#FSREX0aD", max_size=60), st.booleans())
def test_parser_agrees_with_the_plain_definition(
    message: tuple[Delimiters, list[Record]], junk: str, lenient: bool
) -> None:
    # The parser keeps plain fields as text and splits only the fields that hold a delimiter
    # or escape, by three different paths; on any record text its nested view must be what
    # the plain nested definition gives (or it must raise the same way).
    delimiters, records = message
    encoded = encode_message(records, delimiters).decode("latin-1")
    lines = [line for line in encoded.split("\r") if line and line[0] != "H"]
    lines.append("R" + delimiters.field + junk)
    header = "H" + delimiters.field + delimiters.definition + "\r"
    for line in lines:
        if len(line) < 2:
            continue
        try:
            expected = reference_fields(line[2:], delimiters, lenient)
        except RemoteProtocolError:
            with pytest.raises(RemoteProtocolError):
                parse_message(header + line + "\r", lenient=lenient)
            continue
        parsed = parse_message(header + line + "\r", lenient=lenient)[1]
        assert parsed.fields == expected
        assert parsed == Record(line[0], expected)
        assert all(
            parsed.value(n, r, c) == component
            for n, field in enumerate(expected, 2)
            for r, rep in enumerate(field)
            for c, component in enumerate(rep)
        )
