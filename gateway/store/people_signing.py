"""The people pages' signed store jobs: a recertification and a competence import, each with
its electronic signature row (``signatures``) in the same transaction as what it signs.

The password is checked before either job runs (``gateway.web.signature``); the row records
who signed, the meaning (``recertify``, ``import``), the time and what was signed. A
competence import applies only the plan the signer saw: the job plans again inside its own
transaction and refuses (``PlanChanged``, nothing written) when the store has moved on since
the preview, so a signature never covers changes nobody was shown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gateway.people.competence import CompetenceFile
from gateway.store.competence import ImportPlan, apply_import, plan_import
from gateway.store.recertification import Outcome, Recertified, recertify
from gateway.store.signatures import add_signature
from gateway.store.writer import Tx

#: the ``signatures.meaning`` of each job (the column holds 16 characters)
RECERTIFY = "recertify"
IMPORT = "import"


@dataclass(frozen=True, slots=True)
class SignedRecertification:
    done: Recertified
    signature_id: int


@dataclass(frozen=True, slots=True)
class SignedImport:
    plan: ImportPlan
    signature_id: int | None


class PlanChanged(Exception):
    """The store changed between the preview and the apply: ``plan`` is what it would do now."""

    def __init__(self, plan: ImportPlan) -> None:
        super().__init__("the import plan changed since the preview")
        self.plan = plan


def plan_digest(plan: ImportPlan) -> str:
    """A fingerprint of everything a plan would do (the preview's, compared at apply)."""
    data = json.dumps(plan.as_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def sign_recertification(
    tx: Tx,
    person: str,
    task: str,
    outcome: Outcome | str,
    note: str = "",
    *,
    actor: str,
    interval_days: int,
    zone: ZoneInfo,
) -> SignedRecertification:
    """``person`` recertifies themself for ``task`` (``recertify``: ``RecertifyRefused``
    writes nothing) and signs it."""
    done = recertify(
        tx, person, task, outcome, note, actor=actor, interval_days=interval_days, zone=zone
    )
    signature_id = add_signature(
        tx,
        person=person,
        meaning=RECERTIFY,
        result_id=None,
        comment=note.strip(),
        detail={
            "task": done.task,
            "outcome": done.outcome.value,
            "recertification": done.recertification_id,
            "recert_due_before": done.due_before.isoformat() if done.due_before else "",
            "recert_due": done.due.isoformat() if done.due else "",
            "deviation": done.deviation_id,
        },
    )
    return SignedRecertification(done, signature_id)


def sign_import(
    tx: Tx,
    parsed: CompetenceFile,
    *,
    person: str,
    actor: str,
    source: str,
    sha256: str,
    expected_plan: str,
) -> SignedImport:
    """Apply ``parsed`` if the store would still do exactly the previewed plan
    (``expected_plan``, a ``plan_digest``), else ``PlanChanged``; signed when it changed
    something (an import that changes nothing signs nothing)."""
    now_plan = plan_import(tx.conn, parsed)
    if plan_digest(now_plan) != expected_plan:
        raise PlanChanged(now_plan)
    plan = apply_import(tx, parsed, actor=actor, source=source)
    if not plan.changes:
        return SignedImport(plan, None)
    counts = plan.counts()
    signature_id = add_signature(
        tx,
        person=person,
        meaning=IMPORT,
        result_id=None,
        detail={
            "file": source,
            "sha256": sha256,
            "people": counts["people"],
            "certifications": counts["certifications"],
        },
    )
    return SignedImport(plan, signature_id)
