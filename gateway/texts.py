"""Stored reason codes as sentences in a language: holds, quarantine reasons, connection states.

What the store keeps is a code and its parameters (``Hold.reason``/``params``, the quarantine's
``reason``/``params``, an instrument's ``state_code``); this module renders them from the
catalogues when someone reads them, so the same row reads in bokmål on the screen and in
English in the CLI and the audit log. Rows written before the codes existed carry only text:
that text is shown as it was stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from drivers.ports import ConnectionState
from gateway import quarantine_reason
from gateway.catalogue import FALLBACK_LANGUAGE, has, text
from gateway.model import Hold, HoldReason, Params

# a parameter whose value is itself a code, rendered from this catalogue group first
_NESTED: Final[Mapping[str, str]] = {
    "kind": "id_kind",
    "problem": "id_problem",
    "operator_problem": "operator_problem",
    "method": "method",
    "qc_state": "qc_status",
}
#: the states of an instrument's connection the screens know (the session's, plus the start)
NOT_CONNECTED_YET: Final = "not_connected_yet"
INSTRUMENT_STATES: Final = (NOT_CONNECTED_YET, *(state.value for state in ConnectionState))
#: the states of the LIS link, derived from the forwarder's status by ``lis_state``
LIS_STATES: Final = (
    "not_connected_yet",
    "connected",
    "connect_failed",
    "connection_lost",
    "timeout",
    "protocol_error",
    "worker_exited",
    "failed",
)
_PROTOCOL_ERRORS: Final = ("ProtocolError", "RemoteProtocolError", "LocalProtocolError")
_BYTES_SUFFIX = re.compile(r" \(bytes: b(['\"]).*\1\)$", re.S)
_SEGMENT = re.compile(r"segment\[(\d+)\]")


# --- parameters ------------------------------------------------------------------------------


def params_json(params: Params) -> str:
    """Parameters as stored: a JSON object of strings."""
    return json.dumps(dict(params), ensure_ascii=False, separators=(",", ":"))


def params_from_json(stored: str | None) -> dict[str, str] | None:
    """Stored parameters back as a dict; None for a row written before parameters existed."""
    if stored is None or stored == "":
        return None
    loaded = json.loads(stored)
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def render(lang: str, key: str, params: Mapping[str, str]) -> str:
    """``key`` with ``params``, where a nested code (an ID kind, a problem) is rendered first."""
    values: dict[str, object] = dict(params)
    for name, group in _NESTED.items():
        code = params.get(name)
        if code and has(FALLBACK_LANGUAGE, f"{group}.{code}"):
            values[name] = text(lang, f"{group}.{code}", **params)
    return text(lang, key, **values)


def without_bytes(error: str) -> str:
    """A technical error text without the quoted bytes a protocol error appends (patient data)."""
    return _BYTES_SUFFIX.sub("", error)


def field_label(lang: str, field: str) -> str:
    """A protocol field for the screens: "PID-3" as is, descriptive ones ("encoding") translated."""
    if segment := _SEGMENT.fullmatch(field):
        return text(lang, "field.segment", n=segment.group(1))
    key = "field." + field.lower().replace(" ", "_")
    return text(lang, key) if has(FALLBACK_LANGUAGE, key) else field


# --- holds -----------------------------------------------------------------------------------


def hold_why(lang: str, hold: Mapping[str, Any]) -> str:
    """Why the result is held, from a stored hold (``reason``, ``params``, stored texts)."""
    params = hold.get("params")
    if params is None:  # written before holds had parameters: its stored text
        return str((hold.get("detail_nb") if lang == "nb" else "") or hold.get("detail") or "")
    key = f"hold.why.{hold['reason']}"
    if not has(FALLBACK_LANGUAGE, key):
        return str(hold.get("detail") or "")
    return render(lang, key, params)


def hold_todo(lang: str, hold: Mapping[str, Any]) -> str:
    """What to do about a hold in ``lang``; a reason this version does not know: its stored text."""
    key = f"hold.todo.{hold['reason']}"
    return text(lang, key) if has(FALLBACK_LANGUAGE, key) else str(hold.get("action") or "")


def hold_technical(hold: Mapping[str, Any]) -> str:
    """The technical detail a hold carries (an error text), without quoted bytes; "" if none."""
    params = hold.get("params") or {}
    return without_bytes(str(params.get("error", "")))


def describe_hold(hold: Hold, lang: str = FALLBACK_LANGUAGE) -> str:
    """A hold from a rule as one line ("reason: why"), e.g. for the audit log."""
    return f"{hold.reason}: {hold_why(lang, {'reason': hold.reason, 'params': dict(hold.params)})}"


def hold_json(hold: Mapping[str, Any]) -> dict[str, Any]:
    """A stored hold with its texts filled in for JSON readers (``detail`` English, as before)."""
    return {
        **hold,
        "detail": hold_why("en", hold),
        "detail_nb": hold_why("nb", hold),
        "action": hold_todo("en", hold),
    }


def action_texts(lang: str) -> dict[str, str]:
    """What to do about every known hold reason in ``lang``."""
    return {reason.value: text(lang, f"hold.todo.{reason.value}") for reason in HoldReason}


# --- quarantine ------------------------------------------------------------------------------


def quarantine_code(row: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The stored reason code and parameters of a quarantine row (derived for older rows)."""
    params = params_from_json(row.get("params"))
    reason = str(row.get("reason") or "")
    if reason and params is not None:
        return reason, params
    code, derived = quarantine_reason.classify(str(row.get("error", "")), str(row.get("field", "")))
    return code, dict(derived)


def quarantine_text(lang: str, reason: str, params: Mapping[str, str]) -> str:
    key = f"quarantine.reason.{reason}"
    return render(
        lang, key if has(FALLBACK_LANGUAGE, key) else "quarantine.reason.unreadable", params
    )


# --- connection states -----------------------------------------------------------------------


def connection_text(lang: str, state: str, detail: str) -> str:
    """An instrument's connection state as a sentence ("" for a state this version lacks)."""
    key = f"connection.{state}"
    return text(lang, key, peer=detail) if state and has(FALLBACK_LANGUAGE, key) else ""


def connection_technical(state: str, detail: str) -> str:
    """The technical detail worth a click: an error's text (the peer is in the sentence)."""
    quiet = {"", NOT_CONNECTED_YET, ConnectionState.CONNECTED, ConnectionState.CLOSED_BY_INSTRUMENT}
    return "" if state in quiet else without_bytes(detail)


def lis_state(connected: bool, last_error: str) -> str:
    """The LIS link's state code from the forwarder's status (connected, last error text).

    The forwarder reports an error as ``loggable()`` text, "ExceptionClass: message", so the
    class name says what kind of failure it was.
    """
    if connected:
        return "connected"
    if not last_error:
        return "not_connected_yet"
    if last_error.startswith("LIS worker process exited"):
        return "worker_exited"
    kind = last_error.partition(":")[0]
    if kind in _PROTOCOL_ERRORS:
        return "protocol_error"
    if kind == "TimeoutError":
        return "timeout"
    if kind == "ForwardError" and "cannot connect" in last_error:
        return "connect_failed"
    if kind == "ForwardError" and "broke" in last_error:
        return "connection_lost"
    if kind in ("TransportError", "ConnectionRefusedError", "OSError", "gaierror"):
        return "connect_failed"
    if kind in ("ConnectionResetError", "BrokenPipeError", "IncompleteReadError"):
        return "connection_lost"
    return "failed"
