"""Recertification: the due list (overdue, due soon, inactivity warnings: DOMAIN rules 10 and
11) and the signing page, where the operator themself, signed in, signs that they reviewed
the task's procedure, or that something is unclear (the nearest manager is notified through
a deviation and an MQTT event: ``gateway.store.recertification``).

Signing is one's own only: the person is the session's, and a form naming anyone else is
refused before anything is checked or written. The password is asked again (the electronic
signature) and the ``signatures`` row is written with the recertification in one transaction.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.store.people_signing import sign_recertification
from gateway.store.person_record import person_record
from gateway.store.recertification import Outcome, RecertifyRefused
from gateway.store.reminders import due_list
from gateway.web import people_view
from gateway.web.auth import Authenticated, Refused, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.forms import form_fields
from gateway.web.routes.people import day_helper, today_of
from gateway.web.signature import PASSWORD_FIELD, confirm_signature, refusal_text

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

NOTE_CHARS: Final = 2000
KINDS: Final = ("overdue", "reminder", "inactive")


@router.get("/recert", response_class=HTMLResponse)
async def due_page(request: Request, web: Web) -> HTMLResponse:
    today = today_of(web, web.now())
    rows = await web.query(lambda conn: due_list(conn, today, web.config))
    return web.page(
        request,
        "recert.html",
        {
            "groups": [(kind, [r for r in rows if r["kind"] == kind]) for kind in KINDS],
            "total": len(rows),
            "today": today,
            "reminder_days": web.config.people.reminder_days,
            "inactivity_days": web.config.people.inactivity_days,
            "day": day_helper(web, request),
        },
        refresh=False,
    )


async def _own_record(web: WebContext, viewer: Viewer) -> dict[str, Any] | None:
    now = web.now()

    def reads(conn: Connection) -> dict[str, Any] | None:
        return person_record(conn, viewer.person, now, web.zone, web.config)

    return await web.query(reads)


def _sign_form(
    request: Request,
    web: WebContext,
    record: dict[str, Any] | None,
    task: str,
    *,
    outcome: str = "",
    note: str = "",
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    certs = record["certifications"] if record else []
    cert = next((c for c in certs if c["task"] == task), None) if task else None
    if cert is not None and not cert["may_recertify"]:
        # a trainee is certified by the supervisor; a suspension is lifted by the records
        error = error or web.translator(request).t(f"recert.refused.{cert['status']}", task=task)
        cert, task = None, ""
    return web.page(
        request,
        "recert_sign.html",
        {
            "certs": [c for c in certs if c["may_recertify"]],
            "cert": cert,
            "task": task,
            "outcome": outcome,
            "note": note,
            "error": error,
            "done": None,
            "day": day_helper(web, request),
            "shown_status": people_view.shown_status,
            "lapsed": people_view.lapsed,
            "interval_days": web.config.people.recert_interval_days,
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/recert/sign", response_class=HTMLResponse)
async def sign_form(
    request: Request,
    web: Web,
    viewer: Annotated[Viewer, Authenticated],
    task: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    """The signing form for one of the viewer's own certifications (``task``); without a
    task, the list of those they may recertify."""
    record = await _own_record(web, viewer)
    return _sign_form(request, web, record, task.strip())


@router.post("/recert/sign", response_class=HTMLResponse)
async def sign(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    fields = await form_fields(request)
    named = fields.get("person", viewer.person).strip()
    if named != viewer.person:
        raise Refused("role")  # one signs one's own recertification only
    tr = web.translator(request)
    task = fields.get("task", "").strip()[:128]
    outcome = fields.get("outcome", "")
    note = fields.get("note", "").strip()[:NOTE_CHARS]
    record = await _own_record(web, viewer)

    def again(error: str, status_code: int = 422) -> HTMLResponse:
        return _sign_form(
            request,
            web,
            record,
            task,
            outcome=outcome,
            note=note,
            error=error,
            status_code=status_code,
        )

    if not task:
        return again(tr.t("recert.sign.no_task"))
    if outcome not in tuple(Outcome):
        return again(tr.t("recert.sign.choose"))
    if outcome == Outcome.UNCLEAR and not note:
        return again(tr.t("recert.sign.note_required"))
    attempt = await confirm_signature(web, viewer, fields.get(PASSWORD_FIELD, ""))
    if not attempt.ok:
        return again(refusal_text(web, request, attempt))
    try:
        signed = await web.write(
            functools.partial(
                sign_recertification,
                person=viewer.person,
                task=task,
                outcome=outcome,
                note=note,
                actor=viewer.actor,
                interval_days=web.config.people.recert_interval_days,
                zone=web.zone,
            )
        )
    except RecertifyRefused as refused:
        return again(tr.t(f"recert.refused.{refused.code}", task=task))
    return web.page(
        request,
        "recert_sign.html",
        {
            "certs": [],
            "cert": None,
            "task": task,
            "outcome": outcome,
            "note": note,
            "error": "",
            "done": signed.done,
            "signature_id": signed.signature_id,
            "day": day_helper(web, request),
            "shown_status": people_view.shown_status,
            "lapsed": people_view.lapsed,
            "interval_days": web.config.people.recert_interval_days,
        },
        refresh=False,
    )
