"""`trygg eqa`: EQA (EKV) rounds and split samples; and `trygg qc export`, the Noklus-style
QC and EQA exports (registered in ``gateway.cli.qc``).

Every command that writes names its person with ``--user`` and asks their password (an
electronic signature: ``TRYGG_PASSWORD`` for scripts); the store checks their roles
(``gateway.qc.eqa.EQA_MANAGERS`` / ``EQA_ENTRY``). Exit 0 done, 1 refused, 2 bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from gateway.cli.common import (
    ConfigOption,
    JsonFlag,
    check_signature,
    console,
    err,
    load,
    open_store,
    print_json,
    say,
)

if TYPE_CHECKING:
    from gateway.store.writer import Tx

T = TypeVar("T")

app = typer.Typer(help="EQA (EKV) rounds, their answers and assessments, split samples.")

UserOption = Annotated[str, typer.Option("--user", help="Who acts (signs with the password).")]


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        err.print(f"[red]Error:[/] {say('cli.eqa.bad_day', day=text)}")
        raise typer.Exit(2) from None


def _signed(config: Path, user: str, job: Callable[[Tx], T]) -> T:
    """Check ``user``'s password, run ``job``; a refusal exits 1 with its reason."""
    from gateway.qc.eqa import EqaRuleError
    from gateway.store.writer import run_in_transaction

    cfg = load(config)
    engine = open_store(cfg)
    try:
        check_signature(cfg, engine, user)
        try:
            return run_in_transaction(engine, job)
        except EqaRuleError as refused:
            err.print(f"[red]Refused[/]: {say(f'eqa.refused.{refused.code}')}")
            raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _sample_id(config: Path, round_id: int, sample: str, test: str) -> int:
    from gateway.store.eqa import sample_ids

    cfg = load(config)
    engine = open_store(cfg)
    try:
        with engine.connect() as conn:
            found = sample_ids(conn, round_id).get((sample, test))
    finally:
        engine.dispose()
    if found is None:
        err.print(f"[red]Error:[/] {say('cli.eqa.no_sample', sample=sample, test=test)}")
        raise typer.Exit(2)
    return found


