"""The Levey-Jennings chart page, its SVG, comments on points and the monthly report pages,
through the app (TestClient) over a store holding a month of control values."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from gateway.catalogue import text
from gateway.config import Config
from gateway.people.roles import Role
from gateway.store.tables import audit, qc_comments
from gateway.web.app import create_app
from tests.gateway import qc_chart_data
from tests.web.conftest import LOCAL, sign_in

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

LEVEL1 = "/qc/chart?instrument=afinion-1&test=HBA1C&level=1&month=2026-12"


@pytest.fixture
def data(web_engine: Engine) -> qc_chart_data.Seeded:
    return qc_chart_data.seed(web_engine)


@pytest.fixture
def client(web_config: Config, web_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as test_client:
        yield test_client


def test_the_chart_page_shows_the_series_inline(
    client: TestClient, data: qc_chart_data.Seeded
) -> None:
    sign_in(client, Role.OPERATOR)
    page = client.get(LEVEL1)
    assert page.status_code == 200
    html = page.text
    assert text("nb", "qc.page.title") in html
    svg = html.split('<section class="card qc-chart"', 1)[1].split("</section>", 1)[0]
    assert "<svg" in svg and 'id="qc-sd-p3-0"' in svg and 'id="qc-sd-m2-1"' in svg
    assert len(re.findall(r'id="qc-point-\d+"', svg)) == 8
    assert f'id="qc-rule-{data.level1[4]}"' in svg and "2-2s" in svg
    assert "style=" not in svg and "<style" not in html  # the CSP allows no inline styles
    assert html.count("data-qc-result-id=") >= 16  # each point in the chart and the table
    # the other level is a choice of its own, with its own points
    level2 = client.get(LEVEL1.replace("level=1", "level=2")).text
    assert len(re.findall(r'id="qc-point-\d+"', level2)) == 3
    # a month without values: the chart says so; a bad month is refused
    assert text("nb", "qc.chart.empty") in client.get(LEVEL1.replace("2026-12", "2026-10")).text
    assert client.get(LEVEL1.replace("2026-12", "2026-13")).status_code == 400


def test_the_svg_alone(client: TestClient, data: qc_chart_data.Seeded) -> None:
    sign_in(client, Role.VERIFIER)
    answer = client.get(LEVEL1.replace("/qc/chart?", "/qc/chart.svg?"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.text.startswith("<svg") and 'id="qc-mean-0"' in answer.text
    missing = client.get("/qc/chart.svg?instrument=nowhere&test=X&level=9")
    assert missing.status_code == 404


def test_a_comment_on_a_point_is_attributed_audited_and_shown(
    client: TestClient, web_engine: Engine, data: qc_chart_data.Seeded
) -> None:
    signed = sign_in(client, Role.OPERATOR, person="ola")
    rejected = data.level1[4]
    answer = client.post(
        f"/qc/points/{rejected}/comment",
        data={"csrf": signed.csrf, "text": "Ny kalibrator brukt", "back": LEVEL1},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == LEVEL1
    page = client.get(LEVEL1).text
    assert text("nb", "qc.page.comment_done") in page
    title = page.split(f'id="qc-point-{rejected}"', 1)[1].split("</title>", 1)[0]
    assert "ola" in title and "Ny kalibrator brukt" in title
    with web_engine.connect() as conn:
        stored = conn.execute(select(qc_comments)).mappings().one()
        audited = conn.execute(select(audit).where(audit.c.action == "qc.comment")).mappings()
        rows = list(audited)
    assert (stored["qc_result_id"], stored["person"]) == (rejected, "ola")
    assert [(r["actor"], r["entity_id"]) for r in rows] == [("ola", str(rejected))]
    # never back to an address the form names elsewhere; nothing to say is refused
    elsewhere = client.post(
        f"/qc/points/{rejected}/comment",
        data={"csrf": signed.csrf, "text": "to", "back": "https://evil.example/"},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/qc/chart"
    empty = client.post(f"/qc/points/{rejected}/comment", data={"csrf": signed.csrf, "text": "  "})
    assert empty.status_code == 422
    unknown = client.post("/qc/points/99999/comment", data={"csrf": signed.csrf, "text": "x"})
    assert unknown.status_code == 404


def test_admin_may_not_comment_or_read_the_charts(
    client: TestClient, data: qc_chart_data.Seeded
) -> None:
    signed = sign_in(client, Role.ADMIN, person="root")
    assert client.get(LEVEL1).status_code == 403
    answer = client.post(
        f"/qc/points/{data.level1[0]}/comment", data={"csrf": signed.csrf, "text": "x"}
    )
    assert answer.status_code == 403


def test_the_monthly_report_as_html_and_pdf(client: TestClient, data: qc_chart_data.Seeded) -> None:
    sign_in(client, Role.QUALITY_MANAGER)
    page = client.get("/qc/report?month=2026-12")
    assert page.status_code == 200
    html = page.text
    assert text("nb", "qc.report.title", month="2026-12") in html
    assert 'href="/static/qc_report.css"' in html and "<style" not in html
    table = html.split('id="qc-stats"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 3  # the header and the two lots
    assert "42,500*" in table  # level 1's last target (it changed) in bokmål
    assert html.count("<svg") == 2  # a chart per series
    assert 'href="/qc/report.pdf?month=2026-12' in html
    css = client.get("/static/qc_report.css").text
    assert "@media print" in css and "@page" in css
    pdf = client.get("/qc/report.pdf?month=2026-12")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert client.get("/qc/report?month=december").status_code == 400
    other = client.get("/qc/report?month=2026-12&instrument=nowhere").text
    assert text("nb", "qc.report.empty") in other
