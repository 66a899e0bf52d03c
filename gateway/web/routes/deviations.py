"""The deviation register (avvik): the filtered list with counts per state, reporting one by
hand, one deviation with its history and the forms for what is done about it, and the export
for the practice meeting and the annual quality review (CSV and XLSX).

Who may do what is ``gateway.deviations.workflow`` (the store checks it again with the
person's roles): anyone who works with results reports, adds an immediate action or a
comment; the supervisor or the quality manager record cause and corrective action and move
the status; closing is an electronic signature (the password again); only the quality
manager reopens. Each form posts to its own path, so the route table says who may post it.
Done: 303 back to the deviation's page, which shows the sentence once. Refused: the page
again with the form as typed (never the password) and why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from gateway.deviations import export
from gateway.deviations.categories import RESPONSIBLE, Category
from gateway.deviations.workflow import (
    HANDLERS,
    MAX_SUMMARY,
    MAX_TEXT,
    REPORTERS,
    DevState,
    Refusal,
    edits_for,
    move_name,
    moves_for,
)
from gateway.privacy import scrub_deviation, scrub_deviations
from gateway.store import deviations as register
from gateway.store.deviations import Filters, Outcome
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.flash import flash_of
from gateway.web.forms import form_fields
from gateway.web.routes.params import PAGE_LIMIT, is_row_id
from gateway.web.signature import PASSWORD_FIELD, confirm_signature, refusal_text

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

CATEGORIES: Final = tuple(c.value for c in Category)
STATES: Final = tuple(s.value for s in DevState)
#: each form's fields besides the CSRF token and the password
FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "new": ("category", "summary", "detail", "immediate_action", "instrument", "result_id"),
    "immediate-action": ("immediate_action",),
    "comment": ("comment",),
    "handling": ("cause", "corrective_action", "no_action", "category"),
    "start": (),
    "close": ("note",),
    "reopen": ("reason",),
}


@dataclass(frozen=True, slots=True)
class Form:
    """A form shown again: which, what was typed, why it was not done."""

    name: str
    values: Mapping[str, str] = field(default_factory=dict)
    error: str = ""


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _today(web: WebContext) -> date:
    return web.now().astimezone(web.zone).date()


# --- the list --------------------------------------------------------------------------------


@router.get("/deviations", response_class=HTMLResponse)
async def deviations_page(
    request: Request,
    web: Web,
    viewer: Annotated[Viewer, Authenticated],
    state: Annotated[str, Query(max_length=16)] = "",
    category: Annotated[str, Query(max_length=16)] = "",
    instrument: Annotated[str, Query(max_length=64)] = "",
    kind: Annotated[str, Query(max_length=64)] = "",
    from_: Annotated[str, Query(alias="from", max_length=10)] = "",
    to: Annotated[str, Query(max_length=10)] = "",
) -> HTMLResponse:
    first, last = _day(from_), _day(to)
    bad_period = (bool(from_) and first is None) or (bool(to) and last is None)
    since = until = None
    if first is not None or last is not None:
        since, until = export.Period(first or date(2000, 1, 1), last or _today(web)).bounds(
            web.zone
        )
    filters = Filters(
        state=state if state in STATES else "",
        category=category if category in CATEGORIES else "",
        instrument=instrument,
        kind=kind,
        since=since,
        until=until,
    )

    def reads(conn: Connection) -> dict[str, Any]:
        return {
            "rows": scrub_deviations(register.list_deviations(conn, filters, limit=PAGE_LIMIT)),
            "counts": register.count_by_state(conn, filters),
            "instrument_choices": register.instruments(conn),
        }

    data = await web.query(reads)
    return web.page(
        request,
        "deviations.html",
        {
            **data,
            "states": STATES,
            "categories": CATEGORIES,
            "filters": {
                "state": filters.state,
                "category": filters.category,
                "instrument": instrument,
                "kind": kind,
                "from": from_,
                "to": to,
            },
            "bad_period": bad_period,
            "may_report": viewer.has(*REPORTERS),
            "may_export": viewer.has(*HANDLERS),
            "year": _today(web).year,
        },
    )


# --- reporting by hand -----------------------------------------------------------------------


def _new_page(
    request: Request, web: WebContext, form: Form | None = None, status_code: int = 200
) -> HTMLResponse:
    return web.page(
        request,
        "deviation_new.html",
        {
            "form": form or Form("new", {"category": Category.QUALITY.value}),
            "categories": CATEGORIES,
            "responsible": {c.value: f for c, f in RESPONSIBLE.items()},
            "instruments": [i.id for i in web.config.instruments],
            "max_summary": MAX_SUMMARY,
            "max_text": MAX_TEXT,
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/deviations/new", response_class=HTMLResponse)
async def new_form(request: Request, web: Web) -> HTMLResponse:
    return _new_page(request, web)


@router.post("/deviations/new", response_class=HTMLResponse)
async def new_report(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> Response:
    values = await _values(request, "new")
    result_id = values["result_id"].strip()
    if result_id and not (result_id.isdigit() and is_row_id(int(result_id))):
        error = web.translator(request).t("deviation.refused.bad_result_id")
        return _new_page(request, web, Form("new", values, error), 422)
    job = functools.partial(
        register.report,
        person=viewer.person,
        category=values["category"],
        summary=values["summary"],
        detail=values["detail"],
        immediate_action=values["immediate_action"],
        instrument_id=values["instrument"],
        result_id=int(result_id) if result_id else None,
        actor=viewer.actor,
    )
    outcome: Outcome = await web.write(job)
    if not outcome.done:
        error = outcome.message(web.language(request))
        return _new_page(request, web, Form("new", values, error), 422)
    return _done(request, viewer, outcome)


# --- the export ------------------------------------------------------------------------------


async def _export(request: Request, web: WebContext, extension: str) -> Response:
    query = request.query_params
    try:
        period = export.period_of(
            query.get("from", "")[:10],
            query.get("to", "")[:10],
            query.get("year", "")[:4],
            today=_today(web),
        )
    except export.PeriodError as exc:
        tr = web.translator(request)
        return web.error_page(request, 422, tr.t("deviation.export.bad_period"), str(exc))
    since, until = period.bounds(web.zone)
    rows = scrub_deviations(await web.query(lambda conn: register.export_rows(conn, since, until)))
    if extension == "csv":
        body, media = export.to_csv(rows, web.zone), "text/csv; charset=utf-8"
    else:
        body = export.to_xlsx(rows, web.zone, period=period, site=web.config.site.name)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    name = export.filename(period, extension)
    return Response(
        body,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/deviations/export.csv")
async def export_csv(request: Request, web: Web) -> Response:
    """The deviations of a period (``from``/``to``, days) or a year (``year``) as CSV."""
    return await _export(request, web, "csv")


@router.get("/deviations/export.xlsx")
async def export_xlsx(request: Request, web: Web) -> Response:
    """The same as XLSX, with counts per category, kind and state on a second sheet."""
    return await _export(request, web, "xlsx")


# --- one deviation ---------------------------------------------------------------------------


async def _show(
    request: Request,
    web: WebContext,
    viewer: Viewer,
    deviation_id: int,
    *,
    form: Form | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    found = (
        await web.query(lambda conn: register.get_deviation(conn, deviation_id))
        if is_row_id(deviation_id)
        else None
    )
    tr = web.translator(request)
    if found is None:
        return web.error_page(request, 404, tr.t("deviation.not_found", id=deviation_id))
    deviation = scrub_deviation(found)
    state = DevState(deviation["state"])
    flash = flash_of(request).take(viewer.session_id, request.url.path)
    return web.page(
        request,
        "deviation.html",
        {
            "d": deviation,
            "edits": [e.value for e in edits_for(state, viewer.roles)],
            "moves": [move_name(state, to) for to in moves_for(state, viewer.roles)],
            "categories": CATEGORIES,
            "responsible": {c.value: f for c, f in RESPONSIBLE.items()},
            "form": form,
            "flash": flash(tr.lang) if flash else "",
            "max_text": MAX_TEXT,
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/deviations/{deviation_id}", response_class=HTMLResponse)
async def deviation_page(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], deviation_id: int
) -> HTMLResponse:
    return await _show(request, web, viewer, deviation_id)


async def _values(request: Request, name: str) -> dict[str, str]:
    fields = await form_fields(request)
    return {key: fields.get(key, "")[: MAX_TEXT + 1] for key in FIELDS[name]}


def _done(request: Request, viewer: Viewer, outcome: Outcome) -> Response:
    path = f"/deviations/{outcome.deviation_id}"
    flash_of(request).put(viewer.session_id, path, outcome.message)
    return RedirectResponse(path, status_code=303)


def _status_of(outcome: Outcome) -> int:
    if outcome.refusal is Refusal.NO_SUCH_DEVIATION:
        return 404
    return 422 if outcome.bad_input else 409


#: a store command of one deviation: ``register.add_comment`` and the like, called with the
#: transaction, ``deviation_id``, ``person``, ``actor`` and the form's own keywords
Command = Callable[..., Outcome]
#: the form's own keywords for the command, from what was typed
Arguments = Callable[[dict[str, str]], dict[str, object]]


async def _post(
    request: Request,
    web: WebContext,
    viewer: Viewer,
    deviation_id: int,
    name: str,
    command: Command,
    arguments: Arguments,
    *,
    signed: bool = False,
) -> Response:
    """Read form ``name``, check the signature when ``signed``, run the store command, answer."""
    if not is_row_id(deviation_id):
        return await _show(request, web, viewer, deviation_id)
    values = await _values(request, name)
    if signed:
        fields = await form_fields(request)
        attempt = await confirm_signature(web, viewer, fields.get(PASSWORD_FIELD, ""))
        if not attempt.ok:
            form = Form(name, values, refusal_text(web, request, attempt))
            return await _show(request, web, viewer, deviation_id, form=form, status_code=422)
    job = functools.partial(
        command,
        deviation_id=deviation_id,
        person=viewer.person,
        actor=viewer.actor,
        **arguments(values),
    )
    outcome: Outcome = await web.write(job)
    if outcome.done:
        return _done(request, viewer, outcome)
    form = Form(name, values, outcome.message(web.language(request)))
    return await _show(
        request, web, viewer, deviation_id, form=form, status_code=_status_of(outcome)
    )


@router.post("/deviations/{deviation_id}/immediate-action", response_class=HTMLResponse)
async def immediate_action(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], deviation_id: int
) -> Response:
    return await _post(
        request, web, viewer, deviation_id, "immediate-action",
        register.set_immediate_action, lambda v: {"value": v["immediate_action"]},
    )  # fmt: skip


@router.post("/deviations/{deviation_id}/comment", response_class=HTMLResponse)
async def comment(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], deviation_id: int
) -> Response:
    return await _post(
        request, web, viewer, deviation_id, "comment",
        register.add_comment, lambda v: {"value": v["comment"]},
    )  # fmt: skip


def _handling(v: dict[str, str]) -> dict[str, object]:
    return {
        "cause": v["cause"],
        "corrective_action": v["corrective_action"],
        "corrective_action_needed": v["no_action"] != "1",
        "category": v["category"] or None,
    }


@router.post("/deviations/{deviation_id}/handling", response_class=HTMLResponse)
async def handling(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], deviation_id: int
) -> Response:
    return await _post(
        request, web, viewer, deviation_id, "handling", register.record_handling, _handling
    )


@router.post("/deviations/{deviation_id}/start", response_class=HTMLResponse)
async def start(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], deviation_id: int
) -> Response:
    return await _post(
        request, web, viewer, deviation_id, "start",
        register.move, lambda v: {"to": DevState.IN_PROGRESS},
    )  # fmt: skip


@router.post("/deviations/{deviation_id}/close", response_class=HTMLResponse)
async def close(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], deviation_id: int
) -> Response:
    return await _post(
        request, web, viewer, deviation_id, "close",
        register.close_signed, lambda v: {"note": v["note"]}, signed=True,
    )  # fmt: skip


@router.post("/deviations/{deviation_id}/reopen", response_class=HTMLResponse)
async def reopen(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], deviation_id: int
) -> Response:
    return await _post(
        request, web, viewer, deviation_id, "reopen",
        register.move, lambda v: {"to": DevState.IN_PROGRESS, "reason": v["reason"]},
    )  # fmt: skip
