"""`trygg qc report` (the monthly QC report as PDF or HTML) and `trygg qc stats` (the month's
statistics per instrument, test, level and lot)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from gateway.catalogue import FALLBACK_LANGUAGE
from gateway.cli.common import (
    ConfigOption,
    JsonFlag,
    console,
    err,
    load,
    open_store,
    print_json,
    say,
)
from gateway.qc import report as qc_report
from gateway.qc.stats import Month
from gateway.store import qc_history

MonthOption = Annotated[str, typer.Option("--month", help="The month, YYYY-MM.")]
InstrumentOption = Annotated[str, typer.Option("--instrument", help="Only this instrument.")]


def _built(
    config_path: Path, month: str, instrument: str
) -> tuple[qc_report.MonthReport, ZoneInfo, str]:
    try:
        chosen = Month.parse(month)
    except ValueError:
        err.print(f"[red]Error:[/] {say('cli.qc.bad_month', month=month)}")
        raise typer.Exit(2) from None
    config = load(config_path)
    zone = ZoneInfo(config.site.timezone)
    engine = open_store(config)
    try:
        with engine.connect() as conn:
            points = qc_history.month_points(
                conn, *chosen.bounds(zone), instrument=instrument or None
            )
    finally:
        engine.dispose()
    lang = config.site.language or FALLBACK_LANGUAGE
    return qc_report.build(chosen, points, datetime.now(UTC), instrument), zone, lang


def report(
    config: ConfigOption,
    month: MonthOption,
    instrument: InstrumentOption = "",
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write the PDF here.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML here.")] = None,
) -> None:
    """The monthly QC report (statistics and Levey-Jennings charts) as PDF or HTML."""
    if (pdf is None) == (html is None):
        err.print(f"[red]Error:[/] {say('cli.qc.report.need_output')}")
        raise typer.Exit(2)
    built, zone, lang = _built(config, month, instrument)
    from gateway.web import i18n
    from gateway.web.context import template_environment
    from gateway.web.routes.qc_chart import REPORT_CSS, render_report

    tr = i18n.Translator(lang, zone)
    if pdf is not None:
        pdf.write_bytes(qc_report.report_pdf(built, tr.t, tr.when, lang, zone))
        target = pdf
    else:
        assert html is not None
        css = REPORT_CSS.read_text(encoding="utf-8")
        html.write_text(
            render_report(template_environment(), tr, built, inline_css=css), encoding="utf-8"
        )
        target = html
    console.print(
        say(
            "cli.qc.report.written",
            path=str(target),
            series=len(built.series),
            rows=len(built.rows),
        )
    )


def stats(
    config: ConfigOption,
    month: MonthOption,
    instrument: InstrumentOption = "",
    json: JsonFlag = False,
) -> None:
    """The month's QC statistics: n, mean, SD, CV % and bias % per instrument, test, level, lot."""
    built, _zone, _lang = _built(config, month, instrument)
    if json:
        print_json(qc_report.stats_json(built.rows))
        return
    table = Table(title=say("cli.qc.stats.title", month=str(built.month)))
    for column in qc_report.STATS_COLUMNS:
        table.add_column(column)
    for row in built.rows:
        table.add_row(*qc_report.stats_cells(row, "en"))
    console.print(table)
