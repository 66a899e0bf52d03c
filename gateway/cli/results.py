"""`trygg results`: list and show patient results, and the signed actions on held ones.

``release``, ``correct``, ``override``, ``verify``, ``reject`` and ``cosign`` are electronic
signatures: each asks the signer's password (``TRYGG_PASSWORD`` in the environment for
scripts), checks it as the web does (``gateway.store.signin.authenticate``, purpose
"signature", with the same lockout), then runs the same store command as the web
(``gateway.holds``). Exit 0 when done, 1 when refused, 2 for bad input.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gateway.cli.common import ConfigOption, JsonFlag, console, err, load, open_store, print_json
from gateway.privacy import scrub, scrub_result

if TYPE_CHECKING:
    from gateway.holds import ActionOutcome
    from gateway.rules import RuleContext
    from gateway.store.writer import Tx

app = typer.Typer(help="Patient results.", no_args_is_help=True)


@app.command("list")
def results_list(
    config: ConfigOption,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this instrument.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N.")] = 50,
    show_patient: Annotated[
        bool, typer.Option("--show-patient-id", help="Show full patient IDs.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List recent results with their state and holds (patient IDs masked, also in free text)."""
    from gateway.catalogue import has, text
    from gateway.model import HoldReason
    from gateway.store.queries import list_results

    def reason_label(hold: dict[str, Any]) -> str:  # a code this version does not know: as is
        if hold["reason"] == HoldReason.TEST_MESSAGE:
            return str(hold["detail"])  # the whole reason: which field said test, and the fate
        key = f"reason.{hold['reason']}"
        return text("en", key) if has("en", key) else str(hold["reason"])

    engine = open_store(load(config))
    with engine.connect() as conn:
        rows = list_results(
            conn, state=state, instrument=instrument, limit=limit, show_patient=show_patient
        )
    if not show_patient:  # asked for patient IDs: free text as sent too
        rows = [scrub_result(r) for r in rows]
    if as_json:
        print_json(rows)
        return
    table = Table(
        "id", "instrument", "test", "value", "unit", "state", "holds", "operator", "patient"
    )
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["instrument"],
            r["test"],
            r["value"],
            r["unit"],
            r["state"],
            ", ".join(reason_label(h) for h in r["holds"] if not h["released"]),
            r["operator"],
            r["patient_id"],
        )
    console.print(table)


@app.command("show")
def results_show(
    result_id: int,
    config: ConfigOption,
    show_patient: Annotated[bool, typer.Option("--show-patient-id")] = False,
) -> None:
    """Show one result with its holds, signatures, corrections and outbox messages (JSON)."""
    from gateway.store.queries import get_result
    from gateway.store.signatures import corrections_for, signatures_for

    engine = open_store(load(config))
    with engine.connect() as conn:
        data = get_result(conn, result_id, show_patient=show_patient)
        if data is not None:
            data["signatures"] = signatures_for(conn, result_id)
            data["corrections"] = corrections_for(conn, result_id, show_patient=show_patient)
    if data is None:
        err.print(f"No result {result_id}")
        raise typer.Exit(1)
    if not show_patient:
        data = scrub_result(data)
        for signature in data["signatures"]:
            signature["comment"] = scrub(signature["comment"])
        for correction in data["corrections"]:
            correction["reason"] = scrub(correction["reason"])
    print_json(data)


# --- the signed actions ----------------------------------------------------------------------

_SIGNING = (
    " Asks your password: this is an electronic signature (meaning, time and person are"
    " recorded). Scripts set TRYGG_PASSWORD in the environment instead of typing it."
    " Exit 0 when done, 1 when refused, 2 for bad input."
)
UserOption = Annotated[
    str,
    typer.Option(
        "--user",
        "--by",
        help="Who signs: your user (person ID). --by is the older name, still accepted.",
    ),
]
Action = Callable[["Tx", "RuleContext"], "ActionOutcome"]


