"""Order messages (ORM^O01, OML^O21): parse, build, round trip, cross-check with hl7 + hl7apy."""

from __future__ import annotations

import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import hl7
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drivers.model import PRIORITIES, OrderAction, OrderRequest
from drivers.protocols.hl7.orders import (
    ORDER_MESSAGE_TYPES,
    ParsedOrders,
    build_order_message,
    parse_orders,
)
from gateway.errors import LocalProtocolError, RemoteProtocolError

NOW = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
FNR = "01019012480"
NEW, CANCEL = OrderAction.NEW, OrderAction.CANCEL


def msg(*segments: str, kind: str = "ORM^O01^ORM_O01", version: str = "2.5.1") -> bytes:
    msh = f"MSH|^~\\&|LIS|HOSP|TRYGG|LAB|20240501120000+0200||{kind}|CTRL1|P|{version}"
    return ("\r".join([msh, *segments]) + "\r").encode("utf-8")


def only(parsed: ParsedOrders) -> OrderRequest:
    assert len(parsed.requests) == 1
    return parsed.requests[0]


# --------------------------------------------------------------------------- reading


def test_orm_v231_without_spm_takes_the_specimen_from_obr2() -> None:
    raw = msg(
        f"PID|1||{FNR}^^^NOR^FNR~H123^^^HOSP^MR||Nordmann^Kari",
        "ORC|NW|ORD1|||||^^^^^S",
        "OBR|1|SPEC1^LIS||CRP^C-reactive protein^L",
        version="2.3.1",
    )
    parsed = parse_orders(raw)
    assert (parsed.control_id, parsed.message_type) == ("CTRL1", "ORM^O01")
    assert only(parsed) == OrderRequest(NEW, "SPEC1", ("CRP",), FNR, "S", "ORD1")


def test_orm_v251_with_tq1_and_spm_reads_priority_and_specimen_from_them() -> None:
    raw = msg(
        "ORC|NW|ORD2|||||^^^^^R",
        "TQ1|1||||||||A^ASAP^HL70485",
        "OBR|1|ORD2||HB^Haemoglobin|S",
        "SPM|1|SPEC2&LIS&1.2.3&ISO^F99||BLD",
    )
    request = only(parse_orders(raw))
    # TQ1-9 beats OBR-5 and ORC-7.6; SPM-2's first sub-part beats OBR-2
    assert (request.specimen_id, request.priority, request.placer_order) == ("SPEC2", "A", "ORD2")
    assert request.patient_id == ""


def test_oml_o21_orders_of_one_specimen_become_one_request() -> None:
    raw = msg(
        f"PID|1||{FNR}||^^^^^^U",
        "ORC|NW|ORD3",
        "TQ1|1||||||||R",
        "OBR|1|ORD3||CRP",
        "SPM|1|SPEC3||BLD",
        "ORC|NW|ORD4",
        "TQ1|1||||||||S",
        "OBR|2|ORD4||HB",
        "SPM|1|SPEC3||BLD",
        kind="OML^O21^OML_O21",
    )
    parsed = parse_orders(raw)
    assert parsed.message_type == "OML^O21"
    # the most urgent priority and the first placer order number win
    assert only(parsed) == OrderRequest(NEW, "SPEC3", ("CRP", "HB"), FNR, "S", "ORD3")


def test_several_obrs_are_grouped_per_specimen_in_message_order() -> None:
    raw = msg(
        "ORC|NW|A1",
        "OBR|1|SPEC-A||CRP",
        "OBR|2|SPEC-A||HB",
        "ORC|NW|B1",
        "OBR|3|SPEC-B||NA",
        "ORC|NW|A2",
        "OBR|4|SPEC-A||K",
        "OBR|5|SPEC-A||CRP",
        version="2.4",
    )
    requests = parse_orders(raw).requests
    assert [(r.specimen_id, r.test_codes, r.placer_order) for r in requests] == [
        ("SPEC-A", ("CRP", "HB", "K"), "A1"),
        ("SPEC-B", ("NA",), "B1"),
    ]


def test_priority_falls_back_to_obr5_then_orc7_then_routine() -> None:
    raw = msg(
        "ORC|NW|O1|||||^^^^^A",
        "OBR|1|S1||CRP|S",
        "ORC|NW|O2|||||^^^^^A",
        "OBR|1|S2||CRP",
        "ORC|NW|O3",
        "OBR|1|S3||CRP",
        version="2.3.1",
    )
    assert [r.priority for r in parse_orders(raw).requests] == ["S", "A", "R"]


