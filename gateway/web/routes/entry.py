"""Manual result entry (DOMAIN rule 5): the form, and the result it becomes (``gateway.manual``).

The form offers the instrument/test pairs of the config (``manual.choices``) with each test's
unit and allowed values or range; the checks are the entry service's, their texts shown next
to the field they are about. A valid entry is stored with its access-log row (``change``: a
patient's result was created) in one store command, and the browser goes to the new result's
page, where it waits for a second person's verification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import manual
from gateway.catalogue import text
from gateway.manual import EntryOutcome, ManualEntry
from gateway.store import access
from gateway.store.writer import Tx
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.flash import flash_of
from gateway.web.forms import form_fields
from gateway.web.shown import route_of

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

#: the form's inputs (``choice`` is "instrument|test code")
INPUTS: Final = ("choice", "value", "unit", "patient_id", "specimen_id", "performed_at", "comment")
#: the longest text kept from an input (the service checks its own limits)
MAX_CHARS: Final = 2000
#: the ``datetime-local`` input's format (the site's wall-clock time, to the minute)
LOCAL_MINUTE: Final = "%Y-%m-%dT%H:%M"
SEPARATOR: Final = "|"


def choice_value(choice: manual.Choice) -> str:
    return f"{choice.instrument_id}{SEPARATOR}{choice.test_code}"


def _number(lang: str, number: float) -> str:
    shown = f"{number:g}"
    return shown.replace(".", ",") if lang == "nb" else shown


def limits_text(lang: str, choice: manual.Choice) -> str:
    """What a test accepts, as the form's table says it: the allowed values, the range."""
    parts = [", ".join(choice.allowed_values)] if choice.allowed_values else []
    low, high = choice.low, choice.high
    if low is not None and high is not None:
        parts.append(text(lang, "entry.range", low=_number(lang, low), high=_number(lang, high)))
    elif low is not None:
        parts.append(text(lang, "entry.at_least", low=_number(lang, low)))
    elif high is not None:
        parts.append(text(lang, "entry.at_most", high=_number(lang, high)))
    return "; ".join(parts) or text(lang, "entry.any_value")


def _form(
    request: Request,
    web: WebContext,
    values: Mapping[str, str],
    *,
    errors: Mapping[str, list[str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    choices = manual.choices(web.config)
    groups: dict[str, dict[str, Any]] = {}
    for choice in choices:
        group = groups.setdefault(
            choice.instrument_id, {"label": choice.instrument_name, "choices": []}
        )
        group["choices"].append({"value": choice_value(choice), "choice": choice})
    found = errors or {}
    lang = web.language(request)
    return web.page(
        request,
        "entry.html",
        {
            "values": values,
            "groups": list(groups.values()),
            "choices": [{"choice": c, "limits": limits_text(lang, c)} for c in choices],
            "errors": found,
            # the choice's errors are about either of its two parts
            "choice_errors": [*found.get("instrument_id", []), *found.get("test_code", [])],
            "general_errors": [*found.get("person", []), *found.get("entry", [])],
        },
        status_code=status_code,
        refresh=False,
    )


@router.get("/entry", response_class=HTMLResponse)
async def entry_form(request: Request, web: Web) -> HTMLResponse:
    now = web.now().astimezone(web.zone)
    return _form(request, web, {"performed_at": now.strftime(LOCAL_MINUTE)})


def _logged(
    entry: ManualEntry, person: str, web: WebContext, route: str
) -> Callable[[Tx], EntryOutcome]:
    job = manual.entry_job(entry, person, web.rules)

    def run(tx: Tx) -> EntryOutcome:
        outcome = job(tx)
        if outcome.ok and outcome.result_id is not None:
            access.log_access(
                tx,
                person,
                access.AccessAction.CHANGE,
                route,
                outcome.result_id,
                entry.patient_id.strip(),
                detail="manual entry",
            )
        return outcome

    return run


@router.post("/entry", response_class=HTMLResponse)
async def enter_result(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> Response:
    fields = await form_fields(request)
    values = {name: fields.get(name, "")[:MAX_CHARS] for name in INPUTS}
    instrument_id, _, test_code = values["choice"].partition(SEPARATOR)
    entry = ManualEntry(
        instrument_id=instrument_id,
        test_code=test_code,
        value=values["value"],
        unit=values["unit"],
        patient_id=values["patient_id"],
        specimen_id=values["specimen_id"],
        performed_at=values["performed_at"],
        comment=values["comment"],
    )
    outcome = await web.write(_logged(entry, viewer.person, web, route_of(request)))
    if not outcome.ok or outcome.result_id is None:
        lang = web.language(request)
        errors = manual.error_messages(outcome.errors, lang)
        return _form(request, web, values, errors=errors, status_code=422)
    result_id, reasons = outcome.result_id, outcome.holds

    def message(lang: str) -> str:
        held = ", ".join(text(lang, f"reason.{r}") for r in reasons)
        return text(lang, "entry.done", id=result_id, holds=held or text(lang, "none"))

    path = f"/results/{result_id}"
    flash_of(request).put(viewer.session_id, path, message)
    return RedirectResponse(path, status_code=303)
