"""The one scrub of free text a person reads: national IDs inside it are masked.

A result's free-text value (an OBX TX/ST/FT), a decode error, a hold's detail or a LIS's ACK text
may carry a national ID. Every screen, the JSON API, the CLI and the MQTT events pass such text
through ``scrub`` (the patient field itself is masked by the queries).

What is masked: 11 digits, not part of a longer number or of a decimal fraction, that pass the
mod-11 checks of a fødselsnummer, D-, H- or FH-number (Tenor synthetic numbers and the 2032
rule included: masking a number too many costs nothing, one too few leaks a person), also when
written with a space, a no-break space or a dot between the birth date and the personal
number (``150372 12382``). An 11-digit lot or serial number that fails the checks is shown as
sent. The birth date stays visible, as in the patient field (``150372*****``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from gateway.national_id import classify

_CANDIDATE: Final = re.compile(r"(?<![\d])(?<!\d[.,])(\d{6})([ .\u00a0]?)(\d{5})(?![\d])(?![.,]\d)")

#: the free-text fields of a result dict (``queries.result_dict``)
RESULT_TEXT_FIELDS: Final = ("value", "name", "unit", "reference_range")


def _mask(match: re.Match[str]) -> str:
    date, separator, personal = match.groups()
    if not classify(date + personal, allow_synthetic=True, accept_2032_rule=True).valid:
        return match.group()
    return f"{date}{separator}*****"


def scrub(text: str) -> str:
    """``text`` with every national ID in it masked (``DDMMYY*****``)."""
    if not any(c.isdigit() for c in text):  # most texts: no work
        return text
    return _CANDIDATE.sub(_mask, text)


def national_ids_in(text: str) -> list[str]:
    """The national IDs that ``scrub`` would mask in ``text`` (11 digits each, in order, once
    each): whose data a raw message holds, for the access log."""
    found: list[str] = []
    for match in _CANDIDATE.finditer(text):
        date, _separator, personal = match.groups()
        number = date + personal
        valid = classify(number, allow_synthetic=True, accept_2032_rule=True).valid
        if valid and number not in found:
            found.append(number)
    return found


def scrub_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result dict with its free text and hold texts scrubbed (the patient ID is masked by
    the query)."""
    for key in RESULT_TEXT_FIELDS:
        if isinstance(result.get(key), str):
            result[key] = scrub(result[key])
    result["holds"] = [
        {
            **hold,
            "params": _scrub_params(hold.get("params")),
            "detail": scrub(hold["detail"]),
            "detail_nb": scrub(hold.get("detail_nb", "")),
            "action": scrub(hold["action"]),
        }
        for hold in result["holds"]
    ]
    return result


def _scrub_params(params: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if params is None else {key: scrub(value) for key, value in params.items()}


def scrub_outbox(status: dict[str, Any]) -> dict[str, Any]:
    """An outbox status with the LIS's ACK texts scrubbed (a LIS may echo a patient ID)."""
    status["messages"] = [{**m, "ack_text": scrub(m["ack_text"])} for m in status["messages"]]
    return status


def scrub_quarantine_row(row: dict[str, Any]) -> dict[str, Any]:
    """One quarantine row with its decode error scrubbed (errors quote the bytes they read)."""
    return {
        **row,
        "error": scrub(row["error"]),
        "params": _scrub_params(row["params"]),
        "reason_text": scrub(row["reason_text"]),
    }


def scrub_quarantine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [scrub_quarantine_row(row) for row in rows]


#: a deviation's free texts (``gateway.store.deviations.as_dict``): who types them may paste an ID
DEVIATION_TEXT_FIELDS: Final = (
    "summary",
    "detail",
    "immediate_action",
    "cause",
    "corrective_action",
)


def scrub_deviations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Deviation rows with their texts scrubbed (and their history's, when it is there)."""
    return [scrub_deviation(row) for row in rows]


def scrub_deviation(row: dict[str, Any]) -> dict[str, Any]:
    """One deviation with its texts scrubbed, its history's values too."""
    out = {
        **row,
        **{k: scrub(row[k]) for k in DEVIATION_TEXT_FIELDS if isinstance(row.get(k), str)},
    }
    if "history" in row:
        out["history"] = [
            {**e, "from_value": scrub(e["from_value"]), "to_value": scrub(e["to_value"])}
            for e in row["history"]
        ]
    return out


def scrub_event(body: Mapping[str, object]) -> dict[str, object]:
    """An event payload with its texts scrubbed (deviation summaries, connection details)."""
    return {key: scrub(value) if isinstance(value, str) else value for key, value in body.items()}