@pytest.mark.parametrize("control", ["CA", "DC", "OC"])
def test_a_cancel_with_obr4_cancels_that_test(control: str) -> None:
    raw = msg(f"ORC|{control}|ORD1", "OBR|1|ORD1||CRP", "SPM|1|SPEC1||BLD")
    assert only(parse_orders(raw)) == OrderRequest(CANCEL, "SPEC1", ("CRP",), "", "R", "ORD1")


def test_a_cancel_without_obr_cancels_the_whole_specimen_named_in_orc2() -> None:
    raw = msg("ORC|CA|SPEC9")
    assert only(parse_orders(raw)) == OrderRequest(CANCEL, "SPEC9", (), "", "R", "SPEC9")


def test_a_whole_specimen_cancel_absorbs_test_cancels_and_new_orders_stay_apart() -> None:
    raw = msg(
        "ORC|CA|P1",
        "OBR|1|S1||CRP",
        "ORC|CA|S1",
        "ORC|NW|P2",
        "OBR|1|S1||HB",
    )
    requests = parse_orders(raw).requests
    assert [(r.action, r.specimen_id, r.test_codes) for r in requests] == [
        (CANCEL, "S1", ()),
        (NEW, "S1", ("HB",)),
    ]


def test_specimen_falls_back_to_orc2_when_obr2_is_empty() -> None:
    raw = msg("ORC|NW|ORD7", "OBR|1|||GLU")
    request = only(parse_orders(raw))
    assert (request.specimen_id, request.placer_order) == ("ORD7", "ORD7")


def test_escaped_values_are_read_as_text() -> None:
    raw = msg(
        "PID|1||P\\T\\7",
        "ORC|NW|O\\F\\1",
        "OBR|1|X||C\\S\\RP^text \\E\\ more",
        "SPM|1|S\\F\\1\\S\\2||BLD",
    )
    assert only(parse_orders(raw)) == OrderRequest(NEW, "S|1^2", ("C^RP",), "P&7", "R", "O|1")


def test_lf_and_crlf_segment_endings_are_accepted() -> None:
    text = msg("ORC|NW|O1", "OBR|1|S1||CRP").decode()
    for ending in ("\n", "\r\n"):
        raw = text.replace("\r", ending).encode()
        assert only(parse_orders(raw)).test_codes == ("CRP",)


ERRORS = [
    (msg("ORC|NW|O1", "OBR|1|S1||CRP", kind="ORU^R01^ORU_R01"), "MSH-9", "MSH"),
    (msg(f"PID|1||{FNR}"), "MSH-9", "MSH"),
    (msg("ORC|NW|O1", "OBR|1|S1||CRP", version="2.6"), "MSH-12", "MSH"),
    (msg("ORC|NW|O1", "OBR|1|S1||CRP", kind="OML^O21^OML_O21", version="2.4"), "MSH-12", "MSH"),
    (msg("ORC|NW|O1", "OBR|1|S1||CRP").replace(b"CTRL1", b""), "MSH-10", "MSH"),
    (msg(f"PID|1||{FNR}", "ORC|XO|O1", "OBR|1|S1||CRP"), "ORC-1", "ORC"),
    (msg("ORC||O1", "OBR|1|S1||CRP"), "ORC-1", "ORC"),
    (msg("OBR|1|S1||CRP", "ORC|NW|O1"), "ORC-1", "OBR"),
    (msg(f"PID|1||{FNR}", "ORC|NW|O1", "OBR|1|S1||^C-reactive protein"), "OBR-4", "OBR"),
    (msg("ORC|NW|O1"), "OBR-4", "ORC"),
    (msg("ORC|NW|", "OBR|1|||CRP"), "OBR-2", "OBR"),
    (msg("ORC|NW|O1", "OBR|1|S1||CRP", "SPM|1|||BLD"), "SPM-2", "SPM"),
    (msg("ORC|CA"), "ORC-2", "ORC"),
    (msg("ORC|NW|O1", "TQ1|1||||||||P", "OBR|1|S1||CRP"), "TQ1-9", "TQ1"),
    (msg("ORC|NW|O1", "OBR|1|S1||CRP|X", version="2.3.1"), "OBR-5", "OBR"),
    (msg("ORC|NW|O1|||||^^^^^STAT", "OBR|1|S1||CRP"), "ORC-7", "ORC"),
    (b"ORC|NW|O1\rOBR|1|S1||CRP\r", "MSH", "ORC"),
    (b"MSH|^~\\&\rORC|NW|O1\r", "MSH-9", "MSH"),
    (b"", "MSH", ""),
]


