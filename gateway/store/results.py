"""How a result is stored: its data columns, insert rows and select list, from ``RESULT_FIELDS``.

``gateway.model.RESULT_FIELDS`` is the one list of what a result says; this module derives the
rest from it, so adding a field to ``Result`` means adding its column to the table (a test
holds the two equal) and nothing else. Only two fields change form on the way: the abnormal
flags (a tuple, stored "~"-joined) and the method (an enum, stored as its value).
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import Any

from drivers.model import Method
from gateway.model import RESULT_FIELDS, Hold, Result, State
from gateway.store.tables import results
from gateway.texts import params_json

#: the results table's columns that are the store's, not the result's own data
BOOKKEEPING: tuple[str, ...] = (
    "id",
    "raw_message_id",
    "state",
    "correction_of",
    "fingerprint",
    "created_at",
    "updated_at",
)

#: the select list of a result's data, in ``RESULT_FIELDS`` order
DATA_COLUMNS = tuple(results.c[name] for name in RESULT_FIELDS)
#: what ``from_row`` needs: the data, the id and the state
RESULT_COLUMNS = (results.c.id, results.c.state, *DATA_COLUMNS)

_values = attrgetter(*RESULT_FIELDS)  # one C call for every field, on the hot path


def encode_flags(flags: tuple[str, ...]) -> str:
    return "~".join(flags)


def decode_flags(stored: str) -> tuple[str, ...]:
    return tuple(flag for flag in stored.split("~") if flag)


def data_row(result: Result) -> dict[str, Any]:
    """A result's data as column values (the caller adds the bookkeeping columns)."""
    row = dict(zip(RESULT_FIELDS, _values(result), strict=True))
    row["abnormal_flags"] = encode_flags(result.abnormal_flags)
    row["method"] = result.method.value
    return row


def from_row(row: Any) -> Result:
    """A stored result (a row with at least ``RESULT_COLUMNS``) as a ``Result``, without holds."""
    mapping = row._mapping
    data = {name: mapping[name] for name in RESULT_FIELDS}
    data["abnormal_flags"] = decode_flags(data["abnormal_flags"])
    data["method"] = Method(data["method"])
    return Result(**data, id=mapping["id"], state=State(mapping["state"]))


def hold_row(result_id: int, hold: Hold, at: datetime) -> dict[str, Any]:
    """A ``holds`` row for a rule's ``hold`` on a result: its code and parameters (the texts
    are rendered when read: ``gateway.texts``), the role that acts on it, when it was made."""
    return {
        "result_id": result_id,
        "reason": hold.reason,
        "params": params_json(hold.params),
        "detail": "",
        "detail_nb": "",
        "action": "",
        "release_role": hold.release_role,
        "created_at": at,
    }
