"""The processing-ID rule: what a sender marked as test or debugging data never reaches the LIS.

Both protocols say in their header what a message is for: HL7 MSH-11 (table 0103: P
production, T training, D debugging) and ASTM E1394 H.12 (P, T, D, and Q quality control).
Drivers put what was sent on the ``InboundMessage`` (``processing_id``, ``processing_field``);
this module is the one place that decides what it means and what happens:

* production: P (or not sent: both standards' default), and E1394's Q when every observation is
  a control (a QC run is production QC; patient results marked Q are not production);
* anything else is test data. It is received and acknowledged all the same (the analyser did
  nothing wrong), and then, per instrument (``test_messages``), either kept as test data
  (``keep``, the default: results in the state ``test`` with a hold that nobody can release, QC
  not counted as QC) or kept in quarantine with its raw bytes (``quarantine``).

It is never relabelled P: the LIS builder refuses a result whose processing ID is not P.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.model import InboundMessage, Observation
from gateway.model import Hold, HoldReason, Params

PRODUCTION = "P"
#: E1394 H.12 "quality control": production, for a message of controls only
QUALITY_CONTROL = "Q"
#: the longest processing ID kept (the results column); longer text is cut, never widened to P
MAX_LENGTH = 16


class TestMessages(enum.StrEnum):
    """An instrument's ``test_messages``: what becomes of a message not marked production."""

    __test__ = False  # not a pytest test class

    KEEP = "keep"
    QUARANTINE = "quarantine"


def normalised(processing_id: str) -> str:
    """The processing ID as the rule reads it: stripped, upper case, "" (not sent) as P."""
    return processing_id.strip().upper()[:MAX_LENGTH] or PRODUCTION


def is_production(processing_id: str, observations: Sequence[Observation] = ()) -> bool:
    """Whether a message with this processing ID and these observations is production data."""
    found = normalised(processing_id)
    if found == PRODUCTION:
        return True
    return found == QUALITY_CONTROL and all(o.is_qc for o in observations)


@dataclass(frozen=True, slots=True)
class TestMessage:
    """A message that is test data: its processing ID, the field it came in, the policy."""

    __test__ = False  # not a pytest test class

    processing_id: str
    field: str
    policy: TestMessages

    @property
    def params(self) -> Params:
        return (("field", self.field), ("processing_id", self.processing_id))

    def hold(self) -> Hold:
        """What each of its results carries: the reason it stays, released by nobody."""
        return Hold(reason=HoldReason.TEST_MESSAGE, params=self.params, release_role="")

    def error(self) -> str:
        """The technical text of its quarantine entry (``quarantine_reason`` reads it back)."""
        return quarantine_error(self.field, self.processing_id)


def quarantine_error(field: str, processing_id: str, fate: str = "not sent to the LIS") -> str:
    """``test message (MSH-11 = T): ...``: the one wording, which quarantine reasons match."""
    return f"test message ({field} = {processing_id}): kept in quarantine, {fate}"


def judge(message: InboundMessage, policy: TestMessages) -> TestMessage | None:
    """None when ``message`` is production data; else what it is and what becomes of it."""
    if is_production(message.processing_id, message.observations):
        return None
    return TestMessage(
        normalised(message.processing_id), message.processing_field or "processing ID", policy
    )