@pytest.mark.parametrize(("raw", "field", "segment"), ERRORS)
def test_every_refusal_names_its_field_and_carries_the_offending_bytes(
    raw: bytes, field: str, segment: str
) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_orders(raw)
    err = caught.value
    assert err.field == field
    assert err.data is not None
    assert err.data.startswith(segment.encode())
    assert err.data in raw or not raw
    assert FNR not in err.without_data()  # the text itself never quotes patient data


# --------------------------------------------------------------------------- writing


def test_orm_output_is_strict_and_standard_shaped() -> None:
    requests = [
        OrderRequest(NEW, "S1", ("CRP", "HB"), FNR, "S", "O1"),
        OrderRequest(CANCEL, "S2", (), FNR, "R", ""),
    ]
    raw = build_order_message(requests, control_id="C7", now=NOW)
    assert raw.split(b"\r") == [
        b"MSH|^~\\&|LIS||TRYGG||20240501120005+0000||ORM^O01^ORM_O01|C7|P|2.5.1",
        f"PID|1||{FNR}||^^^^^^U".encode(),
        b"ORC|NW|O1|||||^^^^^S",
        b"OBR|1|S1||CRP",
        b"ORC|NW|O1|||||^^^^^S",
        b"OBR|2|S1||HB",
        b"ORC|CA|S2|||||^^^^^R",
        b"",
    ]


def test_oml_output_carries_tq1_and_spm() -> None:
    requests = [OrderRequest(NEW, "S|1", ("C^RP",), "", "A", "")]
    raw = build_order_message(requests, control_id="C8", now=NOW, message_type="OML^O21")
    assert raw.split(b"\r")[1:] == [
        b"ORC|NW|",
        b"TQ1|1||||||||A",
        b"OBR|1|||C\\S\\RP",
        b"SPM|1|S\\F\\1||^unspecified",
        b"",
    ]


def test_a_pid_opens_each_run_of_one_patients_orders() -> None:
    requests = [
        OrderRequest(NEW, "S1", ("CRP",), "P1"),
        OrderRequest(NEW, "S2", ("CRP",), "P1"),
        OrderRequest(NEW, "S3", ("CRP",), "P2"),
        OrderRequest(NEW, "S4", ("CRP",), ""),
    ]
    raw = build_order_message(requests, control_id="C9", now=NOW)
    pids = [line for line in raw.split(b"\r") if line.startswith(b"PID")]
    assert pids == [b"PID|1||P1||^^^^^^U", b"PID|2||P2||^^^^^^U", b"PID|3||||^^^^^^U"]
    assert [r.patient_id for r in parse_orders(raw).requests] == ["P1", "P1", "P2", ""]


def test_non_ascii_text_is_declared_in_msh18() -> None:
    ascii_only = build_order_message([OrderRequest(NEW, "S1", ("CRP",))], control_id="1", now=NOW)
    assert b"UNICODE" not in ascii_only
    raw = build_order_message([OrderRequest(NEW, "SÆ1", ("CRP",))], control_id="1", now=NOW)
    assert raw.split(b"\r")[0].split(b"|")[17] == b"UNICODE UTF-8"
    assert only(parse_orders(raw)).specimen_id == "SÆ1"


BUILD_ERRORS: list[tuple[list[OrderRequest], dict[str, Any], str]] = [
    ([], {}, "ORC"),
    ([OrderRequest(NEW, "S1", ())], {}, "OBR-4"),
    ([OrderRequest(NEW, "S1", ("",))], {}, "OBR-4"),
    ([OrderRequest(NEW, "", ("A",))], {}, "OBR-2"),
    ([OrderRequest(NEW, "", ("A",))], {"message_type": "OML^O21"}, "SPM-2"),
    ([OrderRequest(NEW, " S1", ("A",))], {}, "OBR-2"),
    ([OrderRequest(NEW, "S1", ("A",), "P\r1")], {}, "PID-3"),
    ([OrderRequest(NEW, "S1", ("A",), priority="P")], {}, "ORC-7"),
    ([OrderRequest(NEW, "S1", ("A",), priority="C")], {"message_type": "OML^O21"}, "TQ1-9"),
    ([OrderRequest(CANCEL, "S1", (), placer_order="O9")], {}, "ORC-2"),
    ([OrderRequest(NEW, "S1", ("A",))], {"version": "2.3"}, "MSH-12"),
    ([OrderRequest(NEW, "S1", ("A",))], {"message_type": "OML^O21", "version": "2.5"}, "MSH-12"),
    ([OrderRequest(NEW, "S1", ("A",))], {"message_type": "ORU^R01"}, "MSH-12"),
    ([OrderRequest(NEW, "S1", ("A",))], {"now": datetime(2024, 5, 1, 12)}, "MSH-7"),  # noqa: DTZ001
    ([OrderRequest(NEW, "S1", ("A",))], {"control_id": ""}, "MSH-10"),
]


