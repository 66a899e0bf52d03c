"""How the people pages show a roster: days in the reader's format, each certification's
status today (a passed due date shows as expired, with the date), and the roster's filters.

The roster rows come from ``gateway.store.competence.roster`` (plain dicts); this module adds
only what the templates show, so the status rule stays the store's (``status_at``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from gateway.people.certification import CertStatus

#: the status filter's choices ("" is every status)
STATUSES: Final = tuple(s.value for s in CertStatus)
#: a certification dated after today has no status yet
NOT_YET: Final = "not_yet"


def shown_status(cert: Mapping[str, Any]) -> str:
    """The status a certification has today: the effective one (``not_yet`` before its date)."""
    return str(cert.get("effective_status") or NOT_YET)


def lapsed(cert: Mapping[str, Any]) -> bool:
    """Recorded as certified (or trainee) but expired today because its due date passed."""
    return shown_status(cert) == CertStatus.EXPIRED.value and cert["status"] != "expired"


def tasks_of(people: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every task some person holds a certification for, sorted (the task filter)."""
    return sorted({str(c["task"]) for p in people for c in p["certifications"]})


def matches(cert: Mapping[str, Any], task: str, status: str) -> bool:
    return (not task or cert["task"] == task) and (not status or shown_status(cert) == status)


def filtered(people: Sequence[dict[str, Any]], task: str, status: str) -> list[dict[str, Any]]:
    """The people to list: with a filter, those holding a matching certification, each with
    only the matching ones (``shown``); without, everyone with all of theirs."""
    out: list[dict[str, Any]] = []
    for person in people:
        shown = [c for c in person["certifications"] if matches(c, task, status)]
        if (task or status) and not shown:
            continue
        out.append({**person, "shown": shown})
    return out


def names_of(people: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """person ID -> name (a trainee's supervisor is shown by name)."""
    return {str(p["person"]): str(p["name"]) for p in people}
