"""Who may open which route: the one table every page and API route is checked against.

Deny by default: a route whose path template is not in ``ROUTE_ROLES`` makes ``create_app``
refuse to start (``auth.install`` checks every route of the app), and the guard refuses it
anyway. A new page or API route adds its line here in the same change.

``PUBLIC``: no session needed. ``SIGNED_IN``: any signed-in person, whatever their roles.
A set of roles: a signed-in person holding at least one of them (one table for every method
of a path: a form's GET and its POST share the line).

The table, by who may open:

- public: ``/api/health``, ``/signin`` (GET, POST), ``/static/*``;
- signed in (any roles): ``/signout``, ``/docs``, ``/openapi.json``, ``/api/summary``,
  ``/api/instruments``;
- operator, verifier, supervisor, quality_manager (``RESULT_READERS``): ``/``, ``/results``,
  ``/results/{result_id}``, ``/orders``, ``/outbox``, ``/quarantine``,
  ``/quarantine/{quarantine_id}``, ``/deviations`` and the same under ``/api``;
- verifier, supervisor, quality_manager (``RAW_READERS``): ``/quarantine/{quarantine_id}/raw``,
  ``/api/quarantine/{quarantine_id}/raw``;
- quality_manager, admin (``ACCESS_LOG_READERS``): ``/access-log``, ``/access-log/patient``
  (GET, POST);
- ``RESULT_READERS`` also: ``/my-work``, ``/held``, ``/verify``, ``/cosign`` (a queue shows
  every row, and says why the viewer may not act on one), ``/entry`` (GET, POST: who may type
  a result in, ``gateway.manual.ENTRY_ROLES``);
- the signed actions (POST ``/results/{result_id}/<action>``): the roles that may take that
  action on some hold (``action_roles``: release and correct verifier, supervisor,
  quality_manager; override supervisor, quality_manager; verify and reject verifier; cosign
  supervisor). The action itself checks the hold, the certification and the performer;
- pages-people: verifier, supervisor, quality_manager, admin (``PEOPLE_READERS``):
  ``/people`` (operators and certifications), ``/recert`` (the due list); any signed-in
  person: ``/people/{person}``, but one without a ``PEOPLE_READERS`` role sees only their
  own (the handler refuses another's), ``/my-certifications`` (to one's own page) and
  ``/recert/sign`` (GET, POST: one signs only one's own recertification);
  quality_manager, admin (``COMPETENCE_EDITORS``): ``/people/import`` (GET, POST: upload and
  preview), ``/people/import/apply`` (signed), ``/people/export.csv``.
- the deviation register: ``RESULT_READERS`` ``/deviations/new`` (GET, POST),
  ``/deviations/{deviation_id}`` and its ``immediate-action`` and ``comment`` forms;
  supervisor, quality_manager (``DEVIATION_HANDLERS``) its ``handling``, ``start`` and
  ``close`` (signed) forms and ``/deviations/export.csv``, ``.xlsx``; quality_manager its
  ``reopen`` form.

- issue 11, the QC pages: ``RESULT_READERS`` and admin (``QC_READERS``): ``/qc``,
  ``/api/qc/status``, ``/qc/lockouts/{lockout_id}``, ``/qc/lots``, ``/qc/lots/{lot_id}``;
  supervisor, quality_manager (``QC_SIGNERS``): ``/qc/lots/new`` (GET, POST, signed),
  ``/qc/lots/{lot_id}/edit``, ``/qc/lots/{lot_id}/target`` (signed),
  ``/qc/lockouts/{lockout_id}/corrective-action`` and ``.../release`` (signed);
  ``ENTRY_ROLES``: ``/qc/entry`` (GET, POST; a QC certification when ``enforce``).

Why: the pages that show patients' results (the dashboard lists the newest) are for the people
who produce, check and answer for them. Counts and instrument states carry no patient data:
any signed-in person (an admin watching the gateway) may read them. The raw bytes of a
quarantined message hold names and full national IDs: only the experienced roles that
troubleshoot a message see them (every look is logged). ``admin`` manages users and sees the
access log with the quality manager, but reads no patient results (least privilege, Normen).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from gateway.deviations.workflow import HANDLERS, REOPENERS
from gateway.manual import ENTRY_ROLES
from gateway.people.roles import HOLD_ACTIONS, HoldAction, Role
from gateway.qc.eqa import EQA_ENTRY, EQA_MANAGERS


class Open(enum.Enum):
    """A route open without a role: to everyone, or to anyone signed in."""

    PUBLIC = "public"
    SIGNED_IN = "signed_in"


PUBLIC: Final = Open.PUBLIC
SIGNED_IN: Final = Open.SIGNED_IN

Rule = Open | frozenset[Role]

#: the people who produce, check and answer for results
RESULT_READERS: Final = frozenset(
    {Role.OPERATOR, Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER}
)
#: raw bytes as received (names, full national IDs): the experienced roles only
RAW_READERS: Final = frozenset({Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER})
#: who looked at which patient's results (Normen)
ACCESS_LOG_READERS: Final = frozenset({Role.QUALITY_MANAGER, Role.ADMIN})
#: pages-people: who reads everyone's certifications (staff data)
PEOPLE_READERS: Final = frozenset(
    {Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER, Role.ADMIN}
)
#: issue 11: the QC pages hold no patient data (held results by id and state only): the
#: result readers and admin, who watches the instruments
QC_READERS: Final = RESULT_READERS | {Role.ADMIN}
#: who registers and changes control lots and targets, and signs a lockout's corrective
#: action and the release of its held results
QC_SIGNERS: Final = frozenset({Role.SUPERVISOR, Role.QUALITY_MANAGER})
#: pages-people: who imports the competence records (and exports them)
COMPETENCE_EDITORS: Final = frozenset({Role.QUALITY_MANAGER, Role.ADMIN})
#: the deviation register: who handles a deviation (cause, corrective action, status, export)
DEVIATION_HANDLERS: Final = HANDLERS
#: who reopens a closed deviation
DEVIATION_REOPENERS: Final = REOPENERS


def action_roles(action: HoldAction) -> frozenset[Role]:
    """Every role that may take ``action`` on some hold (``roles.HOLD_ACTIONS``): the roles
    that may post that action's form at all (the action checks the hold, the certification
    and "not the performer" itself)."""
    return frozenset(
        role
        for rules in HOLD_ACTIONS.values()
        for rule in rules
        if rule.action is action
        for role in rule.roles
    )


#: the static files' mount: not a route with dependencies, so public by nature
STATIC: Final = "/static"

ROUTE_ROLES: Final[Mapping[str, Rule]] = {
    # public
    "/api/health": PUBLIC,
    "/signin": PUBLIC,
    STATIC: PUBLIC,
    # any signed-in person
    "/signout": SIGNED_IN,
    "/docs": SIGNED_IN,
    "/openapi.json": SIGNED_IN,
    "/api/summary": SIGNED_IN,
    "/api/instruments": SIGNED_IN,
    # patients' results and what carries them
    "/": RESULT_READERS,
    "/results": RESULT_READERS,
    "/results/{result_id}": RESULT_READERS,
    "/orders": RESULT_READERS,
    "/outbox": RESULT_READERS,
    "/quarantine": RESULT_READERS,
    "/quarantine/{quarantine_id}": RESULT_READERS,
    "/deviations": RESULT_READERS,
    "/api/results": RESULT_READERS,
    "/api/results/{result_id}": RESULT_READERS,
    "/api/orders": RESULT_READERS,
    "/api/outbox": RESULT_READERS,
    "/api/quarantine": RESULT_READERS,
    "/api/quarantine/{quarantine_id}": RESULT_READERS,
    "/api/deviations": RESULT_READERS,
    # the bytes as received
    "/quarantine/{quarantine_id}/raw": RAW_READERS,
    "/api/quarantine/{quarantine_id}/raw": RAW_READERS,
    # the access log
    "/access-log": ACCESS_LOG_READERS,
    "/access-log/patient": ACCESS_LOG_READERS,
    # issue 10: pages-work (the queues, held results and their signed actions, manual entry)
    "/my-work": RESULT_READERS,
    "/held": RESULT_READERS,
    "/verify": RESULT_READERS,
    "/cosign": RESULT_READERS,
    "/entry": ENTRY_ROLES,
    "/results/{result_id}/release": action_roles(HoldAction.RELEASE),
    "/results/{result_id}/correct": action_roles(HoldAction.CORRECT),
    "/results/{result_id}/override": action_roles(HoldAction.OVERRIDE),
    "/results/{result_id}/verify": action_roles(HoldAction.VERIFY),
    "/results/{result_id}/reject": action_roles(HoldAction.REJECT),
    "/results/{result_id}/cosign": action_roles(HoldAction.COSIGN),
    # pages-people
    "/people": PEOPLE_READERS,
    "/people/{person}": SIGNED_IN,
    "/my-certifications": SIGNED_IN,
    "/recert": PEOPLE_READERS,
    "/recert/sign": SIGNED_IN,
    "/people/import": COMPETENCE_EDITORS,
    "/people/import/apply": COMPETENCE_EDITORS,
    "/people/export.csv": COMPETENCE_EDITORS,
    # issue 11: the QC pages (gateway.web.routes.qc says why these roles)
    "/qc": QC_READERS,
    "/api/qc/status": QC_READERS,
    "/qc/lockouts/{lockout_id}": QC_READERS,
    "/qc/lockouts/{lockout_id}/corrective-action": QC_SIGNERS,
    "/qc/lockouts/{lockout_id}/release": QC_SIGNERS,
    "/qc/lots": QC_READERS,
    "/qc/lots/new": QC_SIGNERS,
    "/qc/lots/{lot_id}": QC_READERS,
    "/qc/lots/{lot_id}/edit": QC_SIGNERS,
    "/qc/lots/{lot_id}/target": QC_SIGNERS,
    "/qc/entry": ENTRY_ROLES,
    # issue 11: charts (the Levey-Jennings charts, comments on points, the monthly report)
    "/qc/chart": RESULT_READERS,
    "/qc/chart.svg": RESULT_READERS,
    "/qc/points/{qc_result_id}/comment": RESULT_READERS,
    "/qc/report": RESULT_READERS,
    "/qc/report.pdf": RESULT_READERS,
    # issue 11: EQA (EKV) and split samples; reading is for everyone who works with results,
    # registering and assessing for quality managers and supervisors, values, the signed
    # answer and split samples for verifiers, supervisors and quality managers
    "/eqa": RESULT_READERS,
    "/eqa/register": EQA_MANAGERS,
    "/eqa/split": RESULT_READERS,
    "/eqa/split/record": EQA_ENTRY,
    "/eqa/{round_id}": RESULT_READERS,
    "/eqa/{round_id}/samples": EQA_MANAGERS,
    "/eqa/{round_id}/value": EQA_ENTRY,
    "/eqa/{round_id}/answered": EQA_ENTRY,
    "/eqa/{round_id}/assess": EQA_MANAGERS,
    "/eqa/{round_id}/answer": RESULT_READERS,
    "/eqa/{round_id}/answer.csv": RESULT_READERS,
    # the Noklus-style QC and EQA exports (no patient data)
    "/qc/export": RESULT_READERS,
    # issue 11: the deviation register (gateway.deviations.workflow): anyone who works with
    # results reports, adds an immediate action or a comment; supervisor and quality manager
    # handle, move, close (signed) and export for the practice meeting; reopening: the
    # quality manager
    "/deviations/new": RESULT_READERS,
    "/deviations/{deviation_id}": RESULT_READERS,
    "/deviations/{deviation_id}/immediate-action": RESULT_READERS,
    "/deviations/{deviation_id}/comment": RESULT_READERS,
    "/deviations/{deviation_id}/handling": DEVIATION_HANDLERS,
    "/deviations/{deviation_id}/start": DEVIATION_HANDLERS,
    "/deviations/{deviation_id}/close": DEVIATION_HANDLERS,
    "/deviations/{deviation_id}/reopen": DEVIATION_REOPENERS,
    "/deviations/export.csv": DEVIATION_HANDLERS,
    "/deviations/export.xlsx": DEVIATION_HANDLERS,
}


def rule_for(path_template: str) -> Rule | None:
    """The rule of a route (its path template, ``/results/{result_id}``); None: not listed."""
    return ROUTE_ROLES.get(path_template)


def permits(rule: Rule | None, *, authenticated: bool, roles: Iterable[Role]) -> bool:
    """Whether a viewer (signed in or not, with ``roles``) may open a route with ``rule``."""
    if rule is None:
        return False  # deny by default
    if rule is PUBLIC:
        return True
    if not authenticated:
        return False
    if rule is SIGNED_IN:
        return True
    assert isinstance(rule, frozenset)
    return not rule.isdisjoint(roles)


def unlisted(templates: Iterable[str]) -> list[str]:
    """The route templates the table does not name."""
    return sorted(t for t in set(templates) if t not in ROUTE_ROLES)


def stale(templates: Iterable[str]) -> list[str]:
    """Table lines no route has (a removed page): kept out so the table stays the truth."""
    present = set(templates)
    return sorted(t for t in ROUTE_ROLES if t not in present)
