"""Roles, the actions on holds, and which role each hold reason's action needs.

One person may hold several roles. Deny by default: an action not in ``HOLD_ACTIONS`` for a
reason is not offered, and a role not named for it may not take it. ``admin`` manages users and
settings, not results (least privilege, Normen): it is in no action's roles.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from gateway.model import HoldReason


class Role(enum.StrEnum):
    """What a person may do; stable codes (stored, imported, exported)."""

    OPERATOR = "operator"
    #: an experienced bioingeniør: verifies visual readings and manual entries (DOMAIN rules 4-5)
    VERIFIER = "verifier"
    #: veileder: co-signs a trainee's results (rule 2)
    SUPERVISOR = "supervisor"
    QUALITY_MANAGER = "quality_manager"
    ADMIN = "admin"


ROLES: Final = tuple(Role)


class HoldAction(enum.StrEnum):
    """What a person does to a held result; each is an electronic signature with this meaning."""

    RELEASE = "release"
    CORRECT = "correct"
    OVERRIDE = "override"
    VERIFY = "verify"
    REJECT = "reject"
    COSIGN = "cosign"


@dataclass(frozen=True, slots=True)
class ActionRule:
    """Who may take ``action`` on a hold: any of ``roles``; ``certified``: and certified for
    the result's task; ``other_person``: and not the person who performed it."""

    action: HoldAction
    roles: frozenset[Role]
    certified: bool = False
    other_person: bool = False


def _rule(
    action: HoldAction, *roles: Role, certified: bool = False, other_person: bool = False
) -> ActionRule:
    return ActionRule(action, frozenset(roles), certified, other_person)


_BIOINGENIOR = (Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER)

#: hold reason -> the actions that end it. A reason not here has no action (test data).
HOLD_ACTIONS: Final[Mapping[str, tuple[ActionRule, ...]]] = {
    # an invalid ID is never released unchanged: only a correction ends it
    HoldReason.INVALID_PATIENT_ID: (_rule(HoldAction.CORRECT, *_BIOINGENIOR),),
    HoldReason.MISSING_PATIENT_ID: (
        _rule(HoldAction.CORRECT, *_BIOINGENIOR),
        _rule(HoldAction.RELEASE, Role.SUPERVISOR, Role.QUALITY_MANAGER),
    ),
    HoldReason.UNMAPPED_TEST: (_rule(HoldAction.RELEASE, Role.QUALITY_MANAGER),),
    HoldReason.DUPLICATE: (_rule(HoldAction.RELEASE, *_BIOINGENIOR),),
    HoldReason.LIS_MESSAGE_INVALID: (_rule(HoldAction.RELEASE, Role.QUALITY_MANAGER),),
    HoldReason.UNCERTIFIED_OPERATOR: (
        _rule(HoldAction.OVERRIDE, Role.SUPERVISOR, Role.QUALITY_MANAGER, other_person=True),
    ),
    HoldReason.AWAITING_COSIGN: (
        _rule(HoldAction.COSIGN, Role.SUPERVISOR, certified=True, other_person=True),
    ),
    HoldReason.AWAITING_VERIFICATION: (
        _rule(HoldAction.VERIFY, Role.VERIFIER, certified=True, other_person=True),
        _rule(HoldAction.REJECT, Role.VERIFIER, certified=True, other_person=True),
    ),
    # QC lockout: released (signed) once the lockout is lifted (refused while it is open:
    # gateway.holds.sign_off), or overridden while locked, with a reason and a deviation
    HoldReason.QC_LOCKOUT: (
        _rule(HoldAction.RELEASE, Role.SUPERVISOR, Role.QUALITY_MANAGER),
        _rule(HoldAction.OVERRIDE, Role.SUPERVISOR, Role.QUALITY_MANAGER),
    ),
}


def actions_for(reason: str) -> tuple[ActionRule, ...]:
    """The actions that end a hold with ``reason`` (none for an unknown reason)."""
    return HOLD_ACTIONS.get(reason, ())


def release_role(reason: str) -> str:
    """The role a hold row names as the one who acts on it (shown, exported)."""
    actions = actions_for(reason)
    if not actions:
        return ""
    return _first(actions[0])


def _first(rule: ActionRule) -> str:
    for role in ROLES:  # in the enum's order: the most specific role first
        if role in rule.roles:
            return role.value
    return ""


def parse_roles(text: str | Iterable[str]) -> frozenset[Role]:
    """Roles from ``"operator;verifier"`` or an iterable of codes; ValueError names a bad one."""
    items = text.split(";") if isinstance(text, str) else list(text)
    roles: set[Role] = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            roles.add(Role(item))
        except ValueError:
            known = ", ".join(r.value for r in ROLES)
            raise ValueError(f"unknown role {item!r} (known: {known})") from None
    return frozenset(roles)


def format_roles(roles: Iterable[Role | str]) -> str:
    """Roles as stored and exported: ``;``-separated in the enum's order."""
    wanted = {str(r) for r in roles}
    return ";".join(r.value for r in ROLES if r.value in wanted)
