"""The competence import: upload the portal's CSV, see what it would change (a dry run), then
apply it with an electronic signature.

The preview parses the file against the site's config and the store (problems name their
line and column), plans it (``plan_import``: created, changed with before and after,
unchanged, and what the file does not name, which is kept) and keeps the file on the server
(``gateway.web.uploads``) under a token only this session can use. The apply form carries the
token and the file's SHA-256; the signed apply imports the kept bytes, and only if the store
would still do exactly the plan shown (else the new plan is shown to be checked again).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.catalogue import text
from gateway.people.competence import CompetenceFile, Problem, Vocabulary, parse_competence
from gateway.store.competence import (
    CertificationPlan,
    ImportPlan,
    ImportRefused,
    PersonPlan,
    person_ids,
    plan_import,
)
from gateway.store.people_signing import PlanChanged, plan_digest, sign_import
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.forms import form_fields
from gateway.web.signature import PASSWORD_FIELD, confirm_signature, refusal_text
from gateway.web.uploads import PendingImport, PendingImports, UploadTooLarge, read_upload

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

FILE_FIELD: Final = "file"


def pending_imports(request: Request) -> PendingImports:
    """The app's pending uploads (``create_app`` makes the holder)."""
    holder = request.app.state.pending_imports
    assert isinstance(holder, PendingImports)
    return holder


def problem_rows(lang: str, problems: tuple[Problem, ...]) -> list[dict[str, Any]]:
    """Problems as the page lists them: line, column and the sentence."""
    return [
        {
            "line": p.line,
            "column": p.column or "–",
            "text": text(lang, p.key, **p.text_params()),
        }
        for p in problems
    ]


def _changes(plan: ImportPlan) -> list[dict[str, Any]]:
    """Each person and certification of the plan as one row of the preview's table."""
    items: list[tuple[str, PersonPlan | CertificationPlan, str]] = [
        *(("person", p, "") for p in plan.people),
        *(("certification", c, c.task) for c in plan.certifications),
    ]
    return [
        {
            "what": what,
            "person": item.person,
            "task": task,
            "line": item.line,
            "change": item.change.value,
            "fields": item.fields,
        }
        for what, item, task in items
    ]


def _page(
    request: Request,
    web: WebContext,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = web.language(request)
    base: dict[str, Any] = {
        "problems": [],
        "warnings": [],
        "plan": None,
        "changes": [],
        "pending": None,
        "applied": None,
        "error": "",
        "notice": "",
        "filename": "",
    }
    full = base | context
    if isinstance(full["problems"], tuple):
        full["problems"] = problem_rows(lang, full["problems"])
    if isinstance(full["warnings"], tuple):
        full["warnings"] = problem_rows(lang, full["warnings"])
    plan = full["plan"]
    if isinstance(plan, ImportPlan):
        full["changes"] = _changes(plan)
    return web.page(request, "people_import.html", full, status_code=status_code, refresh=False)


async def _parse(web: WebContext, data: bytes) -> tuple[CompetenceFile, ImportPlan | None]:
    """The file parsed against the config and the store's people, and its plan (None when
    the file itself has problems)."""
    vocabulary = Vocabulary.from_config(web.config)

    def reads(conn: Connection) -> tuple[CompetenceFile, ImportPlan | None]:
        parsed = parse_competence(data, vocabulary=vocabulary, known_people=person_ids(conn))
        return parsed, (plan_import(conn, parsed) if parsed.ok else None)

    return await web.query(reads)


@router.get("/people/import", response_class=HTMLResponse)
async def import_form(request: Request, web: Web) -> HTMLResponse:
    return _page(request, web)


@router.post("/people/import", response_class=HTMLResponse)
async def import_preview(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    """The dry run: the file's problems, or its plan and the signed apply form."""
    tr = web.translator(request)
    try:
        upload = await read_upload(request, FILE_FIELD)
    except UploadTooLarge:
        return _page(request, web, error=tr.t("import.too_large"), status_code=413)
    if upload is None:
        return _page(request, web, error=tr.t("import.no_file"), status_code=422)
    filename, data = upload
    parsed, plan = await _parse(web, data)
    if plan is None or not plan.ok:
        problems = parsed.problems if plan is None else plan.problems
        return _page(request, web, problems=problems, filename=filename, status_code=422)
    pending = None
    if plan.changes and viewer.session_id is not None:
        pending = pending_imports(request).put(
            session_id=viewer.session_id,
            person=viewer.person,
            filename=filename,
            data=data,
            plan_digest=plan_digest(plan),
            now=web.now(),
        )
    return _page(
        request,
        web,
        plan=plan,
        warnings=parsed.warnings,
        pending=pending,
        filename=filename,
    )


@router.post("/people/import/apply", response_class=HTMLResponse)
async def import_apply(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    """Apply the previewed file (signed); the plan shown again when the store moved on."""
    tr = web.translator(request)
    fields = await form_fields(request)
    holder = pending_imports(request)
    pending: PendingImport | None = None
    if viewer.session_id is not None:
        pending = holder.get(
            fields.get("token", ""),
            session_id=viewer.session_id,
            sha256=fields.get("sha256", ""),
            now=web.now(),
        )
    if pending is None:
        return _page(request, web, error=tr.t("import.expired"), status_code=410)
    parsed, plan = await _parse(web, pending.data)
    if plan is None or not plan.ok:
        holder.pop(pending.token)
        problems = parsed.problems if plan is None else plan.problems
        return _page(request, web, problems=problems, filename=pending.filename, status_code=422)

    def changed_since(plan: ImportPlan) -> HTMLResponse:
        assert pending is not None
        holder.replan(pending.token, plan_digest(plan))
        if not plan.changes:
            holder.pop(pending.token)  # nothing left to sign
        return _page(
            request,
            web,
            plan=plan,
            warnings=parsed.warnings,
            pending=pending if plan.changes else None,
            filename=pending.filename,
            notice=tr.t("import.plan_changed"),
            status_code=409,
        )

    if plan_digest(plan) != pending.plan_digest:
        return changed_since(plan)  # before the signature: nobody signs an unseen plan
    attempt = await confirm_signature(web, viewer, fields.get(PASSWORD_FIELD, ""))
    if not attempt.ok:
        return _page(
            request,
            web,
            plan=plan,
            warnings=parsed.warnings,
            pending=pending,
            filename=pending.filename,
            error=refusal_text(web, request, attempt),
            status_code=422,
        )
    try:
        signed = await web.write(
            functools.partial(
                sign_import,
                parsed=parsed,
                person=viewer.person,
                actor=viewer.actor,
                source=pending.filename,
                sha256=pending.sha256,
                expected_plan=pending.plan_digest,
            )
        )
    except PlanChanged as changed:  # the store changed between the read and the write
        return changed_since(changed.plan)
    except ImportRefused as refused:
        holder.pop(pending.token)
        return _page(
            request,
            web,
            problems=refused.problems,
            filename=pending.filename,
            status_code=422,
        )
    holder.pop(pending.token)
    return _page(
        request,
        web,
        plan=signed.plan,
        applied=signed,
        filename=pending.filename,
    )
