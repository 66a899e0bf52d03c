"""A deviation worked through and closed in real headless Debian Chromium: a QC failure's
deviation (recorded as the gateway records it), a quality manager signs in, records the cause
and the corrective action, starts the handling, and closes it with the password again; the page
then says closed, by whom and when, and the history lists every step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import Engine, select

from gateway import catalogue
from gateway.config import Config
from gateway.deviations import record
from gateway.model import Deviation
from gateway.people.roles import Role
from gateway.store.tables import deviation_events, deviations, signatures
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import PASSWORD, T0, add_person, serving
from tests.web.test_browser import CHROMIUM_ARGS, VIEWPORT, chromium_path, sign_in_with_the_form

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def nb(key: str, **params: object) -> str:
    return catalogue.text("nb", key, **params)


@pytest.fixture
def page(web_config: Config, web_engine: Engine) -> Iterator[tuple[Page, str, int]]:
    deviation_id = run_in_transaction(
        web_engine,
        lambda tx: record(
            tx,
            Deviation(
                kind="qc_failure",
                summary="HbA1c-kontrollen på afinion-1 er utenfor kontroll (2-2s)",
                category="equipment",
                instrument_id="afinion-1",
            ),
            actor="system",
        ),
        T0,
    )
    add_person(web_engine, "hilde", [Role.QUALITY_MANAGER], name="Hilde K", password=PASSWORD)
    with serving(create_app(web_config, web_engine)) as url, sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        tab = browser.new_context(viewport=VIEWPORT, locale="nb-NO").new_page()
        tab.goto(url + f"/deviations/{deviation_id}")
        sign_in_with_the_form(tab, "hilde", PASSWORD)
        yield tab, url, deviation_id
        browser.close()


def test_a_deviation_is_handled_and_closed_with_a_signature(
    page: tuple[Page, str, int], web_engine: Engine
) -> None:
    tab, url, deviation_id = page
    tab.goto(url + f"/deviations/{deviation_id}")
    card = tab.locator(f'[data-deviation-id="{deviation_id}"]')
    expect(card).to_have_attribute("data-state", "open")

    handling = tab.locator("#form-handling")
    handling.locator('textarea[name="cause"]').fill("Kontrollflasken sto åpen over helgen")
    handling.locator('textarea[name="corrective_action"]').fill("Ny flaske åpnet; rutine endret")
    handling.locator('button[type="submit"]').click()
    expect(tab.locator("#cause")).to_have_text("Kontrollflasken sto åpen over helgen")

    # recording the handling takes the deviation into work
    expect(card).to_have_attribute("data-state", "in_progress")

    close = tab.locator("#form-close")
    close.locator('textarea[name="note"]').fill("Gjennomgått på praksismøtet")
    close.locator('input[name="password"]').fill("not the password")
    close.locator('button[type="submit"]').click()
    expect(tab.locator("[data-deviation-id]")).to_have_attribute("data-state", "in_progress")

    close = tab.locator("#form-close")
    close.locator('input[name="password"]').fill(PASSWORD)
    close.locator('button[type="submit"]').click()
    expect(tab.locator("[data-deviation-id]")).to_have_attribute("data-state", "closed")
    expect(tab.locator("#closed-by")).to_contain_text("hilde")

    with web_engine.connect() as conn:
        row = conn.execute(select(deviations).where(deviations.c.id == deviation_id)).one()
        steps = [
            e.action for e in conn.execute(select(deviation_events).order_by(deviation_events.c.id))
        ]
        signed = conn.execute(select(signatures.c.person, signatures.c.meaning)).all()
    assert (row.state, row.closed_by) == ("closed", "hilde") and row.closed_at is not None
    assert steps[0] == "created" and "cause" in steps and "corrective_action" in steps
    assert "status" in steps
    assert [tuple(s) for s in signed] == [("hilde", "deviation_close")]
