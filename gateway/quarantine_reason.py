"""Why a message went to quarantine, as a reason code and parameters, from the decoding error.

A driver refuses a message with a ``ProtocolError`` whose text (English, technical) and field
travel to ingest on the ``InboundMessage`` (and the processing-ID rule sets a test message
aside with its own wording, ``test_message``); this module turns the two into one of a few codes
(``REASONS``) that the screens explain in the reader's language. The technical text is kept
beside the code, unchanged. Patterns are matched on the error texts of ``drivers/`` (tests feed
real refused messages through the real drivers, so a reworded error shows up there).
"""

from __future__ import annotations

import re
from typing import Final

from gateway.model import Params

REASONS: Final = (
    "not_a_result_message",
    "not_an_order_message",
    "unsupported_version",
    "bad_structure",
    "undecodable",
    "incomplete",
    "checksum",
    "too_large",
    "bad_timestamp",
    "missing_value",
    "bad_value",
    "bad_patient_id",
    "patient_conflict",
    "unreadable",
    "test_message",
)

# fields that name the message's build rather than a value in it
_STRUCTURE_FIELDS: Final = frozenset(
    {"MSH", "MSH-1", "MSH-2", "record", "record type", "header", "delimiters", "separator"}
    | {"escape", "frame", "frame number", "H", "P", "O", "R", "C", "Q"}
)
_RESULT_TYPE = re.compile(r"(\S*\^\S*) is not a result message")
_ORDER_TYPE = re.compile(r"'([^']*)' is not an order message")
_LIMIT = re.compile(r"exceeds (\d+) bytes")
_TIMESTAMP = re.compile(r"timestamp|date/time|date and time")
# the processing-ID rule's wording (processing_id.quarantine_error), perhaps after its field
_TEST_MESSAGE = re.compile(r"^(?:\S+: )?test message \((?P<field>[^()]*?) = (?P<pid>[^()]*)\)")
_MISSING = re.compile(r"is empty|\bhas no\b|\bnames no\b|\bno test code\b|^no records")


def classify(error: str, field: str) -> tuple[str, Params]:
    """The reason code and parameters for a refused message's error text and field."""
    found = _reason(error, field)
    code, extra = found if isinstance(found, tuple) else (found, ())
    params: Params = ((("field", field),) if field else ()) + extra
    return code, params


def _reason(error: str, field: str) -> str | tuple[str, Params]:
    text = error.lower()
    if test := _TEST_MESSAGE.match(error):
        return "test_message", (("processing_id", test.group("pid")),)
    if text.startswith("incomplete message"):
        return "incomplete"
    if "checksum" in text or field == "checksum":
        return "checksum"
    if field == "mllp" and (limit := _LIMIT.search(text)):
        return "too_large", (("limit", limit.group(1)),)
    if result_type := _RESULT_TYPE.search(error):
        return "not_a_result_message", (("message_type", result_type.group(1)),)
    if order_type := _ORDER_TYPE.search(error):
        return "not_an_order_message", (("message_type", order_type.group(1)),)
    if field == "encoding":
        return "undecodable"
    if field.startswith("PID-3"):
        return "patient_conflict" if "another patient" in text else "bad_patient_id"
    if field == "MSH-12" and "version" in text:
        return "unsupported_version"
    if _TIMESTAMP.search(text):
        return "bad_timestamp"
    if field in _STRUCTURE_FIELDS or field.startswith("segment["):
        return "bad_structure"
    if _MISSING.search(text):
        return "missing_value"
    return "bad_value" if field else "unreadable"
