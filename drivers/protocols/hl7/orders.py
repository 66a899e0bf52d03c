"""HL7 v2 order messages (ORM^O01, OML^O21) to and from ``OrderRequest``, free of I/O.

Reading (``parse_orders``): each ORC opens an order; the TQ1, OBR and SPM that follow belong to
it (an SPM to the OBR before it). Each OBR asks for one test; the OBRs of one specimen with the
same action become one request. Writing (``build_order_message``): one ORC + OBR per test code,
in the structure of the message type (ORM^O01 has neither TQ1 nor SPM; OML^O21 has both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from drivers.errors import LocalProtocolError, RemoteProtocolError
from drivers.model import PRIORITIES, OrderAction, OrderRequest
from drivers.protocols.hl7.message import (
    DEFAULT_DELIMITERS,
    Segment,
    escape,
    format_ts,
    split_message,
)

__all__ = ["ORDER_MESSAGE_TYPES", "ParsedOrders", "build_order_message", "parse_orders"]

#: Message type (MSH-9.1^MSH-9.2) -> the versions (MSH-12) read and written.
ORDER_MESSAGE_TYPES: dict[str, frozenset[str]] = {
    "ORM^O01": frozenset({"2.3.1", "2.4", "2.5", "2.5.1"}),
    "OML^O21": frozenset({"2.5.1"}),
}

# ORC-1 (HL7 table 0119): new order; cancel, discontinue and "order cancelled" all cancel.
_ACTIONS = {
    "NW": OrderAction.NEW,
    "CA": OrderAction.CANCEL,
    "DC": OrderAction.CANCEL,
    "OC": OrderAction.CANCEL,
}
_ORDER_CONTROL = {OrderAction.NEW: "NW", OrderAction.CANCEL: "CA"}
# SPM-4 (specimen type) is required in v2.5.1; an order request does not carry one.
_UNSPECIFIED_SPECIMEN_TYPE = "^unspecified"


@dataclass(frozen=True, slots=True)
class ParsedOrders:
    """What one order message asks for."""

    control_id: str  # MSH-10
    message_type: str  # MSH-9.1^MSH-9.2, e.g. "ORM^O01"
    requests: tuple[OrderRequest, ...]
    processing_id: str = ""  # MSH-11.1 as sent: P production, T training, D debugging


@dataclass(slots=True)
class _Order:
    """One ORC and the segments that belong to it."""

    orc: Segment
    patient_id: str
    timing: Segment | None = None  # the first TQ1
    tests: list[tuple[Segment, Segment | None]] = field(default_factory=list)  # OBR, its SPM


def _refuse(text: str, where: str, seg: Segment) -> RemoteProtocolError:
    return RemoteProtocolError(text, field=where, data=seg.raw.encode("utf-8", "replace"))


def parse_orders(raw: bytes) -> ParsedOrders:
    """Read an ORM^O01 or OML^O21 message into order requests, in the message's order.

    Any bytes either parse or raise ``RemoteProtocolError`` whose ``field`` names the field
    (``"MSH-9"``, ``"ORC-1"``, ``"OBR-4"``, ``"SPM-2"``, ``"TQ1-9"`` ...) and whose ``data``
    holds the offending segment.
    """
    segments = split_message(raw)
    msh = segments[0]
    message_type = f"{msh.component(9, 1)}^{msh.component(9, 2)}"
    if message_type not in ORDER_MESSAGE_TYPES:
        raise _refuse(
            f"{message_type[:20]!r} is not an order message (ORM^O01, OML^O21)", "MSH-9", msh
        )
    version = msh.component(12, 1)
    if version not in ORDER_MESSAGE_TYPES[message_type]:
        raise _refuse(f"{message_type} version {version[:10]!r} is not supported", "MSH-12", msh)
    control_id = msh.component(10)
    if not control_id:
        raise _refuse("MSH-10 (message control ID) is empty", "MSH-10", msh)
    orders = _group_orders(segments[1:])
    if not orders:
        raise _refuse(f"the {message_type} message has no ORC segment", "MSH-9", msh)
    items = [item for order in orders for item in _read_order(order)]
    return ParsedOrders(control_id, message_type, _merge(items), msh.component(11, 1))


def _group_orders(segments: list[Segment]) -> list[_Order]:
    orders: list[_Order] = []
    patient_id = ""
    for seg in segments:
        if seg.name == "PID":
            patient_id = seg.component(3, 1)
        elif seg.name == "ORC":
            orders.append(_Order(seg, patient_id))
        elif seg.name in ("TQ1", "OBR", "SPM"):
            if not orders:
                raise _refuse(f"{seg.name} before the first ORC (order control)", "ORC-1", seg)
            order = orders[-1]
            if seg.name == "TQ1":
                order.timing = order.timing or seg
            elif seg.name == "OBR":
                order.tests.append((seg, None))
            elif order.tests and order.tests[-1][1] is None:
                order.tests[-1] = (order.tests[-1][0], seg)  # later SPMs of one OBR: ignored
    return orders


def _read_order(order: _Order) -> list[OrderRequest]:
    """One request per OBR, or one whole-specimen cancel for an ORC without OBR."""
    orc = order.orc
    action = _ACTIONS.get(orc.component(1).upper())
    if action is None:
        raise _refuse(
            f"order control {orc.component(1)[:10]!r} is not NW, CA, DC or OC", "ORC-1", orc
        )
    if not order.tests:
        if action is OrderAction.NEW:
            raise _refuse("a new order (NW) has no OBR naming its test", "OBR-4", orc)
        specimen_id = orc.component(2, 1)
        if not specimen_id:
            raise _refuse("a cancel without OBR names no order (ORC-2)", "ORC-2", orc)
        priority = _priority(order, None)
        return [OrderRequest(action, specimen_id, (), order.patient_id, priority, specimen_id)]
    requests = []
    for obr, spm in order.tests:
        test_code = obr.component(4, 1)
        if not test_code and action is OrderAction.NEW:
            raise _refuse("a new order has no test code", "OBR-4", obr)
        requests.append(
            OrderRequest(
                action=action,
                specimen_id=_specimen_id(orc, obr, spm),
                test_codes=(test_code,) if test_code else (),
                patient_id=order.patient_id,
                priority=_priority(order, obr),
                placer_order=orc.component(2, 1) or obr.component(2, 1),
            )
        )
    return requests


def _specimen_id(orc: Segment, obr: Segment, spm: Segment | None) -> str:
    """SPM-2 (placer, else filler identifier) when an SPM follows, else OBR-2, else ORC-2."""
    if spm is not None:
        specimen_id = spm.sub(2, 1, 1) or spm.sub(2, 2, 1)
        if not specimen_id:
            raise _refuse("the SPM names no specimen", "SPM-2", spm)
        return specimen_id
    specimen_id = obr.component(2, 1) or orc.component(2, 1)
    if not specimen_id:
        raise _refuse("the order names no specimen (no SPM, OBR-2 or ORC-2)", "OBR-2", obr)
    return specimen_id


def _priority(order: _Order, obr: Segment | None) -> str:
    """TQ1-9, else OBR-5 (before v2.5), else ORC-7.6 (TQ priority), else routine."""
    sources = ((order.timing, 9, 1), (obr, 5, 1), (order.orc, 7, 6))
    for seg, number, comp in sources:
        value = seg.component(number, comp) if seg is not None else ""
        if not value or seg is None:
            continue
        if value not in PRIORITIES:
            where = f"{seg.name}-{number}"
            raise _refuse(f"priority {value[:10]!r} is not S, A or R", where, seg)
        return value
    return "R"


def _merge(items: list[OrderRequest]) -> tuple[OrderRequest, ...]:
    """Tests of one specimen with one action become one request, at its first place."""
    merged: dict[tuple[OrderAction, str, str], OrderRequest] = {}
    for item in items:
        key = (item.action, item.specimen_id, item.patient_id)
        earlier = merged.get(key)
        merged[key] = item if earlier is None else _combine(earlier, item)
    return tuple(merged.values())


def _combine(a: OrderRequest, b: OrderRequest) -> OrderRequest:
    # A whole-specimen cancel (no test codes) covers every test cancelled beside it.
    codes = () if not (a.test_codes and b.test_codes) else (*a.test_codes, *b.test_codes)
    return replace(
        a,
        test_codes=tuple(dict.fromkeys(codes)),
        priority=min(a.priority, b.priority, key=PRIORITIES.index),  # the most urgent wins
        placer_order=a.placer_order or b.placer_order,
    )


def build_order_message(
    requests: Sequence[OrderRequest],
    *,
    control_id: str,
    now: datetime,
    sending_application: str = "LIS",
    receiving_application: str = "TRYGG",
    version: str = "2.5.1",
    message_type: str = "ORM^O01",
) -> bytes:
    """Build one order message, as an LIS sends it (for the simulator and the tests).

    A PID opens each run of requests for one patient (none before the first patient). One
    patient per message is the standard's shape; several is an extension ``parse_orders`` reads.

    ORM^O01 (v2.3.1-2.5.1), per test: ORC (ORC-2 placer order, ORC-7.6 priority) and OBR
    (OBR-2 specimen ID, OBR-4 test code); with an empty placer order the reader takes OBR-2
    for it too. OML^O21 (v2.5.1), per test: ORC, TQ1 (TQ1-9 priority), OBR (OBR-2 placer
    order) and SPM (SPM-2 specimen ID). A whole-specimen cancel is an ORC alone whose ORC-2
    is the specimen ID. Raises ``LocalProtocolError`` for what the message cannot carry exactly.
    """
    if version not in ORDER_MESSAGE_TYPES.get(message_type, ()):
        raise LocalProtocolError(f"cannot build {message_type} v{version}", field="MSH-12")
    if now.utcoffset() is None:
        raise LocalProtocolError("the message time must be timezone-aware", field="MSH-7")
    if not requests:
        raise LocalProtocolError("an order message needs at least one order", field="ORC")
    code, trigger = message_type.split("^")
    msh = ["MSH", DEFAULT_DELIMITERS.encoding_characters, _value(sending_application, "MSH-3")]
    msh += ["", _value(receiving_application, "MSH-5"), "", format_ts(now), ""]
    msh += [f"{code}^{trigger}^{code}_{trigger}", _value(control_id, "MSH-10"), "P", version]
    segments = [msh]
    oml = message_type == "OML^O21"
    obr_count = pid_count = 0
    patient_id = ""
    for request in requests:
        _check_request(request, oml)
        if request.patient_id != patient_id:
            patient_id, pid_count = request.patient_id, pid_count + 1
            # PID-5 (name) is required; orders carry no names: an empty name of type U
            segments.append(["PID", str(pid_count), "", escape(patient_id), "", "^^^^^^U"])
        if not request.test_codes:
            segments += _order_segments(request, None, 0, oml)
        for test_code in request.test_codes:
            obr_count += 1
            segments += _order_segments(request, test_code, obr_count, oml)
    text = "\r".join("|".join(fields) for fields in segments) + "\r"
    if not text.isascii():
        msh += ["", "", "", "", "", "UNICODE UTF-8"]  # MSH-18: HL7's default is ASCII
        text = "\r".join("|".join(fields) for fields in segments) + "\r"
    return text.encode("utf-8")


def _order_segments(
    request: OrderRequest, test_code: str | None, obr_set_id: int, oml: bool
) -> list[list[str]]:
    """ORC (+ TQ1) (+ OBR (+ SPM)) for one test, or for a whole-specimen cancel (no test)."""
    placer = escape(request.specimen_id if test_code is None else request.placer_order)
    orc = ["ORC", _ORDER_CONTROL[request.action], placer]
    segments = [orc]
    if oml:
        segments.append(["TQ1", "1", "", "", "", "", "", "", "", request.priority])
    else:
        orc += ["", "", "", "", f"^^^^^{request.priority}"]  # ORC-7 quantity/timing
    if test_code is None:
        return segments
    specimen = escape(request.specimen_id)
    obr_placer = placer if oml else specimen
    segments.append(["OBR", str(obr_set_id), obr_placer, "", escape(test_code)])
    if oml:
        segments.append(["SPM", "1", specimen, "", _UNSPECIFIED_SPECIMEN_TYPE])
    return segments


def _check_request(request: OrderRequest, oml: bool) -> None:
    _value(request.specimen_id, "SPM-2" if oml else "OBR-2")
    _value(request.placer_order, "ORC-2", required=False)
    _value(request.patient_id, "PID-3", required=False)
    for test_code in request.test_codes:
        _value(test_code, "OBR-4")
    if request.priority not in PRIORITIES:
        where = "TQ1-9" if oml else "ORC-7"
        raise LocalProtocolError(f"priority {request.priority!r} is not S, A or R", field=where)
    if request.action is OrderAction.NEW and not request.test_codes:
        raise LocalProtocolError("a new order needs at least one test code", field="OBR-4")
    if not request.test_codes and request.placer_order not in ("", request.specimen_id):
        raise LocalProtocolError(
            "a whole-specimen cancel is an ORC alone: its ORC-2 is the specimen ID, so the "
            "placer order must be empty or the specimen ID",
            field="ORC-2",
        )


def _value(value: str, where: str, *, required: bool = True) -> str:
    """``value`` escaped; refused when it would not read back the same (empty, padded, controls)."""
    if (required and not value) or value != value.strip() or not value.isprintable():
        raise LocalProtocolError(
            "a value must be printable text without surrounding blanks"
            + (" and not empty" if required else ""),
            field=where,
        )
    return escape(value)
