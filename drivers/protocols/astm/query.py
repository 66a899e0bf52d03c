"""LIS2-A2 host queries, sans-IO: read a Q record, and build the host's answer from a worklist.

Sources (field meanings and codes), CLSI LIS2-A2 as quoted by vendors' host manuals and the
record tables of independent implementations:

* Q.3 "starting range ID number": component 1 the computer system's patient ID, component 2 its
  specimen ID, later components manufacturer-defined. Roche cobas ("cobas type") put the sample
  ID in component 3 (``^^SID^seq^rack^pos^^S1^SC``), hence ``specimen_component``. The Erba
  EM200 lists several specimens as ``^ID1`ID2`` (the repeat delimiter inside component 2).
* Q.13 "request information status codes": ``O`` test orders and demographics only, ``A``
  abort/cancel the last request (no answer is due), ``X`` "results cannot be done, request
  cancelled".
* O.26 "report types": ``Q`` response to query, ``Y`` "no order on record for this test (in
  response to query)".
* L.3 "termination code": ``N`` normal, ``I`` "no information available from last query".

"No information" has two forms, chosen per instrument (``NoInformationForm``): the standard one
answers H, Q (the query echoed, Q.13 = ``X``), L (L.3 = ``I``); the order form answers H, P, O
(O.26 = ``Y``), L, which instruments that only read O records expect.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from drivers.errors import LocalProtocolError
from drivers.model import WorklistOrder
from drivers.protocols.astm.datetimes import format_datetime
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Field,
    Record,
    Repeat,
    text_field,
)

#: LIS2-A2: Q.3 component 2 is the computer system's specimen ID.
STANDARD_SPECIMEN_COMPONENT = 2
#: What the host calls itself in H.5 of its answers.
HOST_NAME = "TRYGG"
#: Q.3 / Q.5 value meaning "everything": not a specimen the worklist can look up.
ALL = "ALL"


class NoInformationForm(enum.StrEnum):
    """How the host says "I have no orders for this specimen"."""

    #: H, Q (query echoed, Q.13 = X), L (L.3 = I): LIS2-A2's own form
    QUERY_STATUS = "query"
    #: H, P, O (O.26 = Y), L: for instruments that only read order records
    ORDER_REPORT = "order"


@dataclass(frozen=True, slots=True)
class RequestedSpecimen:
    """One specimen the instrument asks about; ``range_id`` is its Q.3 repeat, echoed back."""

    specimen_id: str
    range_id: Repeat

    @property
    def can_look_up(self) -> bool:
        """False for a query without a specimen ID (rack/position only) or for ``ALL``."""
        return bool(self.specimen_id) and self.specimen_id.upper() != ALL


@dataclass(frozen=True, slots=True)
class HostQuery:
    """What one Q record asks for."""

    specimens: tuple[RequestedSpecimen, ...]
    #: Q.5 universal test ID(s) as received (usually ``^^^ALL``)
    test_ids: Field
    #: Q.13 request information status code
    status: str

    @property
    def cancels_request(self) -> bool:
        """Q.13 = A: the instrument withdraws its last request, so no answer is sent."""
        return self.status == "A"

    @property
    def specimen_ids(self) -> tuple[str, ...]:
        """The specimen IDs a worklist can be asked about, in order, without repeats."""
        seen: dict[str, None] = {}
        for specimen in self.specimens:
            if specimen.can_look_up:
                seen.setdefault(specimen.specimen_id, None)
        return tuple(seen)


def parse_query(
    record: Record, *, specimen_component: int = STANDARD_SPECIMEN_COMPONENT
) -> HostQuery:
    """Read the specimens a Q record asks about (``specimen_component`` is 1-based)."""
    if record.type != "Q":
        raise LocalProtocolError(f"not a Q record: {record.type!r}", field="record type")
    if specimen_component < 1:
        raise LocalProtocolError(
            f"specimen_component is 1-based, not {specimen_component}", field="Q.3"
        )
    index = specimen_component - 1
    specimens: list[RequestedSpecimen] = []
    for number, repeat in enumerate(record.field(3)):
        if len(repeat) > index:
            specimen_id = repeat[index].strip()
        elif number > 0 and len(repeat) == 1:
            # Erba EM200: "^ID1`ID2" lists specimens with the repeat delimiter inside the
            # specimen component, so a later one-component repeat continues that list; its
            # echo puts the ID back where the standard has it.
            specimen_id = repeat[0].strip()
            repeat = ("",) * index + (repeat[0],)
        else:
            specimen_id = ""
        specimens.append(RequestedSpecimen(specimen_id, repeat))
    return HostQuery(
        # a Q record without Q.3 still asks something: it gets one "no information" answer
        specimens=tuple(specimens) or (RequestedSpecimen("", ("",)),),
        test_ids=record.field(5),
        status=record.value(13).strip().upper(),
    )


def find_queries(
    records: Sequence[Record], *, specimen_component: int = STANDARD_SPECIMEN_COMPONENT
) -> list[HostQuery]:
    """Every Q record of a message, parsed."""
    return [parse_query(r, specimen_component=specimen_component) for r in records if r.type == "Q"]


def header_delimiters(raw: bytes, *, encoding: str = "latin-1") -> Delimiters:
    """The delimiters the message's first H record declares (the answer uses the same)."""
    for line in raw.replace(b"\n", b"\r").split(b"\r"):
        if line.startswith(b"H") and len(line) >= 5:
            chars = line[1:5].decode(encoding, "replace")
            try:
                return Delimiters(chars[0], chars[1], chars[2], chars[3])
            except LocalProtocolError:
                return DEFAULT_DELIMITERS
    return DEFAULT_DELIMITERS