def _sign(config: Path, person: str, action: Action) -> None:
    """Check ``person``'s password, run ``action`` in a transaction, print its outcome."""
    from gateway.cli.common import check_signature
    from gateway.rules import context_from_config
    from gateway.store.writer import run_in_transaction

    cfg = load(config)
    engine = open_store(cfg)
    check_signature(cfg, engine, person)
    context = context_from_config(cfg)
    outcome = run_in_transaction(engine, lambda tx: action(tx, context))
    message = escape(outcome.message("en"))
    if outcome.done:
        console.print(f"[green]Signed[/]: {message}", soft_wrap=True)
        return
    err.print(f"[red]Refused[/]: {message}", soft_wrap=True)
    raise typer.Exit(2 if outcome.bad_input else 1)


@app.command(
    "release", help="Release a held result with a note; it is then queued for the LIS." + _SIGNING
)
def results_release(
    result_id: int,
    config: ConfigOption,
    user: UserOption,
    note: Annotated[str, typer.Option("--note", help="Why it may go to the LIS (required).")],
) -> None:
    from gateway.holds import release

    _sign(config, user, lambda tx, ctx: release(tx, result_id, user, note=note, context=ctx))


class Field(enum.StrEnum):
    PATIENT_ID = "patient_id"
    SPECIMEN_ID = "specimen_id"


@app.command(
    "correct",
    help="Correct a held result's patient ID or specimen ID (the original is kept); the rules"
    " run again, and a valid new patient ID ends the patient-ID hold." + _SIGNING,
)
def results_correct(
    result_id: int,
    config: ConfigOption,
    user: UserOption,
    field: Annotated[Field, typer.Option("--field", help="What to correct.")],
    value: Annotated[str, typer.Option("--value", help="The new value.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. the label says so).")],
) -> None:
    from gateway.holds import correct

    _sign(
        config,
        user,
        lambda tx, ctx: correct(
            tx, result_id, user, field=field.value, new_value=value, reason=reason, context=ctx
        ),
    )


@app.command(
    "override",
    help="Override an uncertified operator's hold with a reason (supervisor or quality"
    " manager, not the performer)." + _SIGNING,
)
def results_override(
    result_id: int,
    config: ConfigOption,
    user: UserOption,
    reason: Annotated[str, typer.Option("--reason", help="Why it may go out all the same.")],
) -> None:
    from gateway.holds import override

    _sign(config, user, lambda tx, ctx: override(tx, result_id, user, reason=reason, context=ctx))


@app.command(
    "verify",
    help="Verify a visual reading or manual entry (a verifier certified for the task, not the"
    " performer). With --value-read your own reading is compared: another value discards the"
    " result and records a deviation." + _SIGNING,
)
def results_verify(
    result_id: int,
    config: ConfigOption,
    user: UserOption,
    value_read: Annotated[
        str | None, typer.Option("--value-read", help="Your own reading of the sample.")
    ] = None,
    comment: Annotated[str, typer.Option("--comment", help="A comment.")] = "",
) -> None:
    from gateway.holds import verify

    _sign(
        config,
        user,
        lambda tx, ctx: verify(
            tx, result_id, user, context=ctx, value_read=value_read, comment=comment
        ),
    )


@app.command(
    "reject",
    help="Reject a visual reading or manual entry with a comment: it is discarded and a"
    " deviation goes to the quality manager." + _SIGNING,
)
def results_reject(
    result_id: int,
    config: ConfigOption,
    user: UserOption,
    comment: Annotated[str, typer.Option("--comment", help="What is wrong (required).")],
) -> None:
    from gateway.holds import reject

    _sign(config, user, lambda tx, ctx: reject(tx, result_id, user, comment=comment, context=ctx))


@app.command(
    "cosign",
    help="Co-sign a trainee's result (a supervisor certified for the task); whether you were"
    " signed in when the trainee worked is recorded." + _SIGNING,
)
def results_cosign(
    result_id: int,
    config: ConfigOption,
    user: UserOption,
    comment: Annotated[str, typer.Option("--comment", help="A comment.")] = "",
) -> None:
    from gateway.holds import cosign

    _sign(config, user, lambda tx, ctx: cosign(tx, result_id, user, context=ctx, comment=comment))
