"""The signed actions on a held result: POST ``/results/{result_id}/<action>`` for release,
correct, override, verify, reject and co-sign (``gateway.holds``).

Each form carries its CSRF token (the guard checks it) and the signer's password: the
electronic signature asks for it again (``gateway.web.signature.confirm_signature``) before
the action runs. The action is one store command with its access-log row (``change``, the
result's patient; after a patient-ID correction both the old and the new), so a signature
is never written without its log row. Done: 303 back to the result's page, which shows the
outcome's sentence once. Refused (a wrong password, a missing note, not this person's to
sign): the page again with the form as typed, never the password, and the refusal's text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from gateway import holds
from gateway.holds import ActionOutcome
from gateway.people.roles import HoldAction
from gateway.rules import RuleContext
from gateway.store import access, queries
from gateway.store.writer import Tx
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.flash import flash_of
from gateway.web.forms import form_fields
from gateway.web.routes.params import is_row_id
from gateway.web.routes.results import ActionForm, show_result
from gateway.web.shown import route_of
from gateway.web.signature import PASSWORD_FIELD, confirm_signature, refusal_text

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

#: each action's form fields besides the CSRF token and the password
FIELDS: Final[Mapping[HoldAction, tuple[str, ...]]] = {
    HoldAction.RELEASE: ("note",),
    HoldAction.CORRECT: ("field", "new_value", "reason"),
    HoldAction.OVERRIDE: ("reason",),
    HoldAction.VERIFY: ("value_read", "comment"),
    HoldAction.REJECT: ("comment",),
    HoldAction.COSIGN: ("comment",),
}
#: the longest text kept from a field (the forms say 2000; the actions check their own limits)
MAX_CHARS: Final = 2000

Job = Callable[[Tx], ActionOutcome]


def action_job(
    action: HoldAction,
    result_id: int,
    person: str,
    values: Mapping[str, str],
    context: RuleContext,
) -> Job:
    """The hold action ``action`` by ``person`` with the form's ``values``, as a store job."""
    if action is HoldAction.RELEASE:
        return lambda tx: holds.release(tx, result_id, person, note=values["note"], context=context)
    if action is HoldAction.CORRECT:
        return lambda tx: holds.correct(
            tx,
            result_id,
            person,
            field=values["field"],
            new_value=values["new_value"],
            reason=values["reason"],
            context=context,
        )
    if action is HoldAction.OVERRIDE:
        return lambda tx: holds.override(
            tx, result_id, person, reason=values["reason"], context=context
        )
    if action is HoldAction.VERIFY:
        return lambda tx: holds.verify(
            tx,
            result_id,
            person,
            context=context,
            value_read=values["value_read"] or None,
            comment=values["comment"],
        )
    if action is HoldAction.REJECT:
        return lambda tx: holds.reject(
            tx, result_id, person, comment=values["comment"], context=context
        )
    return lambda tx: holds.cosign(
        tx, result_id, person, context=context, comment=values["comment"]
    )


def _patient_of(conn: Connection, result_id: int) -> str | None:
    found = queries.get_result(conn, result_id, show_patient=True)
    return None if found is None else str(found["patient_id"])


def logged(job: Job, *, person: str, route: str, result_id: int, action: HoldAction) -> Job:
    """``job`` with its access-log row: who changed which patient's result (Normen)."""

    def run(tx: Tx) -> ActionOutcome:
        before = _patient_of(tx.conn, result_id)
        outcome = job(tx)
        if outcome.done:
            after = _patient_of(tx.conn, result_id)
            for patient in dict.fromkeys(p for p in (before, after) if p is not None):
                access.log_access(
                    tx,
                    person,
                    access.AccessAction.CHANGE,
                    route,
                    result_id,
                    patient,
                    detail=f"{action.value} signed (signature {outcome.signature_id})",
                )
        return outcome

    return run


async def act(
    action: HoldAction, request: Request, web: WebContext, viewer: Viewer, result_id: int
) -> Response:
    """Check the signature, run ``action`` with its access-log row, answer (see the module)."""
    if not is_row_id(result_id):  # no row can have it: not found, and no password asked
        return await show_result(request, web, viewer, result_id)
    fields = await form_fields(request)
    values = {name: fields.get(name, "")[:MAX_CHARS] for name in FIELDS[action]}
    attempt = await confirm_signature(web, viewer, fields.get(PASSWORD_FIELD, ""))
    if not attempt.ok:
        form = ActionForm(action.value, values, refusal_text(web, request, attempt))
        return await show_result(request, web, viewer, result_id, form=form, status_code=422)
    job = logged(
        action_job(action, result_id, viewer.person, values, web.rules),
        person=viewer.person,
        route=route_of(request),
        result_id=result_id,
        action=action,
    )
    outcome = await web.write(job)
    path = f"/results/{result_id}"
    if outcome.done:
        flash_of(request).put(viewer.session_id, path, outcome.message)
        return RedirectResponse(path, status_code=303)
    lang = web.language(request)
    form = ActionForm(action.value, values, outcome.message(lang))
    status = 422 if outcome.bad_input else 404 if outcome.code == "no_such_result" else 409
    return await show_result(request, web, viewer, result_id, form=form, status_code=status)


def _add_route(action: HoldAction) -> None:
    async def handler(
        request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], result_id: int
    ) -> Response:
        return await act(action, request, web, viewer, result_id)

    handler.__name__ = f"{action.value}_result"
    handler.__doc__ = f"Sign {action.value} on a held result (the form on its page)."
    router.add_api_route(
        f"/results/{{result_id}}/{action.value}",
        handler,
        methods=["POST"],
        response_class=HTMLResponse,
    )


for _action in HoldAction:
    _add_route(_action)

__all__ = ["FIELDS", "act", "action_job", "logged", "router"]
