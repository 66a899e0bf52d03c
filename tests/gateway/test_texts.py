"""Reason codes to sentences: holds, quarantine reasons and connection states in nb and en.

The quarantine reasons are derived from real refusals: bytes fed through the real drivers and
protocol cores, so a reworded driver error that no longer maps shows up here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.analysers import generic_hl7
from drivers.analysers.astm_host import INCOMPLETE
from drivers.errors import RemoteProtocolError
from drivers.ports import ConnectionState
from drivers.protocols.astm.frames import decode_frame
from drivers.protocols.astm.records import parse_message
from drivers.protocols.hl7.mllp import MllpDecoder
from drivers.protocols.hl7.orders import parse_orders
from gateway import quarantine_reason, texts
from gateway.model import Hold, HoldReason
from gateway.quarantine_reason import REASONS

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
MSH = "MSH|^~\\&|BENCH|SN1|TRYGG|LAB|{sent}||{type}|C1|P|{version}"
OBX = "OBX|1|NM|CRP^CRP||12|mg/L|||||F"
# English developer text that must never reach a bokmål sentence
ENGLISH = ("message", "field", "bytes", "error", "the ", " is ", "[[tests]]", "mapping")


def hl7(
    msh_type: str = "ORU^R01",
    version: str = "2.5.1",
    *rest: str,
    sent: str = "20261121093000+0000",
) -> bytes:
    lines = [MSH.format(type=msh_type, version=version, sent=sent), "PID|1||01010012356", *rest]
    return "\r".join(lines).encode() + b"\r"


def refused_hl7(raw: bytes) -> tuple[str, str]:
    message = generic_hl7.decode("bench-1", raw, NOW)
    assert message.error is not None, "the driver accepted it"
    return message.error, message.error_field or ""


def raised(call: Any) -> tuple[str, str]:
    with pytest.raises(RemoteProtocolError) as caught:
        call()
    return str(caught.value), caught.value.field or ""


def big_mllp() -> None:
    decoder = MllpDecoder(max_size=64)
    decoder.receive_data(b"\x0b" + b"A" * 100)
    decoder.next_message()


REFUSALS: dict[str, tuple[str, str]] = {
    "not_a_result_message": refused_hl7(hl7("ORU^R99", "2.5.1", OBX)),
    "not_an_order_message": raised(lambda: parse_orders(hl7("ORU^R01", "2.5.1", OBX))),
    "unsupported_version": refused_hl7(hl7("ORU^R01", "3.0", OBX)),
    "bad_structure": refused_hl7(b"HELLO|this is not HL7\r"),
    "undecodable": raised(lambda: parse_message(b"H|\\^&\rP|1|\xff\rL|1\r", encoding="ascii")),
    "incomplete": (INCOMPLETE, "L"),
    "checksum": raised(lambda: decode_frame(b"\x021H|\\^&\r\x0300\r\n", expected_number=1)),
    "too_large": raised(big_mllp),
    "bad_timestamp": refused_hl7(hl7("ORU^R01", "2.5.1", OBX, sent="2024-01-01")),
    "missing_value": refused_hl7(hl7("ORU^R01", "2.5.1", "OBX|1|NM|||12|mg/L|||||F")),
}


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_real_refusals_map_to_their_reason(code: str) -> None:
    error, field = REFUSALS[code]
    reason, params = quarantine_reason.classify(error, field)
    assert reason == code, (error, field)
    assert dict(params).get("field", "") == field


def test_reason_params_name_what_the_sentence_needs() -> None:
    _, params = quarantine_reason.classify(*REFUSALS["not_a_result_message"])
    assert dict(params) == {"field": "MSH-9", "message_type": "ORU^R99"}
    _, params = quarantine_reason.classify(*REFUSALS["too_large"])
    assert dict(params) == {"field": "mllp", "limit": "64"}


def test_the_other_reasons() -> None:
    conflict = "specimen S1 already has open orders for another patient: cancel those first"
    assert quarantine_reason.classify(conflict, "PID-3")[0] == "patient_conflict"
    assert quarantine_reason.classify("PID-3: cannot read x", "PID-3")[0] == "bad_patient_id"
    assert quarantine_reason.classify("value 'x' is not a number", "OBX[1]-5")[0] == "bad_value"
    assert quarantine_reason.classify("something new", "")[0] == "unreadable"


@pytest.mark.parametrize("code", REASONS)
def test_every_quarantine_reason_reads_in_both_languages(code: str) -> None:
    params = {"field": "MSH-9", "message_type": "ORU^R99", "limit": "1048576", "processing_id": "T"}
    nb = texts.quarantine_text("nb", code, params)
    en = texts.quarantine_text("en", code, params)
    assert nb and en and nb != en and "–" not in nb and "{" not in nb
    assert not any(word in nb for word in ENGLISH), nb


def test_an_unknown_quarantine_reason_still_reads() -> None:
    assert texts.quarantine_text("nb", "from_a_newer_version", {}) == "Meldingen kan ikke leses."


def test_technical_detail_drops_the_quoted_bytes() -> None:
    error, _ = REFUSALS["not_a_result_message"]
    assert "(bytes: b'MSH|" in error  # as the driver reports it: the offending bytes quoted
    shown = texts.without_bytes(error)
    assert shown == "MSH-9: ORU^R99 is not a result message this parser reads"
    assert texts.without_bytes("no bytes here") == "no bytes here"


def test_old_quarantine_rows_get_their_reason_when_read() -> None:
    error, field = REFUSALS["not_a_result_message"]
    old = {"error": error, "field": field, "reason": "", "params": None}
    assert texts.quarantine_code(old) == (
        "not_a_result_message",
        {"field": "MSH-9", "message_type": "ORU^R99"},
    )
    stored = {"error": "x", "field": "", "reason": "checksum", "params": '{"field":"checksum"}'}
    assert texts.quarantine_code(stored) == ("checksum", {"field": "checksum"})


def test_fields_read_in_the_language() -> None:
    assert texts.field_label("nb", "PID-3") == "PID-3"
    assert texts.field_label("nb", "record type") == "posttype"
    assert texts.field_label("en", "record type") == "record type"
    assert texts.field_label("nb", "encoding") == "tegnsett"
    assert texts.field_label("nb", "segment[3]") == "segment 3"


# --- holds -------------------------------------------------------------------------------

HOLD_PARAMS: dict[str, dict[str, str]] = {
    HoldReason.MISSING_PATIENT_ID: {"instrument": "afinion-1"},
    HoldReason.INVALID_PATIENT_ID: {
        "patient_id": "010100*****",
        "kind": "dnr",
        "problem": "individual_not_issued",
        "individual": "600",
        "year": "45",
    },
    HoldReason.UNMAPPED_TEST: {"instrument": "afinion-1", "code": "GLU"},
    HoldReason.DUPLICATE: {},
    HoldReason.LIS_MESSAGE_INVALID: {"field": "OBX-5", "error": "OBX-5: value too long"},
    HoldReason.TEST_MESSAGE: {"field": "MSH-11", "processing_id": "T"},
    HoldReason.UNCERTIFIED_OPERATOR: {
        "operator": "KN",
        "instrument": "afinion-1",
        "task": "afinion-1:CRP",
        "operator_problem": "expired",
    },
    HoldReason.AWAITING_COSIGN: {"person": "kari", "task": "afinion-1:CRP", "supervisor": "bh"},
    HoldReason.AWAITING_VERIFICATION: {"method": "visual", "test": "LEU"},
    HoldReason.QC_LOCKOUT: {
        "instrument": "afinion-1",
        "test": "HbA1c",
        "qc_state": "out_of_control",
        "rules": "2-2s",
        "since": "07.12.2026 09:15",
        "lockout": "3",
    },
}
HOLD_NB = {
    HoldReason.MISSING_PATIENT_ID: "Svaret fra afinion-1 mangler pasient-ID.",
    HoldReason.INVALID_PATIENT_ID: (
        "Pasient-ID 010100***** er ikke et gyldig D-nummer: "
        "individnummer 600 tildeles ikke for fødselsår ..45."
    ),
    HoldReason.UNMAPPED_TEST: (
        "Instrumentet «afinion-1» sendte analysekoden «GLU», som ikke er lagt inn i oppsettet "
        "(testkoblingen)."
    ),
    HoldReason.DUPLICATE: "Et svar for samme prøve og analyse er mottatt før.",
    HoldReason.LIS_MESSAGE_INVALID: "Meldingen til LIS kunne ikke lages. Feltet med feil: OBX-5.",
    HoldReason.TEST_MESSAGE: "Testmelding (MSH-11 = T): ikke sendt til LIS.",
    HoldReason.UNCERTIFIED_OPERATOR: (
        "Operatør «KN» på afinion-1 kan ikke utføre afinion-1:CRP: sertifiseringen er utløpt."
    ),
    HoldReason.AWAITING_COSIGN: "kari er under opplæring på afinion-1:CRP; veileder: bh.",
    HoldReason.AWAITING_VERIFICATION: (
        "Visuell avlesning av LEU: en annen, erfaren person må kontrollere svaret."
    ),
    HoldReason.QC_LOCKOUT: (
        "Kontrollen for HbA1c på afinion-1 er utenfor kontroll (2-2s) siden 07.12.2026 09:15."
    ),
}
HOLD_EN = {
    HoldReason.MISSING_PATIENT_ID: "The result from afinion-1 has no patient ID.",
    HoldReason.INVALID_PATIENT_ID: (
        "Patient ID 010100***** is not a valid D-number: "
        "individual number 600 is not issued for birth year ..45."
    ),
    HoldReason.UNMAPPED_TEST: (
        "Instrument 'afinion-1' sent test code 'GLU', which is not in the setup's test mappings."
    ),
    HoldReason.DUPLICATE: "A result for the same sample and test has arrived before.",
    HoldReason.LIS_MESSAGE_INVALID: (
        "The message to the LIS could not be built. Field at fault: OBX-5."
    ),
    HoldReason.TEST_MESSAGE: "Test message (MSH-11 = T): not sent to the LIS.",
    HoldReason.UNCERTIFIED_OPERATOR: (
        "Operator 'KN' on afinion-1 may not perform afinion-1:CRP: the certification has expired."
    ),
    HoldReason.AWAITING_COSIGN: "kari is a trainee on afinion-1:CRP; supervisor: bh.",
    HoldReason.AWAITING_VERIFICATION: (
        "Visual reading of LEU: a second, experienced person must check the result."
    ),
    HoldReason.QC_LOCKOUT: (
        "The controls for HbA1c on afinion-1 are out of control (2-2s) since 07.12.2026 09:15."
    ),
}


@pytest.mark.parametrize("reason", list(HoldReason))
def test_every_hold_reason_reads_in_both_languages(reason: HoldReason) -> None:
    hold = {"reason": reason.value, "params": HOLD_PARAMS[reason]}
    assert texts.hold_why("nb", hold) == HOLD_NB[reason]
    assert texts.hold_why("en", hold) == HOLD_EN[reason]
    nb_todo, en_todo = texts.hold_todo("nb", hold), texts.hold_todo("en", hold)
    assert nb_todo and en_todo and nb_todo != en_todo
    assert "[[" not in nb_todo + HOLD_NB[reason]


def test_a_hold_from_a_rule_round_trips_through_the_store_format() -> None:
    hold = Hold(HoldReason.UNMAPPED_TEST, (("instrument", "afinion-1"), ("code", "GLU")))
    stored = texts.params_json(hold.params)
    assert texts.params_from_json(stored) == {"instrument": "afinion-1", "code": "GLU"}
    row = {"reason": hold.reason, "params": texts.params_from_json(stored)}
    assert texts.hold_why("en", row) == HOLD_EN[HoldReason.UNMAPPED_TEST]


def test_the_technical_detail_of_a_hold() -> None:
    hold = {"reason": "lis_message_invalid", "params": {"error": "OBX-5: x (bytes: b'123')"}}
    assert texts.hold_technical(hold) == "OBX-5: x"
    assert texts.hold_technical({"reason": "unmapped_test", "params": {}}) == ""
    assert texts.hold_technical({"reason": "unmapped_test", "params": None}) == ""


def test_old_hold_rows_show_their_stored_texts() -> None:
    old = {
        "reason": "unmapped_test",
        "params": None,
        "detail": "Instrument 'a' sent test code 'X', which has no [[tests]] mapping",
        "detail_nb": "Instrumentet 'a' sendte analysekoden 'X', som ikke har noen kobling",
        "action": "stored action",
    }
    assert texts.hold_why("nb", old) == old["detail_nb"]
    assert texts.hold_why("en", old) == old["detail"]
    assert texts.hold_why("nb", {**old, "detail_nb": ""}) == old["detail"]
    # what to do depends on the reason only: the catalogue's text, also for old rows
    assert texts.hold_todo("nb", old).startswith("Legg testen inn i oppsettet")
    newer = {"reason": "from_a_newer_version", "params": {}, "detail": "d", "action": "a"}
    assert (texts.hold_why("nb", newer), texts.hold_todo("nb", newer)) == ("d", "a")
    assert texts.hold_json(old)["detail"] == old["detail"]


# --- connection states -------------------------------------------------------------------


@pytest.mark.parametrize("state", texts.INSTRUMENT_STATES)
def test_every_connection_state_reads_in_both_languages(state: str) -> None:
    nb = texts.connection_text("nb", state, "127.0.0.1:40001")
    en = texts.connection_text("en", state, "127.0.0.1:40001")
    assert nb and en and nb != en
    assert ("127.0.0.1:40001" in nb) == (state == ConnectionState.CONNECTED)


def test_connection_technical_detail_only_for_failures() -> None:
    error = "TransportError: connect to 127.0.0.1:9: connection refused"
    assert texts.connection_technical(ConnectionState.CONNECT_FAILED, error) == error
    assert texts.connection_technical(ConnectionState.CONNECTED, "127.0.0.1:1") == ""
    assert texts.connection_technical("not_connected_yet", "not connected yet") == ""
    assert texts.connection_text("nb", "", "whatever") == ""  # an old row: no sentence


@pytest.mark.parametrize(
    ("connected", "last_error", "state"),
    [
        (True, "", "connected"),
        (False, "", "not_connected_yet"),
        (False, "ForwardError: cannot connect to the LIS at tcp://x:1: refused", "connect_failed"),
        (False, "ForwardError: LIS connection broke or sent bad framing: x", "connection_lost"),
        (False, "TimeoutError: ", "timeout"),
        (False, "RemoteProtocolError: MSA: the acknowledgement has no MSA", "protocol_error"),
        (False, "LIS worker process exited with code 1", "worker_exited"),
        (False, "ValueError: something else", "failed"),
    ],
)
def test_lis_states(connected: bool, last_error: str, state: str) -> None:
    assert texts.lis_state(connected, last_error) == state
    assert state in texts.LIS_STATES
