"""The QC pages (issue 11): the overview, a lockout, the control lots, manual QC entry, and
``/api/qc/status``.

Who: every role that works with results reads the QC pages, and so does ``admin`` (QC data
holds no patient data: a lockout lists its held results by id and state only; the result's
own page, access-logged, shows the rest). ``supervisor`` and ``quality_manager`` register and
change lots and sign a lockout's corrective action and the release of its held results; a
new lot and a new target are signed (the password again) because they change how every later
control is judged; changing a lot's expiry, opened date, in-use days or whether it is in use
is audited with the person, not signed. Manual QC entry is for ``gateway.manual.ENTRY_ROLES``
(and, with ``[people] enforce``, a QC certification: ``gateway.qc.entry``).

Every write is one store command: the action, its ``signatures`` row when signed and its
audit row with the person, in one transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from gateway.catalogue import text
from gateway.holds.qc_lockout import release_lockout_results
from gateway.people.roles import Role
from gateway.qc import entry as qc_entry
from gateway.qc import lot_form
from gateway.qc.overview import TONE, configured_pairs, shown_status, worst
from gateway.rules import RuleContext
from gateway.rules.facts import QcStatus
from gateway.store import qc_lots, qc_queries, qc_state
from gateway.store.qc_lots import Lot
from gateway.store.qc_queries import StatusRow
from gateway.store.signatures import add_signature
from gateway.store.writer import Tx
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.flash import flash_of
from gateway.web.forms import form_fields
from gateway.web.i18n import day_text
from gateway.web.routes.params import is_row_id, row_or_404
from gateway.web.signature import PASSWORD_FIELD, confirm_signature, refusal_text

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])
api = APIRouter(prefix="/api", tags=["api"], dependencies=[Authenticated])

MAX_CHARS: Final = 2000
LOCAL_MINUTE: Final = "%Y-%m-%dT%H:%M"
#: the signatures' meanings (``signatures.meaning``)
SIGN_LOT: Final = "qc_lot_added"
SIGN_TARGET: Final = "qc_target_set"
RECENT_EVALUATIONS: Final = 15
#: who signs a lockout's corrective action and the release of its held results, and who
#: registers and changes control lots (``gateway.web.access``)
LOCKOUT_SIGNER_ROLES: Final = frozenset({Role.SUPERVISOR, Role.QUALITY_MANAGER})
LOT_EDITOR_ROLES: Final = frozenset({Role.SUPERVISOR, Role.QUALITY_MANAGER})


# --- the overview ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shown:
    """One instrument/test line of the overview."""

    row: StatusRow
    instrument_name: str
    status: QcStatus
    tone: str
    schedule: str
    lockout_mode: str
    levels: tuple[str, ...]


def _page(
    web: WebContext,
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    refresh: bool = True,
) -> HTMLResponse:
    """``web.page`` with the QC pages' own helpers (days as the reader writes them)."""
    lang = web.language(request)
    full = {"day": lambda value: day_text(lang, value), **context}
    return web.page(request, template, full, status_code=status_code, refresh=refresh)


def _name_of(web: WebContext, instrument_id: str) -> str:
    found = next((i for i in web.config.instruments if i.id == instrument_id), None)
    return "" if found is None else found.name


def shown_rows(web: WebContext, rows: list[StatusRow], lots: list[Lot]) -> list[Shown]:
    """The store's status rows as the pages show them now (``overview.shown_status``)."""
    now = web.now()
    out = []
    for row in rows:
        qc = web.config.qc_for(row.instrument_id, row.test_code)
        levels = list(qc.levels) if qc is not None else []
        for lot in lots:
            same = lot.test_code == row.test_code and lot.instrument_id in ("", row.instrument_id)
            if same and lot.level not in levels:
                levels.append(lot.level)
        status = shown_status(row.status, row.due_at, now)
        out.append(
            Shown(
                row=row,
                instrument_name=_name_of(web, row.instrument_id),
                status=status,
                tone=TONE[status],
                schedule="" if qc is None else qc.schedule,
                lockout_mode="" if qc is None else qc.lockout,
                levels=tuple(levels),
            )
        )
    return out


def chart_link(instrument_id: str, test_code: str, level: str) -> str:
    """The Levey-Jennings chart of one level (the charts page)."""
    return "/qc/chart?" + urlencode(
        {"instrument": instrument_id, "test": test_code, "level": level}
    )


