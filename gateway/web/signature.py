"""The electronic signature on the web: every signed action asks for the password again.

An action page (verify, co-sign, release, override, correct) calls ``confirm_signature`` with
the viewer and the password from its form before it runs the action; only an ``ok`` attempt
may go on to write the signature row (the actions' own job records meaning, time, person).
The check is ``signin.authenticate(purpose="signature")``: the same lockout counter as the
sign-in form (wrong signature passwords lock the account too), audited as
``user.signature`` / ``user.signature_failed``. When a signature locks the account, the
viewer's session ends as well: someone at an unattended, signed-in PC cannot keep guessing.
"""

from __future__ import annotations

import functools

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from gateway.store import sessions
from gateway.store.sessions import EndReason
from gateway.store.signin import Attempt, SignIn, authenticate
from gateway.web.context import WebContext
from gateway.web.viewer import Viewer

#: the form field an action form's password comes in
PASSWORD_FIELD = "password"
#: a longer "password" is refused without hashing it (argon2 of megabytes costs the server)
PASSWORD_CHARS = 1024


async def confirm_signature(web: WebContext, viewer: Viewer, password: str) -> Attempt:
    """Check ``viewer``'s own ``password`` for a signature (outcome ``ok``, ``wrong``,
    ``locked``, ``disabled``, ``no_password``). A viewer who is not signed in, or an empty
    password, is ``wrong`` without an attempt counted."""
    if not viewer.authenticated or not password or len(password) > PASSWORD_CHARS:
        return Attempt(SignIn.WRONG, viewer.person)
    attempt = await run_in_threadpool(
        functools.partial(
            authenticate,
            web.engine,
            viewer.person,
            password,
            now=web.now(),
            policy=web.signin_policy,
            purpose="signature",
        )
    )
    if attempt.outcome is SignIn.LOCKED and viewer.session_id is not None:
        await web.write(
            functools.partial(sessions.end, session_id=viewer.session_id, reason=EndReason.LOCKED)
        )
    return attempt


def refusal_text(web: WebContext, request: Request, attempt: Attempt) -> str:
    """Why a signature was not accepted, in the reader's language ("" when it was)."""
    if attempt.ok:
        return ""
    tr = web.translator(request)
    if attempt.outcome is SignIn.LOCKED:
        why = tr.t("signin.locked", until=tr.when(attempt.locked_until), zone=web.zone.key)
    else:
        why = tr.t(f"signin.{attempt.outcome.value}")
    return tr.t("signature.refused", why=why)
