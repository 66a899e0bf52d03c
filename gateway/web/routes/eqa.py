"""The EQA (EKV) pages: rounds (list, register), one round's samples (add, link by specimen
ID or type a value, sign the answer, record the programme's assessment), the printable answer
sheet and its CSV, split samples, and the Noklus-style QC/EQA export (``/qc/export``).

Who may open what is ``gateway.web.access.ROUTE_ROLES`` (reading: operator and up;
registering and assessing ``EQA_MANAGERS``; values, answers and split samples ``EQA_ENTRY``);
the store commands check the roles again. Answering, assessing and recording a split sample
are electronic signatures: the password again (``confirm_signature``) before the command runs.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.qc import eqa as rules
from gateway.qc.eqa import EQA_ENTRY, EQA_MANAGERS, EqaRuleError
from gateway.qc.noklus_export import Kind, file_name, find_test
from gateway.store import eqa as store
from gateway.store.qc_export import export_file
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.forms import form_fields
from gateway.web.signature import PASSWORD_FIELD, confirm_signature, refusal_text

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

Who = Annotated[Viewer, Authenticated]
#: the media type of each export format
MEDIA: Final = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        raise EqaRuleError("bad_day") from None


def _today(web: WebContext) -> date:
    return web.now().astimezone(web.zone).date()


def _instruments(web: WebContext) -> list[str]:
    return [i.id for i in web.config.instruments]


def _refusal(request: Request, web: WebContext, refused: EqaRuleError) -> str:
    """Why the store or the rules refused, in the reader's language."""
    return web.translator(request).t(f"eqa.refused.{refused.code}")


async def _get_round(web: WebContext, round_id: int) -> dict[str, Any] | None:
    return await web.query(lambda conn: store.get_round(conn, round_id))


# --- rounds ----------------------------------------------------------------------------------