async def status_lines(web: WebContext) -> list[Shown]:
    """Every configured (and stored) instrument/test with its status as shown now."""
    pairs = configured_pairs(web.config)

    def read(conn: Connection) -> tuple[list[StatusRow], list[Lot]]:
        return qc_queries.status_rows(conn, pairs), qc_lots.list_lots(conn, active_only=True)

    rows, lots = await web.query(read)
    return shown_rows(web, rows, lots)


def instrument_panel(lines: list[Shown]) -> list[dict[str, Any]]:
    """The dashboard's QC panel: per instrument, the worst status of its tests."""
    by_instrument: dict[str, list[Shown]] = {}
    for line in lines:
        by_instrument.setdefault(line.row.instrument_id, []).append(line)
    out = []
    for instrument_id, found in by_instrument.items():
        status = worst(line.status for line in found) or QcStatus.NO_QC
        out.append(
            {
                "instrument_id": instrument_id,
                "name": found[0].instrument_name,
                "status": status.value,
                "tone": TONE[status],
                "tests": [line.row.test_code for line in found if line.status is status],
                "lockouts": [line.row.lockout_id for line in found if line.row.lockout_id],
            }
        )
    return out


def _has_qc(web: WebContext, instrument_id: str, test_code: str) -> bool:
    """Whether the test has a `[[qc]]` entry on the instrument ("": on any instrument)."""
    if instrument_id:
        return web.config.qc_for(instrument_id, test_code) is not None
    return any(entry.test == test_code for entry in web.config.qc)


@router.get("/qc", response_class=HTMLResponse)
async def qc_overview(request: Request, web: Web) -> HTMLResponse:
    lines = await status_lines(web)

    def read(conn: Connection) -> dict[str, Any]:
        return {
            "lots": qc_lots.list_lots(conn, active_only=True),
            "lockouts": qc_queries.list_lockouts(conn, open_only=True),
            # more than shown: the ones dropped below must not empty the list
            "flagged": qc_queries.recent_evaluations(
                conn, flagged_only=True, limit=RECENT_EVALUATIONS * 5
            ),
        }

    data = await web.query(read)
    today = web.now().astimezone(web.zone).date()
    # The overview shows what the lab's QC rules cover. An analyser registers a lot for every
    # parameter it runs controls on (a CBC control: 20 or more); those without a [[qc]] entry
    # stay on the lots page, and their "no target" values are no news here.
    covered = [lot for lot in data["lots"] if _has_qc(web, lot.instrument_id, lot.test_code)]
    flagged = [
        e
        for e in data["flagged"]
        if e.verdict != "no_target" or _has_qc(web, e.instrument_id, e.test_code)
    ][:RECENT_EVALUATIONS]
    return _page(
        web,
        request,
        "qc.html",
        {
            "lines": lines,
            "chart_link": chart_link,
            "lots": [{"lot": lot, "unusable": qc_lots.lot_usable(lot, today)} for lot in covered],
            "other_lots": len(data["lots"]) - len(covered),
            "lockouts": data["lockouts"],
            "flagged": flagged,
            "may_edit": not viewer_of(request).roles.isdisjoint(LOT_EDITOR_ROLES),
        },
    )


@api.get("/qc/status", summary="QC status per instrument and test")
async def api_qc_status(web: Web) -> list[dict[str, Any]]:
    """Each configured instrument/test (and any the store has a status for) with its status
    as it stands now (in_control, warning, out_of_control, overdue, no_qc), since when, when
    the next controls are due, and the open lockout's id."""
    return [
        {
            "instrument": line.row.instrument_id,
            "test": line.row.test_code,
            "status": line.status.value,
            "since": line.row.since.isoformat() if line.row.since else None,
            "due_at": line.row.due_at.isoformat() if line.row.due_at else None,
            "lockout_id": line.row.lockout_id,
        }
        for line in await status_lines(web)
    ]


# --- a lockout ---------------------------------------------------------------------------------


def _flash(request: Request, web: WebContext, viewer: Viewer) -> str:
    """The sentence of the action just done on this page (once), in the reader's language."""
    message = flash_of(request).take(viewer.session_id, request.url.path)
    return message(web.language(request)) if message else ""


def viewer_of(request: Request) -> Viewer:
    viewer = request.state.viewer
    assert isinstance(viewer, Viewer)
    return viewer


