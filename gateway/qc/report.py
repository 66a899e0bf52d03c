"""The monthly QC report: the month's statistics per instrument, test, level and lot, and a
Levey-Jennings chart per series, as data for the HTML page and as a PDF (pure apart from
matplotlib drawing in memory).

Every text comes through ``t`` (the catalogue in the reader's language), times through
``when`` (the site's zone): the same report reads the same in the web page, the CLI and print.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from gateway.qc import chart
from gateway.qc.points import QcPoint, SeriesKey, by_series
from gateway.qc.stats import Month, MonthStats, month_stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the verdicts a legend may name
VERDICTS = ("accept", "warning", "reject", "no_target", "pass", "fail", "")


class Texts(Protocol):
    """A catalogue lookup in the reader's language (``i18n.Translator.t``)."""

    def __call__(self, key: str, **params: object) -> str: ...


@dataclass(frozen=True, slots=True)
class Series:
    """One series of the month: its points in time order and the chart of them."""

    key: SeriesKey
    unit: str
    lots: tuple[str, ...]
    points: tuple[QcPoint, ...]


@dataclass(frozen=True, slots=True)
class MonthReport:
    month: Month
    instrument: str  # "" : every instrument
    rows: tuple[MonthStats, ...]
    series: tuple[Series, ...]
    generated_at: datetime


def build(
    month: Month, points: Sequence[QcPoint], generated_at: datetime, instrument: str = ""
) -> MonthReport:
    """The report of ``points`` (the month's, as ``qc_history.month_points`` reads them)."""
    grouped = by_series(points)
    series = [
        Series(
            key,
            next((p.unit for p in reversed(group) if p.unit), ""),
            tuple(dict.fromkeys(p.lot for p in group if p.lot)),
            tuple(group),
        )
        for key, group in sorted(
            grouped.items(), key=lambda kv: (kv[0].instrument_id, kv[0].test_code, kv[0].level)
        )
    ]
    return MonthReport(month, instrument, tuple(month_stats(points)), tuple(series), generated_at)


def decimal(value: float | None, lang: str, digits: int = 2) -> str:
    """A number as the reader writes it (bokmål: decimal comma); "–" for none."""
    if value is None:
        return "–"
    shown = f"{value:.{digits}f}"
    return shown.replace(".", ",") if lang == "nb" else shown


def verdict_label(t: Texts, verdict: str) -> str:
    return t(f"qc.verdict.{verdict or 'none'}")


def chart_texts(
    t: Texts, key: SeriesKey, unit: str, lots: Sequence[str], zone: ZoneInfo
) -> chart.ChartTexts:
    """The chart's texts for one series from the catalogue."""
    return chart.ChartTexts(
        title=t(
            "qc.chart.title",
            test=key.test_code,
            level=key.level or "–",
            instrument=key.instrument_id,
            lots=", ".join(lots) or "–",
        ),
        y_label=t("qc.chart.y_label", test=key.test_code, unit=unit or "–"),
        x_label=t("qc.chart.x_label"),
        mean=t("qc.chart.mean"),
        sd=t("qc.chart.sd"),
        target_change=t("qc.chart.target_change"),
        empty=t("qc.chart.empty"),
        commented=t("qc.chart.commented"),
        verdicts={v: verdict_label(t, v) for v in VERDICTS},
        tick=lambda at: at.astimezone(zone).strftime("%d.%m"),
    )


def point_title(point: QcPoint, t: Texts, when: Callable[[datetime], str], lang: str) -> str:
    """A point's tooltip: when, value, lot, verdict and z, the rules, who, the comments."""
    lines = [
        t(
            "qc.chart.point",
            when=when(point.at),
            value=point.value_text,
            unit=point.unit,
            lot=point.lot or "–",
            verdict=verdict_label(t, point.verdict),
        )
    ]
    if point.z is not None:
        lines.append(t("qc.chart.point_z", z=decimal(point.z, lang)))
    if point.violations:
        rules = ", ".join(dict.fromkeys(v.rule for v in point.violations))
        lines.append(t("qc.chart.point_rules", rules=rules))
    if point.performed_by:
        lines.append(t("qc.chart.point_by", person=point.performed_by))
    for comment in point.comments:
        lines.append(
            t(
                "qc.chart.point_comment",
                person=comment.person,
                when=when(comment.at),
                text=comment.text,
            )
        )
    return "\n".join(lines)