@pytest.mark.parametrize(("requests", "options", "field"), BUILD_ERRORS)
def test_the_builder_refuses_what_it_cannot_write_exactly(
    requests: list[OrderRequest], options: dict[str, Any], field: str
) -> None:
    kwargs: dict[str, Any] = {"control_id": "C1", "now": NOW, **options}
    with pytest.raises(LocalProtocolError) as caught:
        build_order_message(requests, **kwargs)
    assert caught.value.field == field


# --------------------------------------------------------------------------- properties

_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + "|^~\\&-._ #ÆØÅæøå",
    min_size=1,
    max_size=10,
).filter(lambda s: s == s.strip())
_FORMATS = [("ORM^O01", version) for version in sorted(ORDER_MESSAGE_TYPES["ORM^O01"])] + [
    ("OML^O21", "2.5.1")
]


@st.composite
def order_batches(draw: st.DrawFn) -> list[OrderRequest]:
    """Requests, one per specimen (distinct specimens never merge), for up to two patients."""
    specimens = draw(st.lists(_TEXT, min_size=1, max_size=4, unique=True))
    patients = ["", *draw(st.lists(_TEXT, max_size=2))]
    requests = []
    for specimen in specimens:
        patient = draw(st.sampled_from(patients))
        action = draw(st.sampled_from([NEW, CANCEL]))
        codes = draw(st.lists(_TEXT, min_size=1 if action is NEW else 0, max_size=3, unique=True))
        # a whole-specimen cancel is an ORC alone: its placer order is the specimen ID
        placers = st.sampled_from(["", specimen]) if not codes else st.one_of(st.just(""), _TEXT)
        placer = draw(placers)
        priority = draw(st.sampled_from(PRIORITIES))
        requests.append(OrderRequest(action, specimen, tuple(codes), patient, priority, placer))
    return requests


def expected_after_round_trip(request: OrderRequest, message_type: str) -> OrderRequest:
    """What the wire keeps: an ORC alone names the specimen in ORC-2; ORM^O01 writes the
    specimen in OBR-2, which the reader takes as placer order when ORC-2 is empty."""
    if not request.test_codes or (message_type == "ORM^O01" and not request.placer_order):
        return OrderRequest(
            request.action,
            request.specimen_id,
            request.test_codes,
            request.patient_id,
            request.priority,
            request.specimen_id,
        )
    return request


@settings(max_examples=300, deadline=None)
@given(requests=order_batches(), fmt=st.sampled_from(_FORMATS))
def test_round_trip(requests: list[OrderRequest], fmt: tuple[str, str]) -> None:
    message_type, version = fmt
    raw = build_order_message(
        requests, control_id="C|1", now=NOW, version=version, message_type=message_type
    )
    parsed = parse_orders(raw)
    assert (parsed.control_id, parsed.message_type) == ("C|1", message_type)
    assert list(parsed.requests) == [expected_after_round_trip(r, message_type) for r in requests]


def parse_or_refuse(raw: bytes) -> None:
    try:
        result = parse_orders(raw)
    except RemoteProtocolError as err:
        assert err.field
        assert isinstance(err.data, bytes)
        return
    assert result.requests
    for request in result.requests:
        assert request.specimen_id
        assert request.priority in PRIORITIES
        assert request.test_codes or request.action is CANCEL


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_remote_protocol_error(raw: bytes) -> None:
    parse_or_refuse(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200).map(lambda tail: b"MSH|^~\\&|||||||ORM^O01|1|P|2.5.1\r" + tail))
def test_random_bodies_behind_a_valid_header_parse_or_raise(raw: bytes) -> None:
    parse_or_refuse(raw)