def _typed(fields: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The form's fields ``names`` as typed (cut to ``MAX_CHARS``; a missing one empty)."""
    return {name: fields.get(name, "")[:MAX_CHARS] for name in names}


def _done(request: Request, viewer: Viewer, path: str, key: str, **params: object) -> Response:
    """303 to ``path``, which then shows the sentence ``key`` once, in the reader's language."""
    flash_of(request).put(viewer.session_id, path, lambda lang: text(lang, key, **params))
    return RedirectResponse(path, status_code=303)


async def _lockout_detail(web: WebContext, lockout_id: int) -> qc_queries.LockoutDetail | None:
    return await web.query(lambda c: qc_queries.lockout_detail(c, lockout_id))


async def _lockout_page(
    request: Request,
    web: WebContext,
    lockout_id: int,
    *,
    form: str = "",
    values: Mapping[str, str] | None = None,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    detail = await row_or_404(lockout_id, "lockout", lambda: _lockout_detail(web, lockout_id))
    viewer = viewer_of(request)
    return _page(
        web,
        request,
        "qc_lockout.html",
        {
            "d": detail,
            "lockout": detail.lockout,
            "may_sign": not viewer.roles.isdisjoint(LOCKOUT_SIGNER_ROLES),
            "form": form,
            "values": values or {},
            "form_error": error,
            "flash": _flash(request, web, viewer),
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/qc/lockouts/{lockout_id}", response_class=HTMLResponse)
async def qc_lockout(request: Request, web: Web, lockout_id: int) -> HTMLResponse:
    return await _lockout_page(request, web, lockout_id)


def corrective_job(lockout_id: int, person: str, action_text: str) -> Callable[[Tx], bool]:
    """Record the signed corrective action (``qc_state.record_corrective_action`` writes its
    signature, audit row and the deviation's corrective action, and lifts the lockout when an
    accepted run already followed it). False: the lockout is not open, or the person may not."""

    def run(tx: Tx) -> bool:
        try:
            qc_state.record_corrective_action(tx, lockout_id, text=action_text, person=person)
        except ValueError:
            return False
        return True

    return run


def release_job(
    lockout_id: int, person: str, note: str, context: RuleContext
) -> Callable[[Tx], int]:
    """Release the lifted lockout's held results, each a signed release
    (``gateway.holds.qc_lockout``), with one audit row for the whole; how many were released."""

    def run(tx: Tx) -> int:
        outcomes = release_lockout_results(tx, lockout_id, person, note, context=context)
        count = sum(1 for outcome in outcomes if outcome.done)
        tx.audit(
            actor=person,
            action="qc.held_results_released",
            entity="qc_lockout",
            entity_id=lockout_id,
            reason=note,
            after={"released": count, "refused": len(outcomes) - count},
        )
        return count

    return run


async def _signed(
    request: Request, web: WebContext, viewer: Viewer, fields: Mapping[str, str]
) -> str:
    """ "" when the form's password is the viewer's; else why not, in the reader's language."""
    attempt = await confirm_signature(web, viewer, fields.get(PASSWORD_FIELD, ""))
    return "" if attempt.ok else refusal_text(web, request, attempt)


@router.post("/qc/lockouts/{lockout_id}/corrective-action", response_class=HTMLResponse)
async def qc_corrective_action(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], lockout_id: int
) -> Response:
    if not is_row_id(lockout_id):
        return await _lockout_page(request, web, lockout_id)
    fields = await form_fields(request)
    values = _typed(fields, ("text",))
    tr = web.translator(request)
    # the page again, with the form as typed and why it was not done
    again = functools.partial(
        _lockout_page, request, web, lockout_id, form="corrective", values=values
    )
    action_text = values["text"].strip()
    if not action_text:
        return await again(error=tr.t("qc.lockout.error.text_required"), status_code=422)
    refused = await _signed(request, web, viewer, fields)
    if refused:
        return await again(error=refused, status_code=422)
    done = await web.write(corrective_job(lockout_id, viewer.person, action_text))
    if not done:
        return await again(error=tr.t("qc.lockout.error.not_open"), status_code=409)
    return _done(request, viewer, f"/qc/lockouts/{lockout_id}", "qc.lockout.signed")


@router.post("/qc/lockouts/{lockout_id}/release", response_class=HTMLResponse)
async def qc_release_held(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], lockout_id: int
) -> Response:
    if not is_row_id(lockout_id):
        return await _lockout_page(request, web, lockout_id)
    fields = await form_fields(request)
    values = _typed(fields, ("note",))
    tr = web.translator(request)
    # the page again, with the form as typed and why it was not done
    again = functools.partial(
        _lockout_page, request, web, lockout_id, form="release", values=values
    )
    detail = await row_or_404(lockout_id, "lockout", lambda: _lockout_detail(web, lockout_id))
    if detail.lockout.is_open:
        return await again(error=tr.t("qc.lockout.error.still_open"), status_code=409)
    if not values["note"].strip():
        return await again(error=tr.t("qc.lockout.error.note_required"), status_code=422)
    refused = await _signed(request, web, viewer, fields)
    if refused:
        return await again(error=refused, status_code=422)
    count = await web.write(
        release_job(lockout_id, viewer.person, values["note"].strip(), web.rules)
    )
    return _done(request, viewer, f"/qc/lockouts/{lockout_id}", "qc.lockout.released", n=count)


# --- control lots ------------------------------------------------------------------------------


def _error_texts(errors: Mapping[str, list[str]], lang: str) -> dict[str, list[str]]:
    return {f: [text(lang, f"qc.lot.error.{c}") for c in codes] for f, codes in errors.items()}


def _tests(web: WebContext) -> list[str]:
    """Test codes a lot may be for: the ``[[qc]]`` entries' and the ``[[tests]]``' codes."""
    return sorted({q.test for q in web.config.qc} | {t.code for t in web.config.tests})


@router.get("/qc/lots", response_class=HTMLResponse)
async def qc_lots_page(
    request: Request,
    web: Web,
    instrument: Annotated[str, Query(max_length=64)] = "",
    test: Annotated[str, Query(max_length=64)] = "",
    active: Annotated[str, Query(max_length=3)] = "",
) -> HTMLResponse:
    lots = await web.query(
        lambda c: qc_lots.list_lots(
            c,
            instrument_id=instrument or None,
            test_code=test or None,
            active_only=active == "1",
        )
    )
    today = web.now().astimezone(web.zone).date()
    return _page(
        web,
        request,
        "qc_lots.html",
        {
            "lots": [{"lot": lot, "unusable": qc_lots.lot_usable(lot, today)} for lot in lots],
            "filters": {"instrument": instrument, "test": test, "active": active},
            "instruments": web.config.instruments,
            "tests": _tests(web),
            "may_edit": not viewer_of(request).roles.isdisjoint(LOT_EDITOR_ROLES),
            "flash": _flash(request, web, viewer_of(request)),
        },
    )


def _new_lot_form(
    request: Request,
    web: WebContext,
    values: Mapping[str, str],
    errors: Mapping[str, list[str]] | None = None,
    general: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    return _page(
        web,
        request,
        "qc_lot_new.html",
        {
            "values": values,
            "errors": errors or {},
            "general": general,
            "instruments": web.config.instruments,
            "tests": _tests(web),
        },
        status_code=status_code,
        refresh=False,
    )


NEW_LOT_INPUTS: Final = (
    "instrument_id", "test_code", "level", "lot", "material", "unit", "kind", "expected",
    "expires_on", "opened_on", "in_use_days", "manufacturer_mean", "manufacturer_sd",
    "target_source", "first_n",
)  # fmt: skip


def add_lot_job(values: Mapping[str, Any], person: str) -> Callable[[Tx], int | None]:
    """Register the lot (None: that instrument, test, level and lot is registered already),
    with its signature and audit row."""

    def run(tx: Tx) -> int | None:
        known = qc_lots.find_lot(
            tx.conn, values["instrument_id"], values["test_code"], values["level"], values["lot"]
        )
        if known is not None and known.instrument_id == values["instrument_id"]:
            return None
        lot_id = qc_lots.add_lot(tx, person=person, **values)
        signature = add_signature(
            tx, person=person, meaning=SIGN_LOT, result_id=None, detail={"lot_id": lot_id}
        )
        tx.audit(
            actor=person,
            action="qc.lot_signed",
            entity="control_lot",
            entity_id=lot_id,
            after={"signature_id": signature},
        )
        return lot_id

    return run


@router.get("/qc/lots/new", response_class=HTMLResponse)
async def qc_lot_new(request: Request, web: Web) -> HTMLResponse:
    return _new_lot_form(request, web, {"kind": "quantitative"})


@router.post("/qc/lots/new", response_class=HTMLResponse)
async def qc_lot_add(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> Response:
    fields = await form_fields(request)
    values = _typed(fields, NEW_LOT_INPUTS)
    lang = web.language(request)
    parsed = lot_form.parse_new_lot(values, {i.id for i in web.config.instruments})
    if not parsed.ok:
        errors = _error_texts(parsed.errors, lang)
        general = text(lang, "qc.lot.fix")
        return _new_lot_form(request, web, values, errors, general, status_code=422)
    refused = await _signed(request, web, viewer, fields)
    if refused:
        return _new_lot_form(request, web, values, general=refused, status_code=422)
    lot_id = await web.write(add_lot_job(parsed.values, viewer.person))
    if lot_id is None:
        general = text(lang, "qc.lot.error.exists")
        return _new_lot_form(request, web, values, general=general, status_code=409)
    return _done(request, viewer, f"/qc/lots/{lot_id}", "qc.lot.added")


def _day_value(value: Any) -> str:
    return "" if value is None else str(value)


async def _lot_page(
    request: Request,
    web: WebContext,
    lot_id: int,
    *,
    form: str = "",
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, list[str]] | None = None,
    general: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    def read(conn: Connection) -> tuple[Lot, list[qc_lots.TargetRow]] | None:
        lot = qc_lots.get_lot(conn, lot_id)
        return None if lot is None else (lot, qc_lots.list_targets(conn, lot_id))

    lot, targets = await row_or_404(lot_id, "lot", lambda: web.query(read))
    viewer = viewer_of(request)
    today = web.now().astimezone(web.zone).date()
    edit_values = {
        "expires_on": _day_value(lot.expires_on),
        "opened_on": _day_value(lot.opened_on),
        "in_use_days": _day_value(lot.in_use_days),
        "active": "1" if lot.active else "",
    }
    target_values = {"mean": "", "sd": "", "source": "manual", "note": ""}
    if form == "edit" and values is not None:
        edit_values = dict(values)
    if form == "target" and values is not None:
        target_values = dict(values)
    return _page(
        web,
        request,
        "qc_lot.html",
        {
            "lot": lot,
            "targets": list(reversed(targets)),
            "unusable": qc_lots.lot_usable(lot, today),
            "may_edit": not viewer.roles.isdisjoint(LOT_EDITOR_ROLES),
            "form": form,
            "edit_values": edit_values,
            "target_values": target_values,
            "errors": errors or {},
            "general": general,
            "levels_link": chart_link(lot.instrument_id, lot.test_code, lot.level),
            "flash": _flash(request, web, viewer),
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/qc/lots/{lot_id}", response_class=HTMLResponse)
async def qc_lot(request: Request, web: Web, lot_id: int) -> HTMLResponse:
    return await _lot_page(request, web, lot_id)


async def _lot_to_fix(
    request: Request,
    web: WebContext,
    lot_id: int,
    form: str,
    values: Mapping[str, str],
    parsed: lot_form.Parsed,
) -> HTMLResponse:
    """The lot's page again with ``form`` as typed and what to fix in it (422)."""
    lang = web.language(request)
    return await _lot_page(
        request, web, lot_id, form=form, values=values,
        errors=_error_texts(parsed.errors, lang), general=text(lang, "qc.lot.fix"),
        status_code=422,
    )  # fmt: skip


EDIT_INPUTS: Final = ("expires_on", "opened_on", "in_use_days", "active")


def edit_lot_job(lot_id: int, changes: Mapping[str, Any], person: str) -> Callable[[Tx], bool]:
    """Change the lot (audited by ``qc_lots.update_lot`` with the person); False: no lot."""

    def run(tx: Tx) -> bool:
        try:
            qc_lots.update_lot(tx, lot_id, person=person, **changes)
        except KeyError:
            return False
        return True

    return run


@router.post("/qc/lots/{lot_id}/edit", response_class=HTMLResponse)
async def qc_lot_edit(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], lot_id: int
) -> Response:
    if not is_row_id(lot_id):
        return await _lot_page(request, web, lot_id)
    values = _typed(await form_fields(request), EDIT_INPUTS)
    parsed = lot_form.parse_changes(values)
    if not parsed.ok:
        return await _lot_to_fix(request, web, lot_id, "edit", values, parsed)
    if not await web.write(edit_lot_job(lot_id, parsed.values, viewer.person)):
        return await _lot_page(request, web, lot_id)  # 404
    return _done(request, viewer, f"/qc/lots/{lot_id}", "qc.lot.changed")


def target_job(lot_id: int, values: Mapping[str, Any], person: str) -> Callable[[Tx], int | None]:
    """Set the lot's new target with its signature (``qc_lots.set_target`` audits it)."""

    def run(tx: Tx) -> int | None:
        lot = qc_lots.get_lot(tx.conn, lot_id)
        if lot is None or lot.kind != "quantitative":
            return None
        mean, sd = values["mean"], values["sd"]
        assert isinstance(mean, Decimal) and isinstance(sd, Decimal)
        target_id = qc_lots.set_target(
            tx, lot_id, mean=mean, sd=sd, source=values["source"], person=person,
            note=values["note"],
        )  # fmt: skip
        add_signature(
            tx,
            person=person,
            meaning=SIGN_TARGET,
            result_id=None,
            comment=values["note"],
            detail={"lot_id": lot_id, "target_id": target_id, "mean": str(mean), "sd": str(sd)},
        )
        return target_id

    return run


@router.post("/qc/lots/{lot_id}/target", response_class=HTMLResponse)
async def qc_lot_target(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], lot_id: int
) -> Response:
    if not is_row_id(lot_id):
        return await _lot_page(request, web, lot_id)
    fields = await form_fields(request)
    values = _typed(fields, ("mean", "sd", "source", "note"))
    parsed = lot_form.parse_target(values)
    if not parsed.ok:
        return await _lot_to_fix(request, web, lot_id, "target", values, parsed)
    # the page again, with the form as typed and why it was not done
    again = functools.partial(_lot_page, request, web, lot_id, form="target", values=values)
    refused = await _signed(request, web, viewer, fields)
    if refused:
        return await again(general=refused, status_code=422)
    if await web.write(target_job(lot_id, parsed.values, viewer.person)) is None:
        lang = web.language(request)
        general = text(lang, "qc.lot.error.no_target_for_qualitative")
        return await again(general=general, status_code=409)
    return _done(request, viewer, f"/qc/lots/{lot_id}", "qc.lot.target_set")


# --- manual QC entry ---------------------------------------------------------------------------

ENTRY_INPUTS: Final = ("instrument_id", "lot_id", "value", "performed_at", "comment")


async def _entry_form(
    request: Request,
    web: WebContext,
    values: Mapping[str, str],
    *,
    errors: Mapping[str, list[str]] | None = None,
    outcome: qc_entry.EntryOutcome | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lots = await web.query(lambda c: qc_lots.list_lots(c, active_only=True))
    today = web.now().astimezone(web.zone).date()
    found = errors or {}
    return _page(
        web,
        request,
        "qc_entry.html",
        {
            "values": values,
            "instruments": web.config.instruments,
            "lots": [{"lot": lot, "unusable": qc_lots.lot_usable(lot, today)} for lot in lots],
            "errors": found,
            "general_errors": [*found.get("person", []), *found.get("entry", [])],
            "outcome": outcome,
            "chart_link": chart_link,
        },
        status_code=status_code,
        refresh=False,
    )


def _now_local(web: WebContext) -> str:
    now: datetime = web.now().astimezone(web.zone)
    return now.strftime(LOCAL_MINUTE)


@router.get("/qc/entry", response_class=HTMLResponse)
async def qc_entry_form(request: Request, web: Web) -> HTMLResponse:
    return await _entry_form(request, web, {"performed_at": _now_local(web)})


@router.post("/qc/entry", response_class=HTMLResponse)
async def qc_entry_post(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> Response:
    fields = await form_fields(request)
    values = {name: fields.get(name, "")[:MAX_CHARS] for name in ENTRY_INPUTS}
    typed = qc_entry.QcEntry(
        instrument_id=values["instrument_id"],
        lot_id=values["lot_id"],
        value=values["value"],
        performed_at=values["performed_at"],
        comment=values["comment"],
    )
    outcome = await web.write(qc_entry.entry_job(typed, viewer.person, web.rules))
    if not outcome.ok:
        errors = qc_entry.error_messages(outcome.errors, web.language(request))
        return await _entry_form(request, web, values, errors=errors, status_code=422)
    # the verdict right away, and a fresh form for the next level (instrument kept)
    fresh = {"instrument_id": values["instrument_id"], "performed_at": values["performed_at"]}
    return await _entry_form(request, web, fresh, outcome=outcome)
