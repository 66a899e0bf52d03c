"""The results pages: the filtered list, and one result with its holds, the signed actions
the viewer may take on them (forms posting to ``routes.actions``), its signatures,
corrections and LIS messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.config import Config
from gateway.model import State
from gateway.privacy import scrub, scrub_result
from gateway.store import queries
from gateway.store.facts import load_facts
from gateway.store.queues import HeldItem, held_results
from gateway.store.signatures import corrections_for, signatures_for
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.flash import flash_of
from gateway.web.routes.params import is_row_id
from gateway.web.shown import ids_of, log_results_shown
from gateway.web.work import SIGNATURE_MEANINGS, duration

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


def _instrument_choices(config: Config, conn: Connection) -> list[str]:
    """The filter's instruments: configured ones first, then any the store knows from before."""
    known = [inst.id for inst in config.instruments]
    return known + sorted(
        str(r["id"]) for r in queries.list_instruments(conn) if r["id"] not in known
    )


@router.get("/results", response_class=HTMLResponse)
async def results_page(
    request: Request,
    web: Web,
    state: Annotated[State | Literal[""], Query()] = "",
    instrument: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HTMLResponse:
    def reads(conn: Connection) -> dict[str, Any]:
        found = queries.list_results(
            conn, state=state or None, instrument=instrument or None, limit=limit
        )
        return {
            "results": [scrub_result(r) for r in found],
            "instrument_choices": _instrument_choices(web.config, conn),
        }

    data = await web.query(reads)
    await log_results_shown(request, web, ids_of(data["results"]))
    return web.page(
        request,
        "results.html",
        {
            **data,
            "states": [s.value for s in State],
            "state": state,
            "instrument": instrument,
            "limit": limit,
            "limits": sorted({25, 100, 500, limit}),
        },
    )


@dataclass(frozen=True, slots=True)
class ActionForm:
    """An action form shown again: the action, what was typed (never the password) and why
    it was not done."""

    action: str
    values: Mapping[str, str] = field(default_factory=dict)
    error: str = ""


def _open_holds(item: HeldItem | None, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The open holds with the forms to show under each (an action ending two holds is
    offered once, under the first) and the refusals of actions the viewer has the role for.

    ``stored``: the result's open holds as the result query renders them (both ordered by
    hold id), whose stored texts serve a hold from before holds had parameters."""
    shown: set[str] = set()
    out = []
    views = item.holds if item is not None else ()
    same = [h["reason"] for h in stored] == [v.reason for v in views]
    for index, view in enumerate(views):
        forms = [a for a in view.actions if a not in shown]
        shown.update(forms)
        card = stored[index] if same else {**asdict(view), "released": False}
        out.append({"card": card, "forms": forms, "refusals": sorted(view.refused.items())})
    return out


def _signatures(rows: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        detail = dict(row["detail"])
        for key in ("value", "value_read", "reason", "note"):
            if isinstance(detail.get(key), str):
                detail[key] = scrub(detail[key])
        interval = detail.get("interval_s")
        out.append(
            {
                **row,
                "comment": scrub(row["comment"]),
                "detail": detail,
                "interval": duration(lang, interval) if isinstance(interval, int) else "",
            }
        )
    return out


async def show_result(
    request: Request,
    web: WebContext,
    viewer: Viewer,
    result_id: int,
    *,
    form: ActionForm | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The result's page for ``viewer``: its holds with the actions they may take, a form
    shown again with what was typed and why it was refused (``form``), or the message of
    the action just done (once, from ``flash``). A page with a form does not refresh itself
    (it would wipe what is typed)."""
    tr = web.translator(request)
    context = web.rules
    now = web.now()

    def reads(conn: Connection) -> dict[str, Any] | None:
        found = queries.get_result(conn, result_id)
        if found is None:
            return None
        facts = load_facts(conn)
        held = held_results(conn, viewer.person, context, now, facts=facts, result_id=result_id)
        return {
            "result": scrub_result(found),
            "held": held[0] if held else None,
            "signatures": signatures_for(conn, result_id),
            "corrections": corrections_for(conn, result_id),
            "names": {p: person.name for p, person in facts.people.items() if person.name},
        }

    data = await web.query(reads) if is_row_id(result_id) else None
    if data is None:
        return web.error_page(request, 404, tr.t("error.result_not_found", id=result_id))
    await log_results_shown(request, web, [result_id])
    result = data["result"]
    held: HeldItem | None = data["held"]
    open_holds = _open_holds(held, [h for h in result["holds"] if not h["released"]])
    offered = {a for h in open_holds for a in h["forms"]}
    message = flash_of(request).take(viewer.session_id, request.url.path)
    names = data["names"]
    signatures = [
        {**s, "name": names.get(s["person"], s["person"])}
        for s in _signatures(data["signatures"], tr.lang)
    ]
    return web.page(
        request,
        "result.html",
        {
            "result": result,
            "open_holds": open_holds,
            # released holds (and every hold of a result no longer held) as they were
            "closed_holds": [h for h in result["holds"] if h["released"] or held is None],
            "form": form,
            # a refusal for an action this page does not offer (the result moved on, or a
            # form posted from elsewhere): shown above, not lost
            "unplaced_error": form.error if form and form.action not in offered else "",
            "flash": message(tr.lang) if message else "",
            "signatures": signatures,
            "sig_meanings": SIGNATURE_MEANINGS,
            "corrections": data["corrections"],
            "names": names,
        },
        status_code=status_code,
        # a form, or an answer to a post (its URL is no page to fetch again): no refresh
        refresh=not offered and form is None,
    )


@router.get("/results/{result_id}", response_class=HTMLResponse)
async def result_page(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], result_id: int
) -> HTMLResponse:
    return await show_result(request, web, viewer, result_id)