def _fields(count: int, values: Mapping[int, Field]) -> tuple[Field, ...]:
    """Fields 2..count of a record (standard numbering): ``values`` set, the rest empty."""
    return tuple(values.get(n, text_field("")) for n in range(2, count + 1))


def _header(delimiters: Delimiters, receiver: Field, now: datetime, tz: tzinfo) -> Record:
    return Record(
        "H",
        _fields(
            14,
            {
                2: text_field(delimiters.definition),
                5: text_field(HOST_NAME),
                10: receiver or text_field(""),
                12: text_field("P"),  # processing ID: production
                13: text_field("LIS2-A2"),
                14: text_field(format_datetime(now, tz=tz)),
            },
        ),
    )


def _test_ids(codes: Sequence[str]) -> Field:
    return tuple(("", "", "", code) for code in codes) or text_field("")


def _order(sequence: int, specimen_id: str, tests: Field, priority: str, report: str) -> Record:
    # O.12 action code "A": add the tests to the specimen the instrument already holds.
    return Record(
        "O",
        _fields(
            26,
            {
                2: text_field(str(sequence)),
                3: text_field(specimen_id),
                5: tests,
                6: text_field(priority),
                12: text_field("A" if report == "Q" else ""),
                26: text_field(report),
            },
        ),
    )


def _patient(sequence: int, patient_id: str) -> Record:
    return Record("P", (text_field(str(sequence)), text_field(patient_id)))


def _no_information_query(sequence: int, query: HostQuery, specimen: RequestedSpecimen) -> Record:
    return Record(
        "Q",
        _fields(
            13,
            {
                2: text_field(str(sequence)),
                3: (specimen.range_id,) if specimen.range_id else text_field(""),
                5: query.test_ids or text_field(""),
                13: text_field("X"),
            },
        ),
    )


def build_reply(
    query: HostQuery,
    orders: Mapping[str, Sequence[WorklistOrder]],
    *,
    now: datetime,
    tz: tzinfo,
    form: NoInformationForm = NoInformationForm.QUERY_STATUS,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    receiver: Field = (),
) -> list[Record]:
    """The host's answer to ``query``: orders for the specimens it has, "no information" else.

    ``orders`` maps specimen ID to the worklist's orders for it; ``receiver`` is the
    instrument's H.5, echoed in H.10; ``now`` stamps H.14 in the analyser's local time ``tz``.
    """
    records = [_header(delimiters, receiver, now, tz)]
    patients = queries = 0
    answered = False
    for specimen in query.specimens:
        found = orders.get(specimen.specimen_id, ()) if specimen.can_look_up else ()
        if found:
            answered = True
            current_patient: str | None = None
            order_number = 0
            for order in found:
                if order.patient_id != current_patient:
                    patients += 1
                    order_number = 0
                    current_patient = order.patient_id
                    records.append(_patient(patients, order.patient_id))
                order_number += 1
                records.append(
                    _order(
                        order_number,
                        specimen.specimen_id,
                        _test_ids(order.test_codes),
                        order.priority,
                        "Q",
                    )
                )
        elif form is NoInformationForm.QUERY_STATUS:
            queries += 1
            records.append(_no_information_query(queries, query, specimen))
        else:
            patients += 1
            records.append(_patient(patients, ""))
            tests = query.test_ids or text_field("")
            records.append(_order(1, specimen.specimen_id, tests, "", "Y"))
    termination = "I" if not answered and form is NoInformationForm.QUERY_STATUS else "N"
    records.append(Record("L", (text_field("1"), text_field(termination))))
    return records