_MUTATION_BYTES = st.sampled_from([*b"|^~\\&\r\n #AZ09", 0x00, 0xFF, 0xC3])
_EDITS = st.tuples(
    st.sampled_from(["insert", "delete", "replace"]), st.floats(0, 1), _MUTATION_BYTES
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=order_batches(),
    fmt=st.sampled_from(_FORMATS),
    edits=st.lists(_EDITS, min_size=1, max_size=6),
)
def test_mutated_valid_messages_parse_or_raise(
    requests: list[OrderRequest], fmt: tuple[str, str], edits: list[tuple[str, float, int]]
) -> None:
    message_type, version = fmt
    raw = bytearray(
        build_order_message(
            requests, control_id="C1", now=NOW, version=version, message_type=message_type
        )
    )
    for kind, where, byte in edits:
        at = min(int(where * len(raw)), len(raw) - 1)
        if kind == "insert":
            raw.insert(at, byte)
        elif kind == "delete" and len(raw) > 1:
            del raw[at]
        else:
            raw[at] = byte
    assume(raw)
    parse_or_refuse(bytes(raw))


# --------------------------------------------------------------------------- cross-check


def _hl7apy_segments(raw: bytes) -> list[Any]:
    """The segments as hl7apy places them (strict level: field types and lengths checked)."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    text = raw.decode("utf-8")
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)

    def walk(node: Any) -> Iterator[Any]:
        for child in node.children:
            if child.classname == "Segment":
                yield child
            else:
                yield from walk(child)

    return list(walk(message))


def _first_component(field: Any) -> str:
    # hl7apy keeps values escaped as sent: component 1 of the field's ER7 text
    return str(field.to_er7()).split("^")[0]


CROSS_CHECK = [
    OrderRequest(NEW, "S|1", ("C^RP", "HB&A"), FNR, "S", "O~1"),
    OrderRequest(CANCEL, "S\\2", ("NA",), FNR, "A", "O2"),
    OrderRequest(CANCEL, "S3", (), FNR, "R", ""),
]


@pytest.mark.parametrize(("message_type", "version"), _FORMATS)
def test_python_hl7_and_hl7apy_read_the_key_fields_the_same(
    message_type: str, version: str
) -> None:
    raw = build_order_message(
        CROSS_CHECK, control_id="X1", now=NOW, version=version, message_type=message_type
    )
    ours = parse_orders(raw).requests
    assert [(r.action, r.specimen_id, r.test_codes) for r in ours] == [
        (NEW, "S|1", ("C^RP", "HB&A")),
        (CANCEL, "S\\2", ("NA",)),
        (CANCEL, "S3", ()),
    ]
    controls = ["NW", "NW", "CA", "CA"]
    test_codes = ["C^RP", "HB&A", "NA"]
    specimens = ["S|1", "S|1", "S\\2"]
    name, number = ("SPM", 2) if message_type == "OML^O21" else ("OBR", 2)

    # python-hl7 unescapes what it extracts
    parsed = hl7.parse(raw.decode("utf-8"))
    assert [str(s[1]) for s in parsed.segments("ORC")] == controls
    count = len(parsed.segments("OBR"))
    assert [parsed.extract_field("OBR", n, 4, 1, 1) for n in range(1, count + 1)] == test_codes
    assert [parsed.extract_field(name, n, number, 1, 1) for n in range(1, count + 1)] == specimens

    # hl7apy does not unescape: compare with the escape sequences written out by hand
    segments = _hl7apy_segments(raw)
    assert [s.msh_12.to_er7() for s in segments if s.name == "MSH"] == [version]
    assert [s.orc_1.to_er7() for s in segments if s.name == "ORC"] == controls
    obr_4 = [_first_component(s.obr_4) for s in segments if s.name == "OBR"]
    assert obr_4 == ["C\\S\\RP", "HB\\T\\A", "NA"]
    fields = [getattr(s, f"{name.lower()}_{number}") for s in segments if s.name == name]
    assert [_first_component(f) for f in fields] == ["S\\F\\1", "S\\F\\1", "S\\E\\2"]


def test_a_one_order_oml_passes_hl7apy_strict_structure_validation() -> None:
    """hl7apy models ORM_O01's OBR|RQD|... choice as a sequence (it asks for all of them) and
    takes a second OML_O21 ORDER after an SPM for a prior-result group, so only a one-order
    OML^O21 can be structure-checked; the cross-check above covers the rest field by field."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    request = OrderRequest(NEW, "S|1", ("C^RP",), FNR, "S", "O1")
    raw = build_order_message([request], control_id="V1", now=NOW, message_type="OML^O21")
    message = parse_message(
        raw.decode("utf-8"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
    )
    message.validate()
    assert [child.name for child in message.children] == ["MSH", "OML_O21_PATIENT", "OML_O21_ORDER"]
