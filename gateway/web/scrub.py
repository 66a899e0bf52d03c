"""Personal-data masking of what the web shows: national IDs inside free text are masked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.national_id import mask

_ELEVEN_DIGITS = re.compile(r"(?<!\d)\d{11}(?!\d)")


def scrub(text: str) -> str:
    """Mask anything shaped like a national ID inside free text (details, errors, ACK texts)."""
    return _ELEVEN_DIGITS.sub(lambda match: mask(match.group()), text)


def scrub_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result dict with its hold texts scrubbed (the patient ID is masked by the query)."""
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


def scrub_quarantine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quarantine rows with their decode errors scrubbed (errors quote the bytes they read)."""
    return [
        {
            **row,
            "error": scrub(row["error"]),
            "params": _scrub_params(row["params"]),
            "reason_text": scrub(row["reason_text"]),
        }
        for row in rows
    ]


def scrub_deviations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Deviation rows with their summary and detail scrubbed."""
    return [
        {**row, "summary": scrub(row["summary"]), "detail": scrub(row["detail"])} for row in rows
    ]
