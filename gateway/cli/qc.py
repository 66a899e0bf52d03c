"""`trygg qc evaluate`: a QC series (CSV) through the Westgard engine exactly as it runs live."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from gateway.cli import eqa as eqa_cli
from gateway.cli.common import JsonFlag, console, err, print_json, say
from gateway.qc.series import Row, SeriesError, parse_series
from gateway.qc.westgard import (
    DEFAULT_RULES,
    RULE_NAMES,
    Control,
    RuleError,
    Run,
    RunResult,
    Target,
    evaluate_series,
    parse_rules,
)

app = typer.Typer(help="Quality control: Westgard rules over control series.", no_args_is_help=True)
app.command("export")(eqa_cli.qc_export)  # issue 11: the Noklus-style QC and EQA exports


def _bad(message: str) -> typer.Exit:
    err.print(f"[red]Error:[/] {message}", soft_wrap=True)
    return typer.Exit(2)


def parse_target(spec: str) -> tuple[str, Target]:
    """``LEVEL=MEAN,SD[,LOT]`` as given to --target."""
    level, sep, rest = spec.partition("=")
    parts = [p.strip() for p in rest.split(",")]
    try:
        if not sep or not level.strip() or len(parts) not in (2, 3):
            raise ValueError(spec)
        lot = parts[2] if len(parts) == 3 else ""
        return level.strip(), Target(float(parts[0]), float(parts[1]), lot)
    except ValueError:
        raise _bad(say("cli.qc.bad_target", spec=spec)) from None


def runs_from_rows(rows: list[Row], targets: dict[str, Target]) -> list[Run]:
    """Rows grouped into runs in the order each run first appears."""
    grouped: dict[str, dict[str, Control]] = {}
    for row in rows:
        target = targets.get(row.level)
        if target is None:
            raise _bad(say("cli.qc.no_target", line=row.line, level=row.level))
        grouped.setdefault(row.run, {})[row.level] = Control(row.value, target)
    return [Run(run_id, controls) for run_id, controls in grouped.items()]


def _result_json(result: RunResult, times: dict[str, datetime]) -> dict[str, Any]:
    stamp = times.get(result.run_id)
    return {
        "run": result.run_id,
        "time": stamp.isoformat() if stamp else None,
        "verdict": result.verdict,
        "violations": [
            {
                "rule": v.rule,
                "kind": v.kind,
                "error_type": v.error_type,
                "scope": v.scope,
                "levels": list(v.levels),
                "runs": list(v.runs),
            }
            for v in result.violations
        ],
    }


@app.command("evaluate")
def evaluate(
    file: Annotated[Path, typer.Argument(help="CSV with columns run, level, value[, time].")],
    target: Annotated[
        list[str], typer.Option("--target", help="LEVEL=MEAN,SD[,LOT]; once per level.")
    ],
    rules: Annotated[
        str, typer.Option("--rules", help="Rules as on Westgard's pages, comma-separated.")
    ] = DEFAULT_RULES,
    strict_r4s: Annotated[
        bool, typer.Option("--strict-r4s", help="R-4s needs one >= +2 SD and one <= -2 SD.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a control series run by run and print each run's violations."""
    try:
        chosen = parse_rules(rules, strict_r4s=strict_r4s)
    except RuleError as exc:
        raise _bad(say("cli.qc.bad_rule", name=exc.name, known=", ".join(RULE_NAMES))) from None
    targets = dict(parse_target(spec) for spec in target)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise _bad(say("cli.qc.unreadable", path=str(file), detail=exc.strerror or "")) from None
    try:
        rows = parse_series(text)
    except SeriesError as exc:
        problem = say(exc.key, detail=exc.detail)
        raise _bad(
            say("cli.qc.bad_line", line=exc.line, column=exc.column, problem=problem)
        ) from None
    results = evaluate_series(runs_from_rows(rows, targets), chosen)
    times: dict[str, datetime] = {}
    for row in rows:
        if row.time is not None:
            times.setdefault(row.run, row.time)
    rejected = sum(r.verdict == "reject" for r in results)
    warned = sum(r.verdict == "warning" for r in results)
    if as_json:
        print_json(
            {
                "rules": [r.name for r in chosen],
                "strict_r4s": strict_r4s,
                "runs": [_result_json(r, times) for r in results],
                "summary": {"runs": len(results), "rejected": rejected, "warnings": warned},
            }
        )
        return
    table = Table(box=box.SIMPLE_HEAD)
    for key in ("run", "verdict", "rule", "levels", "points"):
        table.add_column(say(f"cli.qc.col.{key}"))
    for result in results:
        for v in result.violations:
            table.add_row(
                escape(result.run_id),
                say(f"cli.qc.verdict.{result.verdict}"),
                v.rule,
                escape(", ".join(v.levels)),
                escape(", ".join(v.runs)),
            )
    if rejected or warned:
        console.print(table)
    console.print(say("cli.qc.summary", runs=len(results), rejected=rejected, warnings=warned))


# `trygg qc status | corrective | release-held` (gateway.cli.qc_lockout)
from gateway.cli import qc_lockout as _qc_lockout  # noqa: E402

_qc_lockout.register(app)

# issue 11: charts (the monthly QC report and statistics, gateway/cli/qc_report.py)
from gateway.cli import qc_report as _qc_report  # noqa: E402

app.command("report")(_qc_report.report)
app.command("stats")(_qc_report.stats)
