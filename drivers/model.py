"""The types drivers produce: observations, inbound messages, worklist orders, order requests.

Plain frozen dataclasses: no I/O, no ORM. Drivers produce ``Observation`` objects inside an
``InboundMessage``; the gateway stores, maps and forwards them. ``WorklistOrder`` is what a host
query is answered from; ``OrderRequest`` is what an order message from the LIS asks for.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

#: what a listening instrument port does with a connection that arrives while one is open
#: (``drivers.session``); the config keys ``connections`` and ``[lis] orders_connections``
ConnectionPolicy = Literal["newest", "single", "parallel"]


class Method(enum.StrEnum):
    """How a value came to be: measured by an instrument, read by eye, or typed in."""

    MEASURED = "measured"
    VISUAL = "visual"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Observation:
    """One value as a driver received it, before mapping and rules.

    ``test_code`` is the instrument's own code; the pipeline maps it to the site's test
    (NLK code, unit, method) from config. ``value_type`` follows HL7 table 0125
    (NM, ST, CE, SN, TX).
    """

    instrument_id: str
    test_code: str
    value: str
    value_type: str = "NM"
    unit: str = ""
    reference_range: str = ""
    abnormal_flags: tuple[str, ...] = ()
    method: Method | None = None
    performed_at: datetime | None = None
    operator_id: str = ""
    specimen_id: str = ""
    patient_id: str = ""
    result_status: str = "F"
    comment: str = ""
    instrument_serial: str = ""
    test_name: str = ""
    is_qc: bool = False
    control_lot: str = ""
    control_level: str = ""
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A complete message as received: the raw bytes and what the driver decoded from them.

    Exactly one of ``observations`` and ``error`` is meaningful: a message that could not be
    decoded carries the error text and goes to quarantine with its bytes.

    ``processing_id`` is what the sender said the message is for, as sent (HL7 MSH-11.1,
    ASTM H.12: P production, T training, D debugging, ASTM's Q quality control; "" when not
    sent), and ``processing_field`` where it was read. The driver does not judge it: the
    gateway's one rule does (``gateway.rules.processing_id``).
    """

    instrument_id: str
    protocol: str
    raw: bytes
    received_at: datetime
    observations: tuple[Observation, ...] = ()
    error: str | None = None
    error_field: str | None = None
    control_id: str = ""
    processing_id: str = ""
    processing_field: str = ""


@dataclass(frozen=True, slots=True)
class WorklistOrder:
    """One order the host holds for a specimen: what the instrument should run on it."""

    specimen_id: str
    patient_id: str
    test_codes: tuple[str, ...]
    #: O.6: S = stat, A = as soon as possible, R = routine
    priority: str = "R"


#: Priority codes, most urgent first: S stat, A as soon as possible, R routine (HL7 TQ1-9 /
#: OBR-5 and LIS2-A2 O.6 share them).
PRIORITIES = ("S", "A", "R")


class OrderAction(enum.StrEnum):
    """HL7 ORC-1 order control, the two the worklist acts on: NW new, CA cancel."""

    NEW = "new"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order placed or cancelled for one specimen.

    ``test_codes`` are the codes the analysers know (OBR-4 component 1). On a cancel an empty
    tuple cancels every open test of the specimen.
    """

    action: OrderAction
    specimen_id: str
    test_codes: tuple[str, ...]
    patient_id: str = ""
    priority: str = "R"
    #: the LIS's own order number (ORC-2 / OBR-2), kept for the audit trail
    placer_order: str = ""
