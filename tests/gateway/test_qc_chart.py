"""The Levey-Jennings chart and the monthly report from stored control values: the SD lines,
the target change, points coloured by verdict, the 2-2s marked by name, a comment in the point's
SVG title, and a PDF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from gateway.catalogue import text
from gateway.qc import chart
from gateway.qc import report as qc_report
from gateway.qc.points import SeriesKey
from gateway.qc.stats import Month
from gateway.store import qc_history
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import audit
from gateway.store.writer import run_in_transaction
from gateway.web import i18n
from tests.gateway import qc_chart_data

OSLO = ZoneInfo("Europe/Oslo")
LEVEL1 = SeriesKey(qc_chart_data.INSTRUMENT, qc_chart_data.TEST, "1")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """On SQLite and on PostgreSQL."""
    store = make_engine(store_url)
    upgrade(store)
    yield store
    store.dispose()


def group(svg: str, gid: str) -> str:
    """The SVG group with id ``gid``, up to its first closing tag."""
    return svg.split(f'<g id="{gid}"', 1)[1].split("</g>", 1)[0]


def level1_svg(engine: Engine, lang: str = "nb") -> str:
    tr = i18n.Translator(lang, OSLO)
    with engine.connect() as conn:
        points = qc_history.series_points(conn, LEVEL1)
    series = qc_report.Series(LEVEL1, "mmol/mol", ("L1",), tuple(points))
    return qc_report.series_svg(series, tr.t, tr.when, lang, OSLO)


def test_the_chart_has_the_sd_lines_the_target_change_and_the_rule(engine: Engine) -> None:
    seeded = qc_chart_data.seed(engine)
    svg = level1_svg(engine)
    assert svg.startswith("<svg")
    # both targets' mean and ±1/2/3 SD lines: a break where the target changed
    for segment in (0, 1):
        assert f'id="qc-mean-{segment}"' in svg
        for k in (1, 2, 3):
            assert f'id="qc-sd-p{k}-{segment}"' in svg and f'id="qc-sd-m{k}-{segment}"' in svg
    assert svg.count('id="qc-target-change"') == 1
    assert text("nb", "qc.chart.target_change") in svg
    assert len(re.findall(r'<g id="qc-point-\d+"', svg)) == 8
    # the 2-2s marked beside the rejected point, the 1-2s beside the warning
    rejected, warned = seeded.level1[4], seeded.level1[3]
    assert "2-2s" in group(svg, f"qc-rule-{rejected}")
    assert "1-2s" in group(svg, f"qc-rule-{warned}")
    assert f'id="qc-rule-{seeded.level1[0]}"' not in svg  # an accepted point has no mark
    # coloured by verdict: the rejected point red, an accepted one green
    red, _ = chart.VERDICT_STYLE["reject"]
    green, _ = chart.VERDICT_STYLE["accept"]
    point = group(svg, f"qc-point-{rejected}")
    assert red in point and green not in point
    assert green in group(svg, f"qc-point-{seeded.level1[0]}")
    # the y axis names the test and unit; the legend uses the catalogue's verdicts
    assert "HBA1C (mmol/mol)" in svg
    assert text("nb", "qc.verdict.reject") in svg and text("nb", "qc.verdict.warning") in svg


def test_a_comment_is_in_the_points_title_and_audited(engine: Engine) -> None:
    seeded = qc_chart_data.seed(engine)
    rejected = seeded.level1[4]
    comment_id = run_in_transaction(
        engine,
        lambda tx: qc_history.add_comment(
            tx, rejected, "siri", "Ny reagenspakke <åpnet>, kalibrert på nytt"
        ),
    )
    svg = level1_svg(engine)
    title = group(svg, f"qc-point-{rejected}").split("</title>", 1)[0]
    assert re.match(r"[^>]*>\s*<title>", title), title  # the point's own first child
    assert "siri" in title and "Ny reagenspakke &lt;åpnet&gt;, kalibrert på nytt" in title
    assert "2-2s" in title and "kari" in title  # the rule and who performed it
    assert "&lt;åpnet&gt;" in svg and "<åpnet>" not in svg  # escaped, never markup
    with engine.connect() as conn:
        row = conn.execute(select(audit).where(audit.c.action == "qc.comment")).mappings().one()
    assert (row["actor"], row["entity"], row["entity_id"]) == ("siri", "qc_result", str(rejected))
    assert str(comment_id) in row["after"]


def test_a_comment_needs_a_point_and_words(engine: Engine) -> None:
    with pytest.raises(qc_history.NoSuchControl):
        run_in_transaction(engine, lambda tx: qc_history.add_comment(tx, 999, "siri", "hei"))
    seeded = qc_chart_data.seed(engine)
    with pytest.raises(ValueError):
        run_in_transaction(
            engine, lambda tx: qc_history.add_comment(tx, seeded.level1[0], "siri", "   ")
        )


def test_the_monthly_report_pdf(engine: Engine) -> None:
    qc_chart_data.seed(engine)
    tr = i18n.Translator("nb", OSLO)
    month = Month.parse("2026-12")
    with engine.connect() as conn:
        points = qc_history.month_points(conn, *month.bounds(OSLO))
    built = qc_report.build(month, points, qc_chart_data.T0)
    assert [s.key.level for s in built.series] == ["1", "2"]
    data = qc_report.report_pdf(built, tr.t, tr.when, "nb", OSLO)
    assert data.startswith(b"%PDF")
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") >= 1 or b"/Page" in data
    cells = qc_report.stats_cells(built.rows[0], "nb")
    assert cells[:5] == ["afinion-1", "HBA1C", "1", "L1", "8"]
    assert cells[8] == "42,500*"  # bokmål decimal comma; * the target changed


def test_an_empty_chart_says_so() -> None:
    texts = chart.ChartTexts("t", "y", "x", "m", "SD", "ny", "Ingen verdier")
    assert "Ingen verdier" in chart.svg([], texts, {})
