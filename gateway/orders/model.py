"""What an order message asks of the gateway, free of any wire format."""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
