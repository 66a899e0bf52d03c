"""What waits for people: my work, the verification queue, the co-sign queue, held results.

Each page lists rows from ``gateway.store.queues`` for the signed-in viewer: whether they may
act on a row (and, in plain words, why not: their own result, not certified, not their role),
with a link to the result's page where the action's form is. Patient IDs are masked; every
result shown is in the access log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.catalogue import text
from gateway.model import HoldReason
from gateway.people.permissions import action_rule
from gateway.people.roles import HoldAction
from gateway.store.facts import load_facts
from gateway.store.queues import (
    CosignItem,
    HeldItem,
    MyWork,
    VerificationItem,
    cosign_queue,
    held_results,
    my_work,
    verification_queue,
)
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web
from gateway.web.i18n import day_text
from gateway.web.shown import log_results_shown

T = TypeVar("T", HeldItem, VerificationItem, CosignItem)

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

#: the actions my work lists in their own queues (verify and reject one reading; co-sign)
QUEUED_ACTIONS: Final = frozenset(
    {HoldAction.VERIFY.value, HoldAction.REJECT.value, HoldAction.COSIGN.value}
)


def roles_needed(lang: str, reason: str, action: HoldAction) -> str:
    """The roles that may take ``action`` on a hold of ``reason``, as words."""
    rule = action_rule(reason, action)
    return ", ".join(sorted(text(lang, f"role.{r.value}") for r in rule.roles)) if rule else ""


async def _shown_queue(
    request: Request, web: Web, viewer: Viewer, queue: Callable[..., list[T]]
) -> list[T]:
    """A queue's rows for ``viewer`` now (``gateway.store.queues``), logged as shown."""
    context, now = web.rules, web.now()
    items = await web.query(lambda conn: queue(conn, viewer.person, context, now))
    await log_results_shown(request, web, [i.result.id for i in items])
    return items


@router.get("/my-work", response_class=HTMLResponse)
async def my_work_page(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    context, now = web.rules, web.now()

    def reads(conn: Connection) -> tuple[MyWork, list[HeldItem]]:
        facts = load_facts(conn)
        work = my_work(
            conn,
            viewer.person,
            context,
            now,
            reminder_days=web.config.people.reminder_days,
            facts=facts,
        )
        listed = {i.result.id for i in work.verify} | {i.result.id for i in work.cosign}
        listed |= {i.result.id for i in work.my_held}
        # the other holds this person may end (a correction, a release, an override)
        others = [
            item
            for item in held_results(conn, viewer.person, context, now, facts=facts)
            if item.result.id not in listed and set(item.actions) - QUEUED_ACTIONS
        ]
        return work, others

    work, others = await web.query(reads)
    ids = [
        *(i.result.id for i in work.verify),
        *(i.result.id for i in work.cosign),
        *(i.result.id for i in work.my_held),
        *(i.result.id for i in others),
    ]
    await log_results_shown(request, web, ids)
    lang = web.language(request)
    return web.page(
        request,
        "my_work.html",
        {
            "work": work,
            "others": others,
            "nothing": not (ids or work.certifications_due),
            "day": lambda d: day_text(lang, d),
        },
    )


@router.get("/held", response_class=HTMLResponse)
async def held_page(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    items: list[HeldItem] = await _shown_queue(request, web, viewer, held_results)
    return web.page(request, "held.html", {"items": items})


@router.get("/verify", response_class=HTMLResponse)
async def verification_page(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    items: list[VerificationItem] = await _shown_queue(request, web, viewer, verification_queue)
    lang = web.language(request)
    return web.page(
        request,
        "verify.html",
        {
            "items": items,
            "mine": sum(1 for i in items if i.may_verify),
            "roles_needed": roles_needed(lang, HoldReason.AWAITING_VERIFICATION, HoldAction.VERIFY),
        },
    )


@router.get("/cosign", response_class=HTMLResponse)
async def cosign_page(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    items: list[CosignItem] = await _shown_queue(request, web, viewer, cosign_queue)
    lang = web.language(request)
    data: dict[str, Any] = {
        "items": items,
        "mine": sum(1 for i in items if i.may_cosign),
        "roles_needed": roles_needed(lang, HoldReason.AWAITING_COSIGN, HoldAction.COSIGN),
    }
    return web.page(request, "cosign.html", data)
