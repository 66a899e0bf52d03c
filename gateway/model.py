"""The gateway's domain objects: results, holds, QC results, deviations.

Plain frozen dataclasses: no I/O, no ORM. What drivers produce (``Observation``,
``InboundMessage``) lives in ``drivers.model``; the pipeline turns it into stored results;
rules return ``Hold`` objects.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime

from drivers.model import Method


class State(enum.StrEnum):
    """Lifecycle states of a result (see ``gateway.lifecycle`` for the allowed moves)."""

    RECEIVED = "received"
    HELD = "held"
    RELEASED = "released"
    QUEUED = "queued"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    #: its sender marked it test or debugging data (processing ID not P): kept, never sent
    TEST = "test"
    #: a person rejected it (a verifier), or a re-run replaced it: kept, never sent
    DISCARDED = "discarded"


class HoldReason(enum.StrEnum):
    """Reason codes of holds. Later issues add more; codes are stable strings."""

    INVALID_PATIENT_ID = "invalid_patient_id"
    MISSING_PATIENT_ID = "missing_patient_id"
    UNMAPPED_TEST = "unmapped_test"
    DUPLICATE = "duplicate"
    LIS_MESSAGE_INVALID = "lis_message_invalid"
    #: on results kept as test data (state ``test``): never released, says why it stays
    TEST_MESSAGE = "test_message"
    #: the operator is unknown, or not certified for the task when the analysis was performed
    UNCERTIFIED_OPERATOR = "uncertified_operator"
    #: a trainee's result: a supervisor certified for the task co-signs it (DOMAIN rule 2)
    AWAITING_COSIGN = "awaiting_cosign"
    #: a visual reading or a manual entry: a second, experienced person verifies it (rules 4-5)
    AWAITING_VERIFICATION = "awaiting_verification"
    #: the instrument's QC for the test is out of control or overdue (DOMAIN rules 6-7)
    QC_LOCKOUT = "qc_lockout"


#: a hold's parameters: what its sentence names (instrument, masked patient ID, test code, ...)
Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a result may not go to the LIS yet, and who may release it.

    No text: ``reason`` is a code and ``params`` the values its sentence names; screens render
    both in the reader's language from the catalogues (``gateway.texts``). A param never
    holds a full patient ID.
    """

    reason: str
    params: Params = ()
    #: the role shown as the one who acts on it (``gateway.people.roles.release_role``); who
    #: may act is decided by the reason (``HOLD_ACTIONS``), so older rows ("bioingenior") act alike
    release_role: str = "verifier"


@dataclass(frozen=True, slots=True)
class Result:
    """A patient result after mapping: what the rules see and the LIS builder sends."""

    instrument_id: str
    test_code: str
    value: str
    value_type: str
    unit: str
    reference_range: str
    abnormal_flags: tuple[str, ...]
    method: Method
    performed_at: datetime | None
    operator_id: str
    specimen_id: str
    patient_id: str
    result_status: str = "F"
    nlk_code: str = ""
    test_name: str = ""
    comment: str = ""
    instrument_serial: str = ""
    #: the message's processing ID (HL7 MSH-11, ASTM H.12); only "P" ever goes to the LIS
    processing_id: str = "P"
    #: the person (``users.person``) who performed it: the operator ID resolved when it
    #: arrived, or who typed it in; "" when nobody is known
    performed_by: str = ""
    id: int | None = None
    state: State = State.RECEIVED
    holds: tuple[Hold, ...] = field(default_factory=tuple)


#: What a result says, in ``Result``'s field order: the one list that the results table's data
#: columns, the insert rows and the select lists derive from (see ``gateway.store.results``).
#: Not in it: ``id`` and ``state`` (the store's bookkeeping) and ``holds`` (a table of their own).
RESULT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Result) if f.name not in {"id", "state", "holds"}
)


@dataclass(frozen=True, slots=True)
class QcResult:
    """A control measurement against a control lot and level."""

    instrument_id: str
    test_code: str
    value: str
    unit: str
    control_lot: str
    control_level: str
    performed_at: datetime | None
    operator_id: str
    nlk_code: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Deviation:
    """An avvik: an error, near-miss or incident, routed to the function responsible for it."""

    kind: str
    summary: str
    detail: str = ""
    responsible_function: str = "Kvalitetsansvarlig"
    #: ``gateway.deviations.categories.Category``; "" derives it from the function
    category: str = ""
    instrument_id: str = ""
    result_id: int | None = None
    outbox_id: int | None = None
