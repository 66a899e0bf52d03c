"""LIS2-A2 host queries: Q records from the corpus read right, answers built and parsed back."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.corpus import corpus_dir
from drivers.analysers.site import ANALYSER_TZ
from drivers.model import WorklistOrder
from drivers.protocols.astm.query import (
    HostQuery,
    NoInformationForm,
    build_reply,
    find_queries,
    header_delimiters,
    parse_query,
)
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Record,
    encode_message,
    parse_message,
)
from gateway.errors import LocalProtocolError, RemoteProtocolError

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)  # 13:00 in Oslo (winter time)


def corpus_text(name: str) -> bytes:
    """The record text of a one-frame corpus file (stored with CR turned into LF)."""
    data = (corpus_dir("astm") / name).read_bytes()
    start = data.index(b"\x02") + 2  # STX and the frame number
    return data[start : data.index(b"\x03", start)].replace(b"\n", b"\r")


def query_of(text: bytes, **kw: int) -> tuple[HostQuery, list[Record]]:
    records = parse_message(text)
    queries = find_queries(records, **kw)
    assert len(queries) == 1
    return queries[0], records


def reply_records(raw: bytes) -> list[Record]:
    return parse_message(raw)


# --- reading queries ---------------------------------------------------------------------------


def test_erba_query_names_one_specimen_in_the_standard_component() -> None:
    query, _ = query_of(corpus_text("erba_em200_query__ruby-astm.txt"))
    assert query.specimen_ids == ("010520182",)
    assert query.status == "O" and not query.cancels_request


def test_erba_multi_tube_query_lists_both_specimens_through_the_repeat_delimiter() -> None:
    text = corpus_text("erba_em200_query_multi__ruby-astm.txt")
    assert header_delimiters(text).repeat == "`"
    query, _ = query_of(text)
    assert query.specimen_ids == ("0000000406", "00001001")
    # the continuation is echoed with the ID back in component 2
    assert [s.range_id for s in query.specimens] == [("", "0000000406"), ("", "00001001")]


def test_roche_query_needs_component_three_and_is_a_cancel() -> None:
    text = corpus_text("roche_cobas_e411_query__ruby-astm.txt")
    standard, _ = query_of(text)
    assert standard.specimen_ids == ()  # component 2 is empty in the cobas layout
    roche, _ = query_of(text, specimen_component=3)
    assert roche.specimen_ids == ("0000000387",)
    assert roche.cancels_request  # Q.13 = A: the analyser withdrew its request


def test_all_and_missing_ids_cannot_be_looked_up() -> None:
    for line, expected in ((b"Q|1|^ALL||ALL", ()), (b"Q|1", ()), (b"Q|1|^^3^0007", ())):
        query, _ = query_of(b"H|\\^&\r" + line + b"\rL|1\r")
        assert query.specimen_ids == expected
        assert len(query.specimens) == 1  # still one thing to answer "no information" to


def test_duplicates_are_looked_up_once() -> None:
    query, _ = query_of(b"H|\\^&\rQ|1|^S1\\^S2\\^S1\rL|1\r")
    assert query.specimen_ids == ("S1", "S2")


def test_parse_query_refuses_other_records_and_bad_components() -> None:
    with pytest.raises(LocalProtocolError):
        parse_query(Record("O", ()))
    with pytest.raises(LocalProtocolError):
        parse_query(Record("Q", ()), specimen_component=0)


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80))
def test_any_q_record_either_parses_or_is_a_remote_error(body: str) -> None:
    text = ("H|\\^&\rQ|" + body + "\rL|1\r").encode("latin-1")
    try:
        records = parse_message(text, lenient=True)
    except RemoteProtocolError:
        return
    for query in find_queries(records):
        reply = encode_message(build_reply(query, {}, now=NOW, tz=ANALYSER_TZ))
        assert parse_message(reply)[-1].value(3) == "I"


# --- building answers --------------------------------------------------------------------------


def test_no_information_standard_form_echoes_the_query_with_status_x() -> None:
    query, records = query_of(corpus_text("erba_em200_query__ruby-astm.txt"))
    raw = encode_message(
        build_reply(query, {}, now=NOW, tz=ANALYSER_TZ, receiver=records[0].field(5))
    )
    reply = reply_records(raw)
    assert [r.type for r in reply] == ["H", "Q", "L"]
    header, q, end = reply
    assert header.value(14) == "20260115130000"  # analyser local time
    assert header.value(5) == "TRYGG"
    assert q.value(3, component=1) == "010520182"
    assert q.value(13) == "X"
    assert end.value(3) == "I"


@pytest.mark.parametrize(
    ("zone", "stamp"),
    [(UTC, "20260115120000"), (ZoneInfo("Europe/Oslo"), "20260115130000")],
)
def test_the_answers_time_is_in_the_zone_the_caller_gives(zone: tzinfo, stamp: str) -> None:
    query, _ = query_of(corpus_text("erba_em200_query__ruby-astm.txt"))
    header = reply_records(encode_message(build_reply(query, {}, now=NOW, tz=zone)))[0]
    assert header.value(14) == stamp  # the codec has no zone of its own: the site's is passed


def test_no_information_order_form_reports_y_per_specimen() -> None:
    query, _ = query_of(corpus_text("erba_em200_query_multi__ruby-astm.txt"))
    delimiters = header_delimiters(corpus_text("erba_em200_query_multi__ruby-astm.txt"))
    reply_list = build_reply(
        query,
        {},
        now=NOW,
        tz=ANALYSER_TZ,
        form=NoInformationForm.ORDER_REPORT,
        delimiters=delimiters,
    )
    raw = encode_message(reply_list, delimiters)
    assert raw.startswith(b"H|`^&")
    reply = reply_records(raw)
    assert [r.type for r in reply] == ["H", "P", "O", "P", "O", "L"]
    orders = [r for r in reply if r.type == "O"]
    assert [o.value(3) for o in orders] == ["0000000406", "00001001"]
    assert {o.value(26) for o in orders} == {"Y"}
    assert reply[-1].value(3) == "N"


def test_orders_from_the_worklist_become_p_and_o_records() -> None:
    query, _ = query_of(b"H|\\^&\rQ|1|^S1\\^S2||^^^ALL||||||||O\rL|1|N\r")
    orders = {
        "S1": [
            WorklistOrder("S1", "12345678901", ("GLU", "CRP"), priority="S"),
            WorklistOrder("S1", "12345678901", ("HBA1C",)),
        ]
    }
    reply = reply_records(encode_message(build_reply(query, orders, now=NOW, tz=ANALYSER_TZ)))
    assert [r.type for r in reply] == ["H", "P", "O", "O", "Q", "L"]
    _, patient, first, second, no_info, end = reply
    assert patient.value(3) == "12345678901"
    assert (first.value(2), first.value(3), first.value(6), first.value(26)) == (
        "1",
        "S1",
        "S",
        "Q",
    )
    assert [rep[3] for rep in first.field(5)] == ["GLU", "CRP"]
    assert second.value(2) == "2" and second.value(5, component=3) == "HBA1C"
    assert first.value(12) == "A"
    assert no_info.value(3, component=1) == "S2" and no_info.value(13) == "X"
    assert end.value(3) == "N"  # something was answered


def test_worklist_text_with_delimiters_survives_the_round_trip() -> None:
    query, _ = query_of(b"H|\\^&\rQ|1|^S|1\rL|1\r")
    orders = {"S": [WorklistOrder("S", "A|B^C", ("X\\Y",))]}
    reply = reply_records(encode_message(build_reply(query, orders, now=NOW, tz=ANALYSER_TZ)))
    assert reply[1].value(3) == "A|B^C"
    assert reply[2].value(5, component=3) == "X\\Y"


def test_header_delimiters_fall_back_to_the_default() -> None:
    assert header_delimiters(b"P|1\r") == DEFAULT_DELIMITERS
    assert header_delimiters(b"H|||||\r") == DEFAULT_DELIMITERS  # not distinct
    assert header_delimiters(b"H|@^\\\r") == Delimiters("|", "@", "^", "\\")
