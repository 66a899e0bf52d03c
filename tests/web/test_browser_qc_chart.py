"""The Levey-Jennings chart in real headless Debian Chromium: a month of HbA1c controls with a
2-2s rejection, drawn as inline SVG (the page's Content-Security-Policy allows no inline
style, so the chart must render from the SVG's own attributes); an operator comments on the
rejected point and the comment is shown on the point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import Engine

from gateway.app import register_instruments
from gateway.config import Config
from gateway.people.roles import Role
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from tests.gateway import qc_chart_data
from tests.web.conftest import PASSWORD, SCREENSHOTS, T0, add_person, serving
from tests.web.test_browser import CHROMIUM_ARGS, VIEWPORT, chromium_path, sign_in_with_the_form

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LEVEL1 = "/qc/chart?instrument=afinion-1&test=HBA1C&level=1&month=2026-12"


@pytest.fixture
def page(
    web_config: Config, web_engine: Engine
) -> Iterator[tuple[Page, str, qc_chart_data.Seeded]]:
    run_in_transaction(web_engine, lambda tx: register_instruments(tx, web_config), T0)
    seeded = qc_chart_data.seed(web_engine)
    add_person(web_engine, "ola", [Role.OPERATOR], name="Ola Operatør", password=PASSWORD)
    errors: list[str] = []
    with serving(create_app(web_config, web_engine)) as url, sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(viewport=VIEWPORT, locale="nb-NO")
        tab = context.new_page()
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.goto(url + LEVEL1)
        sign_in_with_the_form(tab, "ola", PASSWORD)
        yield tab, url, seeded
        browser.close()
    assert not errors, errors  # no CSP refusals, no script errors


def test_the_chart_renders_and_a_comment_lands_on_its_point(
    page: tuple[Page, str, qc_chart_data.Seeded],
) -> None:
    tab, url, seeded = page
    tab.goto(url + LEVEL1)
    chart = tab.locator("section.qc-chart svg")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    expect(chart.locator('[id^="qc-point-"]')).to_have_count(8)
    rejected = seeded.level1[4]
    expect(chart.locator(f'[id="qc-rule-{rejected}"]')).to_contain_text("2-2s")
    if SCREENSHOTS:
        tab.screenshot(path="docs/screenshots/qc-levey-jennings.png", full_page=True)

    form = tab.locator(f'form[action="/qc/points/{rejected}/comment"]')
    form.locator('input[name="text"]').fill("Ny kalibrator brukt")
    form.locator('button[type="submit"], input[type="submit"]').first.click()
    tab.wait_for_url(f"**{LEVEL1.split('?')[0]}*")
    title = tab.locator(f'[id="qc-point-{rejected}"] title')
    expect(title).to_contain_text("Ny kalibrator brukt")
    expect(title).to_contain_text("ola")