@app.command("list")
def eqa_list(
    config: ConfigOption,
    round_id: Annotated[
        int | None, typer.Option("--round", help="One round, with samples.")
    ] = None,
    splits: Annotated[bool, typer.Option("--splits", help="The split samples instead.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The rounds (newest first), one round's samples, or the split samples."""
    from gateway.store import eqa as store

    cfg = load(config)
    engine = open_store(cfg)
    data: Any
    with engine.connect() as conn:
        if splits:
            data = store.list_splits(conn)
        elif round_id is not None:
            data = store.get_round(conn, round_id)
        else:
            data = store.list_rounds(conn)
    engine.dispose()
    if data is None:
        err.print(f"[red]Error:[/] {say('eqa.refused.not_found')}")
        raise typer.Exit(1)
    if as_json:
        print_json(data)
        return
    table = Table(box=box.SIMPLE_HEAD)
    rows = data["samples"] if isinstance(data, dict) else data
    keys = (
        ("id", "instrument", "test", "sample", "difference_percent", "within")
        if splits
        else ("id", "sample", "test", "value", "unit", "trueness", "accuracy", "precision")
        if round_id is not None
        else ("id", "scheme", "shipment", "instrument", "state", "due_on", "samples", "poor")
    )
    for key in keys:
        table.add_column(key)
    for row in rows:
        table.add_row(*(escape(str(row.get(k, ""))) for k in keys))
    console.print(table)


@app.command("add")
def eqa_add(
    config: ConfigOption,
    user: UserOption,
    scheme: Annotated[str, typer.Option("--scheme", help='E.g. "Noklus HbA1c".')],
    shipment: Annotated[str, typer.Option("--shipment", help="The programme's round code.")],
    instrument: Annotated[str, typer.Option("--instrument", help="The instrument's ID.")],
    sample: Annotated[
        list[str] | None, typer.Option("--sample", help="LABEL:TEST, once per sample.")
    ] = None,
    provider: Annotated[str, typer.Option("--provider")] = "Noklus",
    received: Annotated[str | None, typer.Option("--received", help="YYYY-MM-DD.")] = None,
    due: Annotated[str | None, typer.Option("--due", help="YYYY-MM-DD.")] = None,
) -> None:
    """Register a round (quality manager or supervisor)."""
    from gateway.store.eqa import register_round

    cfg = load(config)
    if instrument not in {i.id for i in cfg.instruments}:
        err.print(f"[red]Error:[/] {say('eqa.refused.unknown_instrument')}")
        raise typer.Exit(2)
    samples = []
    for spec in sample or []:
        label, sep, test = spec.partition(":")
        if not sep or not label.strip() or not test.strip():
            err.print(f"[red]Error:[/] {say('cli.eqa.bad_sample', spec=spec)}")
            raise typer.Exit(2)
        samples.append((label.strip(), test.strip()))
    received_on, due_on = _day(received), _day(due)
    round_id = _signed(
        config,
        user,
        lambda tx: register_round(
            tx,
            scheme=scheme,
            shipment=shipment,
            instrument_id=instrument,
            provider=provider,
            received_on=received_on,
            due_on=due_on,
            samples=samples,
            actor=user,
        ),
    )
    console.print(say("cli.eqa.registered", id=round_id))


@app.command("sample")
def eqa_sample(
    round_id: int,
    config: ConfigOption,
    user: UserOption,
    sample: Annotated[str, typer.Option("--sample", help="The sample's label.")],
    test: Annotated[str, typer.Option("--test", help="The test code.")],
    specimen: Annotated[
        str | None, typer.Option("--specimen", help="Link the result of this specimen ID.")
    ] = None,
    value: Annotated[str | None, typer.Option("--value", help="Type the value in.")] = None,
    unit: Annotated[str | None, typer.Option("--unit")] = None,
) -> None:
    """Add a sample to a round (without --specimen/--value), or link or enter its value."""
    from gateway.store import eqa as store

    if specimen is None and value is None:
        _signed(
            config,
            user,
            lambda tx: store.add_sample(
                tx, round_id, sample=sample, test_code=test, unit=unit or "", actor=user
            ),
        )
        console.print(say("cli.eqa.sample_added", sample=sample, test=test))
        return
    sample_id = _sample_id(config, round_id, sample, test)
    if specimen is not None:
        _signed(
            config,
            user,
            lambda tx: store.link_sample(tx, sample_id, specimen_id=specimen, actor=user),
        )
    else:
        assert value is not None
        _signed(
            config,
            user,
            lambda tx: store.enter_value(tx, sample_id, value=value, unit=unit, actor=user),
        )
    console.print(say("cli.eqa.value_set", sample=sample, test=test))


@app.command("answer")
def eqa_answer(
    round_id: int,
    config: ConfigOption,
    user: UserOption,
    comment: Annotated[str, typer.Option("--comment")] = "",
) -> None:
    """Sign that the round's values were answered to the programme (registered -> answered)."""
    from gateway.store.eqa import answer_round

    signature = _signed(
        config, user, lambda tx: answer_round(tx, round_id, actor=user, comment=comment)
    )
    console.print(say("cli.eqa.answered", id=round_id, signature=signature))


@app.command("assess")
def eqa_assess(
    round_id: int,
    config: ConfigOption,
    user: UserOption,
    sample: Annotated[str, typer.Option("--sample")],
    test: Annotated[str, typer.Option("--test")],
    trueness: Annotated[str, typer.Option("--trueness", help="good|acceptable|poor")] = "",
    accuracy: Annotated[str, typer.Option("--accuracy", help="good|acceptable|poor")] = "",
    precision: Annotated[str, typer.Option("--precision", help="good|acceptable|poor")] = "",
    target: Annotated[str, typer.Option("--target", help="The programme's target.")] = "",
    note: Annotated[str, typer.Option("--note")] = "",
) -> None:
    """Record the programme's assessment of one sample (quality manager or supervisor); a
    poor grade opens a deviation."""
    from gateway.qc.eqa import EqaRuleError, assessment
    from gateway.store.eqa import assess_sample

    try:
        grades = assessment(trueness, accuracy, precision)
    except EqaRuleError as bad:
        err.print(f"[red]Error:[/] {say(f'eqa.refused.{bad.code}')}")
        raise typer.Exit(2) from None
    sample_id = _sample_id(config, round_id, sample, test)
    done = _signed(
        config,
        user,
        lambda tx: assess_sample(
            tx, sample_id, grades=grades, target_value=target, note=note, actor=user
        ),
    )
    console.print(say("cli.eqa.assessed", state=done.round_state.value))
    if done.deviation_id is not None:
        console.print(say("cli.eqa.deviation", id=done.deviation_id))


@app.command("split")
def eqa_split(
    config: ConfigOption,
    user: UserOption,
    instrument: Annotated[str, typer.Option("--instrument")],
    test: Annotated[str, typer.Option("--test")],
    central: Annotated[str, typer.Option("--central", help="The central lab's value.")],
    sample: Annotated[str, typer.Option("--sample", help="The sample's label.")] = "",
    local: Annotated[str, typer.Option("--local", help="The value measured here.")] = "",
    specimen: Annotated[
        str, typer.Option("--specimen", help="Or: take the result of this specimen ID.")
    ] = "",
    measured_on: Annotated[str | None, typer.Option("--measured-on", help="YYYY-MM-DD.")] = None,
) -> None:
    """Record a split sample against the central lab; outside the test's allowed difference
    (`split_allowed_percent`, default 20 %) opens a deviation."""
    from gateway.qc.noklus_export import find_test
    from gateway.store.eqa import record_split

    cfg = load(config)
    found = find_test(cfg, instrument, test)
    allowed = found.split_allowed_percent if found else None
    day = _day(measured_on)
    done = _signed(
        config,
        user,
        lambda tx: record_split(
            tx,
            instrument_id=instrument,
            test_code=test,
            sample=sample,
            local_value=local,
            specimen_id=specimen,
            central_value=central,
            allowed_percent=allowed,
            measured_on=day,
            actor=user,
        ),
    )
    judged = done.judgement
    key = "cli.eqa.split_within" if judged.within else "cli.eqa.split_outside"
    console.print(say(key, difference=judged.difference_text, allowed=judged.allowed_percent))
    if done.deviation_id is not None:
        console.print(say("cli.eqa.deviation", id=done.deviation_id))


def qc_export(
    config: ConfigOption,
    kind: Annotated[str, typer.Option("--kind", help="qc (internal QC) or eqa.")],
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    last: Annotated[str, typer.Option("--to", help="Last day (included), YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx.")] = "csv",
    instrument: Annotated[str, typer.Option("--instrument", help="One instrument.")] = "",
    decimal: Annotated[str, typer.Option("--decimal", help="comma or point (CSV).")] = "comma",
) -> None:
    """Export internal QC or EQA for a period as CSV or XLSX (columns: README, "QC and EQA
    exports (Noklus)")."""
    if kind not in ("qc", "eqa") or fmt not in ("csv", "xlsx") or decimal not in ("comma", "point"):
        err.print(f"[red]Error:[/] {say('cli.eqa.bad_export')}")
        raise typer.Exit(2)
    start_day, end_day = _day(first), _day(last)
    assert start_day is not None and end_day is not None
    if end_day < start_day:
        err.print(f"[red]Error:[/] {say('cli.eqa.bad_period')}")
        raise typer.Exit(2)
    from gateway.store.qc_export import export_file

    cfg = load(config)
    engine = open_store(cfg)
    try:
        with engine.connect() as conn:
            data, n = export_file(
                conn,
                cfg,
                kind=kind,
                first=start_day,
                last=end_day,
                instrument=instrument,
                fmt=fmt,
                decimal=decimal,
            )
    finally:
        engine.dispose()
    out.write_bytes(data)
    console.print(say("cli.eqa.exported", rows=n, path=str(out)))