async def _rounds_page(
    request: Request,
    web: WebContext,
    viewer: Viewer,
    *,
    error: str = "",
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    rows = await web.query(store.list_rounds)
    today = _today(web)
    for r in rows:
        r["overdue"] = rules.overdue(rules.RoundState(r["state"]), r["due_on"], today)
    return web.page(
        request,
        "eqa.html",
        {
            "rows": rows,
            "may_register": viewer.has(*EQA_MANAGERS),
            "instruments": _instruments(web),
            "typed": typed or {},
            "error": error,
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/eqa", response_class=HTMLResponse)
async def rounds_page(request: Request, web: Web, viewer: Who) -> HTMLResponse:
    return await _rounds_page(request, web, viewer)


@router.post("/eqa/register", response_class=HTMLResponse, response_model=None)
async def register(request: Request, web: Web, viewer: Who) -> Response:
    fields = await form_fields(request)
    try:
        if fields.get("instrument", "") not in _instruments(web):
            raise EqaRuleError("unknown_instrument")
        samples = []
        for line in fields.get("samples", "").splitlines():
            label, sep, test = line.partition(":")
            if line.strip() and (not sep or not label.strip() or not test.strip()):
                raise EqaRuleError("bad_sample")
            if line.strip():
                samples.append((label.strip(), test.strip()))
        received, due = _day(fields.get("received_on", "")), _day(fields.get("due_on", ""))
        round_id = await web.write(
            functools.partial(
                store.register_round,
                scheme=fields.get("scheme", ""),
                provider=fields.get("provider", "") or "Noklus",
                shipment=fields.get("shipment", ""),
                instrument_id=fields.get("instrument", ""),
                received_on=received,
                due_on=due,
                samples=samples,
                actor=viewer.person,
            )
        )
    except EqaRuleError as refused:
        return await _rounds_page(
            request, web, viewer, error=_refusal(request, web, refused), typed=dict(fields),
            status_code=422,
        )  # fmt: skip
    return RedirectResponse(f"/eqa/{round_id}?done=registered", status_code=303)


# --- split samples (before /eqa/{round_id}: "split" is not a round) --------------------------


async def _split_page(
    request: Request,
    web: WebContext,
    viewer: Viewer,
    *,
    error: str = "",
    typed: dict[str, str] | None = None,
    done: Any = None,
    status_code: int = 200,
) -> HTMLResponse:
    rows = await web.query(store.list_splits)
    return web.page(
        request,
        "eqa_split.html",
        {
            "rows": rows,
            "may_enter": viewer.has(*EQA_ENTRY),
            "instruments": _instruments(web),
            "default_allowed": rules.DEFAULT_SPLIT_ALLOWED_PERCENT,
            "typed": typed or {},
            "error": error,
            "done": done,
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/eqa/split", response_class=HTMLResponse)
async def split_page(request: Request, web: Web, viewer: Who) -> HTMLResponse:
    return await _split_page(request, web, viewer)


@router.post("/eqa/split/record", response_class=HTMLResponse)
async def split_record(request: Request, web: Web, viewer: Who) -> HTMLResponse:
    fields = await form_fields(request)
    tr = web.translator(request)
    typed = {k: v for k, v in fields.items() if k not in (PASSWORD_FIELD, "csrf")}

    async def again(error: str) -> HTMLResponse:
        return await _split_page(request, web, viewer, error=error, typed=typed, status_code=422)

    instrument, test = fields.get("instrument", ""), fields.get("test", "").strip()
    if instrument not in _instruments(web):
        return await again(tr.t("eqa.refused.unknown_instrument"))
    attempt = await confirm_signature(web, viewer, fields.get(PASSWORD_FIELD, ""))
    if not attempt.ok:
        return await again(refusal_text(web, request, attempt))
    found = find_test(web.config, instrument, test)
    try:
        measured_on = _day(fields.get("measured_on", ""))
        done = await web.write(
            functools.partial(
                store.record_split,
                instrument_id=instrument,
                test_code=test,
                sample=fields.get("sample", ""),
                local_value=fields.get("local_value", ""),
                specimen_id=fields.get("specimen", ""),
                central_value=fields.get("central_value", ""),
                allowed_percent=found.split_allowed_percent if found else None,
                measured_on=measured_on,
                actor=viewer.person,
            )
        )
    except EqaRuleError as refused:
        return await again(_refusal(request, web, refused))
    return await _split_page(request, web, viewer, done=done)


# --- one round -------------------------------------------------------------------------------


async def _round_page(
    request: Request,
    web: WebContext,
    viewer: Viewer,
    round_id: int,
    *,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    found = await _get_round(web, round_id)
    if found is None:
        return web.error_page(request, 404, web.translator(request).t("eqa.refused.not_found"))
    done = request.query_params.get("done", "")
    return web.page(
        request,
        "eqa_round.html",
        {
            "round": found,
            "may_manage": viewer.has(*EQA_MANAGERS),
            "may_enter": viewer.has(*EQA_ENTRY),
            "overdue": rules.overdue(
                rules.RoundState(found["state"]), found["due_on"], _today(web)
            ),
            "grades": [g.value for g in rules.Grade],
            "qualities": rules.QUALITIES,
            "done": done if done.isidentifier() else "",
            "error": error,
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/eqa/{round_id}", response_class=HTMLResponse)
async def round_page(request: Request, web: Web, viewer: Who, round_id: int) -> HTMLResponse:
    return await _round_page(request, web, viewer, round_id)


async def _round_refused(
    request: Request, web: WebContext, viewer: Viewer, round_id: int, refused: EqaRuleError
) -> HTMLResponse:
    """The round's page again with why the form was refused (422)."""
    error = _refusal(request, web, refused)
    return await _round_page(request, web, viewer, round_id, error=error, status_code=422)


async def _act(
    request: Request,
    web: WebContext,
    viewer: Viewer,
    round_id: int,
    job: Any,
    done: str,
    *,
    signed: str | None = None,
) -> Response:
    """Run a store command for the round; back to the round's page, with the refusal."""
    if signed is not None:
        attempt = await confirm_signature(web, viewer, signed)
        if not attempt.ok:
            error = refusal_text(web, request, attempt)
            return await _round_page(request, web, viewer, round_id, error=error, status_code=422)
    try:
        await web.write(job)
    except EqaRuleError as refused:
        return await _round_refused(request, web, viewer, round_id, refused)
    return RedirectResponse(f"/eqa/{round_id}?done={done}", status_code=303)


def _sample_of(fields: Mapping[str, str]) -> int:
    try:
        return int(fields.get("sample_id", ""))
    except ValueError:
        raise EqaRuleError("not_found") from None


async def _check_own_sample(web: WebContext, round_id: int, sample_id: int) -> None:
    """EqaRuleError ``not_found`` unless the sample is one of the round's."""
    found = await _get_round(web, round_id)
    if found is None or all(s["id"] != sample_id for s in found["samples"]):
        raise EqaRuleError("not_found")


@router.post("/eqa/{round_id}/samples", response_class=HTMLResponse, response_model=None)
async def add_sample(request: Request, web: Web, viewer: Who, round_id: int) -> Response:
    fields = await form_fields(request)
    job = functools.partial(
        store.add_sample,
        round_id=round_id,
        sample=fields.get("sample", ""),
        test_code=fields.get("test", ""),
        unit=fields.get("unit", ""),
        actor=viewer.person,
    )
    return await _act(request, web, viewer, round_id, job, "sample_added")


@router.post("/eqa/{round_id}/value", response_class=HTMLResponse, response_model=None)
async def set_value(request: Request, web: Web, viewer: Who, round_id: int) -> Response:
    """Link a sample to the result of a specimen ID, or type its value in."""
    fields = await form_fields(request)
    try:
        sample_id = _sample_of(fields)
        await _check_own_sample(web, round_id, sample_id)
    except EqaRuleError as refused:
        return await _round_refused(request, web, viewer, round_id, refused)
    specimen = fields.get("specimen", "").strip()
    job: Any
    if specimen:
        job = functools.partial(
            store.link_sample, sample_id=sample_id, specimen_id=specimen, actor=viewer.person
        )
    else:
        job = functools.partial(
            store.enter_value,
            sample_id=sample_id,
            value=fields.get("value", ""),
            unit=fields.get("unit") or None,
            actor=viewer.person,
        )
    return await _act(request, web, viewer, round_id, job, "value_set")


@router.post("/eqa/{round_id}/answered", response_class=HTMLResponse, response_model=None)
async def answered(request: Request, web: Web, viewer: Who, round_id: int) -> Response:
    fields = await form_fields(request)
    job = functools.partial(
        store.answer_round,
        round_id=round_id,
        comment=fields.get("comment", ""),
        actor=viewer.person,
    )
    return await _act(
        request, web, viewer, round_id, job, "answered", signed=fields.get(PASSWORD_FIELD, "")
    )


@router.post("/eqa/{round_id}/assess", response_class=HTMLResponse, response_model=None)
async def assess(request: Request, web: Web, viewer: Who, round_id: int) -> Response:
    fields = await form_fields(request)
    try:
        sample_id = _sample_of(fields)
        grades = rules.assessment(
            fields.get("trueness", ""), fields.get("accuracy", ""), fields.get("precision", "")
        )
        await _check_own_sample(web, round_id, sample_id)
    except EqaRuleError as refused:
        return await _round_refused(request, web, viewer, round_id, refused)
    job = functools.partial(
        store.assess_sample,
        sample_id=sample_id,
        grades=grades,
        target_value=fields.get("target_value", ""),
        note=fields.get("note", ""),
        actor=viewer.person,
    )
    return await _act(
        request, web, viewer, round_id, job, "assessed", signed=fields.get(PASSWORD_FIELD, "")
    )


@router.get("/eqa/{round_id}/answer", response_class=HTMLResponse)
async def answer_sheet(request: Request, web: Web, round_id: int) -> HTMLResponse:
    """The answer for submission, printable (print CSS: no navigation, black on white)."""
    found = await _get_round(web, round_id)
    if found is None:
        return web.error_page(request, 404, web.translator(request).t("eqa.refused.not_found"))
    return web.page(
        request,
        "eqa_answer.html",
        {
            "round": found,
            "participant": web.config.site.noklus_participant,
            "site_name": web.config.site.name,
        },
        refresh=False,
    )


@router.get("/eqa/{round_id}/answer.csv", response_model=None)
async def answer_csv(request: Request, web: Web, round_id: int) -> Response:
    """The answer as CSV (the export's conventions: UTF-8 with BOM, ``;``)."""
    found = await _get_round(web, round_id)
    if found is None:
        return web.error_page(request, 404, web.translator(request).t("eqa.refused.not_found"))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [
            "noklus_participant",
            "scheme",
            "shipment",
            "instrument_id",
            "sample",
            "analyte",
            "value",
            "unit",
        ]
    )
    for s in found["samples"]:
        writer.writerow(
            [
                web.config.site.noklus_participant,
                found["scheme"],
                found["shipment"],
                found["instrument"],
                s["sample"],
                s["test"],
                s["value"],
                s["unit"],
            ]
        )
    name = f"eqa-{found['shipment']}-{found['instrument']}.csv".replace('"', "")
    return Response(
        content=out.getvalue().encode("utf-8-sig"),
        media_type=MEDIA["csv"],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- the export ------------------------------------------------------------------------------


@router.get("/qc/export", response_class=HTMLResponse, response_model=None)
async def qc_export(
    request: Request,
    web: Web,
    kind: Annotated[str, Query(max_length=8)] = "",
    first: Annotated[str, Query(alias="from", max_length=10)] = "",
    last: Annotated[str, Query(alias="to", max_length=10)] = "",
    instrument: Annotated[str, Query(max_length=64)] = "",
    fmt: Annotated[str, Query(alias="format", max_length=8)] = "xlsx",
    decimal: Annotated[str, Query(max_length=8)] = "comma",
) -> Response:
    """The export form; with ``kind`` (and a period) the file itself."""
    today = _today(web)
    typed = {
        "kind": kind or "qc",
        "from": first or today.replace(day=1).isoformat(),
        "to": last or today.isoformat(),
        "instrument": instrument,
        "format": fmt,
        "decimal": decimal,
    }
    error = ""
    if kind:
        try:
            start, end = _day(first), _day(last)
            if kind not in ("qc", "eqa") or fmt not in MEDIA or decimal not in ("comma", "point"):
                raise EqaRuleError("bad_export")
            if instrument and instrument not in _instruments(web):
                raise EqaRuleError("unknown_instrument")
            if start is None or end is None or end < start:
                raise EqaRuleError("bad_period")
        except EqaRuleError as bad:
            error = _refusal(request, web, bad)
        else:
            assert start is not None and end is not None
            chosen: Kind = "qc" if kind == "qc" else "eqa"
            first_day, last_day = start, end
            data, _ = await web.query(
                lambda conn: export_file(
                    conn,
                    web.config,
                    kind=chosen,
                    first=first_day,
                    last=last_day,
                    instrument=instrument,
                    fmt=fmt,
                    decimal=decimal,
                )
            )
            return Response(
                content=data,
                media_type=MEDIA[fmt],
                headers={
                    "Content-Disposition": (
                        f'attachment; filename="{file_name(chosen, start, end, instrument, fmt)}"'
                    )
                },
            )
    return web.page(
        request,
        "qc_export.html",
        {"typed": typed, "instruments": _instruments(web), "error": error},
        status_code=422 if error else 200,
        refresh=False,
    )
