"""Drivers read the processing ID (HL7 MSH-11, ASTM H.12) onto the message, and map it.

Which processing IDs are production is the gateway's one rule (gateway.rules.processing_id);
the drivers only say what the sender sent and where. No profile refuses a message for its
processing ID any more: a T or D message decodes like a P one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.registry import DRIVERS
from tests.drivers.test_profile_afinion2 import CONTROL as AFINION_CONTROL
from tests.drivers.test_profile_dca_vantage import CONTROL as DCA_CONTROL
from tests.drivers.test_profile_urine import GOLDEN as CLINITEK

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

HL7 = (
    b"MSH|^~\\&|BENCH|SN1|TRYGG|LAB|20261121093000+0000||ORU^R01^ORU_R01|C1|{pid}|2.5.1\r"
    b"PID|1||01010012356^^^^NNNOR\rOBR|1||SPEC9|CRP^CRP^L|||20261121093000+0000\r"
    b"OBX|1|NM|CRP^CRP^L||17|mg/L|||||F\r"
)
GENERIC = (
    b"H|\\^&|||SIM^1^S1|||||||{pid}|LIS2-A2|20261207090000\r"
    b"P|1|01010012356\r"
    b"O|1|SPEC-7||^^^GLU|R||||||N||||||||||||||F\r"
    b"R|1|^^^GLU|5.5|mmol/L||N||F||op1||20261207090000\r"
    b"L|1|N\r"
)


@pytest.mark.parametrize("pid", ["P", "T", "D", "", "X"])
def test_the_hl7_receiver_puts_msh_11_on_the_message(pid: str) -> None:
    message = DRIVERS["hl7_mllp"].decode("bench-1", HL7.replace(b"{pid}", pid.encode()), NOW)
    assert message.error is None and len(message.observations) == 1
    assert (message.processing_id, message.processing_field) == (pid, "MSH-11")


@pytest.mark.parametrize(
    ("driver", "raw", "sent"),
    [
        ("astm_generic", GENERIC.replace(b"{pid}", b"P"), "P"),
        ("astm_afinion2", AFINION_CONTROL, "Q"),
        ("astm_dca_vantage", DCA_CONTROL, "P"),
        ("astm_clinitek_status", CLINITEK, "P"),
    ],
)
@pytest.mark.parametrize("pid", ["T", "D"])
def test_astm_drivers_put_h_12_on_the_message_and_map_test_messages(
    driver: str, raw: bytes, sent: str, pid: str
) -> None:
    marker = f"|||||||{sent}|".encode()
    assert raw.count(marker) == 1
    original = DRIVERS[driver].decode("astm-1", raw, NOW)
    message = DRIVERS[driver].decode("astm-1", raw.replace(marker, f"|||||||{pid}|".encode()), NOW)
    assert original.error is None and message.error is None, message.error
    assert (original.processing_id, original.processing_field) == (sent, "H.12")
    assert (message.processing_id, message.processing_field) == (pid, "H.12")
    assert len(message.observations) == len(original.observations) > 0


@pytest.mark.parametrize(("sent", "read"), [("PR", "P"), ("QR", "Q"), ("pr", "P")])
def test_mindray_record_kinds_read_as_the_standard_processing_ids(sent: str, read: str) -> None:
    """Mindray BS analysers send H.12 = PR (patient results) and QR (QC), as in the corpus's
    mindray_bs240_session: production, not test data."""
    raw = GENERIC.replace(b"{pid}", sent.encode()).replace(b"SIM^1^S1", b"Mindry^^")
    message = DRIVERS["astm_generic"].decode("astm-1", raw, NOW)
    assert message.error is None and len(message.observations) == 1
    assert message.processing_id == read
