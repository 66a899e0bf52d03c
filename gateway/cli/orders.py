"""`trygg orders`: the worklist by hand: list, place and cancel orders per specimen and test."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from gateway.cli.common import ConfigOption, JsonFlag, console, err, load, open_store, print_json
from gateway.cli.orders_input import (
    ACTOR_MAX,
    PATIENT_MAX,
    PLACER_MAX,
    SPECIMEN_MAX,
    checked,
    note_unknown_tests,
    priority_code,
    test_codes,
)

if TYPE_CHECKING:
    from drivers.model import OrderRequest
    from gateway.orders.store import OrdersOutcome
    from gateway.store.writer import Tx

app = typer.Typer(
    help="The worklist: orders per specimen and test, answered to host queries.",
    no_args_is_help=True,
)

ORDER_STATES = ("open", "cancelled", "all")


def _open_lines(tx: Tx, specimen_id: str) -> frozenset[str]:
    """The specimen's open test codes."""
    from gateway.orders.store import open_orders

    return frozenset(
        code for order in open_orders(tx.conn, specimen_id) for code in order.test_codes
    )


def _place_by_hand(
    tx: Tx, request: OrderRequest, actor: str
) -> tuple[frozenset[str], OrdersOutcome | None]:
    """Place ``request``; refused (None) when the specimen is open for another patient."""
    from gateway.orders.store import OrderConflict, apply_orders

    open_before = _open_lines(tx, request.specimen_id)
    try:
        return open_before, apply_orders(tx, [request], actor=actor, reason="placed by hand")
    except OrderConflict:
        return open_before, None


def _cancel_by_hand(
    tx: Tx, request: OrderRequest, actor: str, reason: str
) -> tuple[frozenset[str], OrdersOutcome]:
    from gateway.orders.store import apply_orders

    return _open_lines(tx, request.specimen_id), apply_orders(
        tx, [request], actor=actor, reason=reason
    )


def _local_minute(value: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


@app.command("list")
def orders_list(
    config: ConfigOption,
    state: Annotated[str, typer.Option(help="open, cancelled or all.")] = "open",
    limit: Annotated[int, typer.Option(min=1, help="Newest N order lines.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List order lines (one per specimen and test), newest first; patient IDs masked."""
    from gateway.orders.store import list_orders

    if state not in ORDER_STATES:
        err.print("--state must be open, cancelled or all")
        raise typer.Exit(2)
    cfg = load(config)
    engine = open_store(cfg)
    with engine.connect() as conn:
        rows = list_orders(conn, state=None if state == "all" else state, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No order lines." if state == "all" else f"No {state} order lines.")
        return
    zone = ZoneInfo(cfg.site.timezone)
    # compact; the masked patient ID and the time never fold, the other columns may
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), caption=f"Times in {zone.key}.")
    for header in ("id", "specimen", "test", "prio", "patient", "state", "result", "placed", "by"):
        table.add_column(header, overflow="fold", no_wrap=header in ("patient", "placed"))
    for row in rows:
        table.add_row(
            str(row["id"]),
            escape(row["specimen_id"]),
            escape(row["test_code"]),
            row["priority"],
            row["patient"] or "-",
            row["state"],
            "yes" if row["resulted"] else "no",
            _local_minute(row["placed_at"], zone),
            escape(row["placed_by"]),
        )
    console.print(table)


@app.command("add")
def orders_add(
    specimen: Annotated[
        str, typer.Argument(metavar="SPECIMEN", help="Specimen ID (the tube's barcode).")
    ],
    tests: Annotated[
        list[str], typer.Argument(metavar="TEST...", help="Test codes, as the analyser knows them.")
    ],
    config: ConfigOption,
    by: Annotated[str, typer.Option("--by", help="Your name or user ID (audit log).")],
    patient: Annotated[
        str, typer.Option("--patient", help="Patient ID (fødselsnummer, D-number).")
    ] = "",
    priority: Annotated[str, typer.Option(help="S stat, A as soon as possible, R routine.")] = "R",
    placer: Annotated[str, typer.Option("--placer", help="The LIS's order number.")] = "",
) -> None:
    """Place an order by hand: the analyser gets these tests when it asks for the specimen."""
    from drivers.model import OrderAction, OrderRequest
    from gateway.national_id import mask
    from gateway.store.writer import run_in_transaction

    request = OrderRequest(
        OrderAction.NEW,
        checked(specimen, "SPECIMEN", SPECIMEN_MAX),
        test_codes(tests),
        patient_id=checked(patient, "--patient", PATIENT_MAX, required=False),
        priority=priority_code(priority),
        placer_order=checked(placer, "--placer", PLACER_MAX, required=False),
    )
    actor = checked(by, "--by", ACTOR_MAX)
    cfg = load(config)
    note_unknown_tests(cfg, request.test_codes)
    engine = open_store(cfg)
    open_before, outcome = run_in_transaction(
        engine, functools.partial(_place_by_hand, request=request, actor=actor)
    )
    name = escape(request.specimen_id)
    if outcome is None:
        err.print(
            f"[red]Not placed[/]: specimen {name} has open orders for another patient; "
            "check the barcode, or cancel those orders first"
        )
        raise typer.Exit(1)
    placed = [code for code in request.test_codes if code not in open_before]
    already = [code for code in request.test_codes if code in open_before]
    if placed:
        who = f", patient {mask(request.patient_id)}" if request.patient_id else ""
        console.print(
            f"[green]Placed[/] {len(placed)} test(s) for specimen {name}: "
            f"{escape(', '.join(placed))} (priority {request.priority}{who})"
        )
    if already:
        console.print(f"Already open, not placed again: {escape(', '.join(already))}")


@app.command("cancel")
def orders_cancel(
    specimen: Annotated[str, typer.Argument(metavar="SPECIMEN", help="Specimen ID.")],
    config: ConfigOption,
    by: Annotated[str, typer.Option("--by", help="Your name or user ID (audit log).")],
    tests: Annotated[
        list[str] | None,
        typer.Argument(metavar="[TEST]...", help="Tests to cancel (none: every open test)."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
) -> None:
    """Cancel open orders of a specimen; exit 1 when nothing was open."""
    from drivers.model import OrderAction, OrderRequest
    from gateway.store.writer import run_in_transaction

    request = OrderRequest(
        OrderAction.CANCEL, checked(specimen, "SPECIMEN", SPECIMEN_MAX), test_codes(tests)
    )
    actor = checked(by, "--by", ACTOR_MAX)
    engine = open_store(load(config))
    open_before, outcome = run_in_transaction(
        engine,
        functools.partial(
            _cancel_by_hand,
            request=request,
            actor=actor,
            reason=reason.strip() or "cancelled by hand",
        ),
    )
    name = escape(request.specimen_id)
    targets = request.test_codes or tuple(sorted(open_before))
    cancelled = [code for code in targets if code in open_before]
    not_open = [code for code in targets if code not in open_before]
    if not outcome.cancelled:
        asked = f" for {escape(', '.join(not_open))}" if not_open else ""
        err.print(f"[red]Nothing cancelled[/]: specimen {name} has no open order{asked}")
        raise typer.Exit(1)
    console.print(
        f"[green]Cancelled[/] {outcome.cancelled} test(s) of specimen {name}: "
        f"{escape(', '.join(cancelled))}"
    )
    if not_open:
        console.print(f"Not open, nothing to cancel: {escape(', '.join(not_open))}")