def series_svg(
    series: Series, t: Texts, when: Callable[[datetime], str], lang: str, zone: ZoneInfo
) -> str:
    titles = {p.qc_result_id: point_title(p, t, when, lang) for p in series.points}
    texts = chart_texts(t, series.key, series.unit, series.lots, zone)
    return chart.svg(series.points, texts, titles)


STATS_COLUMNS = (
    "instrument",
    "test",
    "level",
    "lot",
    "n",
    "mean",
    "sd",
    "cv",
    "target_mean",
    "bias",
    "warnings",
    "rejects",
)


def stats_cells(row: MonthStats, lang: str) -> list[str]:
    """One statistics row as the report prints it (the columns of ``STATS_COLUMNS``)."""
    return [
        row.instrument_id,
        row.test_code,
        row.level or "–",
        row.lot or "–",
        str(row.n),
        decimal(row.mean, lang, 3),
        decimal(row.sd, lang, 3),
        decimal(row.cv_percent, lang, 1),
        decimal(row.target_mean, lang, 3) + ("*" if row.targets > 1 else ""),
        decimal(row.bias_percent, lang, 1),
        str(row.warnings),
        str(row.rejects),
    ]


def stats_json(rows: Sequence[MonthStats]) -> list[dict[str, Any]]:
    """The rows as JSON-ready objects (``trygg qc stats --json``)."""
    return [
        {
            "instrument": r.instrument_id,
            "test": r.test_code,
            "level": r.level,
            "lot": r.lot,
            "unit": r.unit,
            "n": r.n,
            "mean": r.mean,
            "sd": r.sd,
            "cv_percent": r.cv_percent,
            "target_mean": r.target_mean,
            "target_sd": r.target_sd,
            "bias_percent": r.bias_percent,
            "targets": r.targets,
            "warnings": r.warnings,
            "rejects": r.rejects,
            "first_at": r.first_at.isoformat() if r.first_at else None,
            "last_at": r.last_at.isoformat() if r.last_at else None,
        }
        for r in rows
    ]


def _table_page(
    report: MonthReport, t: Texts, when: Callable[[datetime], str], lang: str
) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.69, 8.27))  # A4 landscape
    fig.text(0.04, 0.95, t("qc.report.title", month=str(report.month)), fontsize=15, weight="bold")
    fig.text(
        0.04,
        0.915,
        t(
            "qc.report.scope",
            instrument=report.instrument or t("qc.report.all_instruments"),
            generated=when(report.generated_at),
        ),
        fontsize=9,
    )
    ax = fig.add_axes((0.04, 0.08, 0.92, 0.8))
    ax.axis("off")
    if not report.rows:
        ax.text(0, 0.95, t("qc.report.empty"), fontsize=10, va="top")
        return fig
    table = ax.table(
        cellText=[stats_cells(r, lang) for r in report.rows],
        colLabels=[t(f"qc.stats.col.{c}") for c in STATS_COLUMNS],
        loc="upper left",
        cellLoc="right",
        colLoc="right",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.3)
    fig.text(0.04, 0.04, t("qc.report.footnote"), fontsize=7)
    return fig


def report_pdf(
    report: MonthReport, t: Texts, when: Callable[[datetime], str], lang: str, zone: ZoneInfo
) -> bytes:
    """The report as a PDF: the statistics, then a page per series' chart."""
    figures: list[Any] = [_table_page(report, t, when, lang)]
    for series in report.series:
        texts = chart_texts(t, series.key, series.unit, series.lots, zone)
        figures.append(chart.figure(series.points, texts, width=11.69, height=8.27))
    return chart.pdf(figures, {"Title": t("qc.report.title", month=str(report.month))})
