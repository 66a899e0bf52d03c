"""The QC overview in real headless Debian Chromium: an instrument locked out by a failing
control, a quality manager signing the corrective action on the lockout's page (the password
again), and the lockout lifted (the accepted run was already there). The bokmål screenshot of
the overview goes to docs/screenshots/ with TRYGG_SCREENSHOTS=1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import Engine, insert, update

from gateway import catalogue
from gateway.app import register_instruments
from gateway.people.roles import Role
from gateway.store.tables import qc_evaluations, qc_lockouts, qc_results
from gateway.store.writer import Tx, run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import PASSWORD, SCREENSHOTS, T0, add_person, serving
from tests.web.test_browser import CHROMIUM_ARGS, VIEWPORT, chromium_path, sign_in_with_the_form
from tests.web.test_qc_pages import lockout, qc_config

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def nb(key: str, **params: object) -> str:
    return catalogue.text("nb", key, **params)


def accepted_run(engine: Engine, lockout_id: int) -> None:
    """New controls that were accepted after the failure: the lockout waits only for the
    signed corrective action now."""

    def job(tx: Tx) -> None:
        qc_id = tx.conn.execute(
            insert(qc_results).returning(qc_results.c.id),
            {"instrument_id": "afinion-1", "test_code": "HBA1C", "value": "40.2",
             "control_lot": "L77", "control_level": "1", "performed_at": T0 + timedelta(hours=1),
             "fingerprint": "f2", "created_at": T0 + timedelta(hours=1)},
        ).scalar_one()  # fmt: skip
        evaluation_id = tx.conn.execute(
            insert(qc_evaluations).returning(qc_evaluations.c.id),
            {"qc_result_id": qc_id, "instrument_id": "afinion-1", "test_code": "HBA1C",
             "level": "1", "run_key": "run-10", "target_mean": "40", "target_sd": "2",
             "z": "0.1", "verdict": "accept", "violations": "[]",
             "evaluated_at": T0 + timedelta(hours=1)},
        ).scalar_one()  # fmt: skip
        tx.conn.execute(
            update(qc_lockouts)
            .where(qc_lockouts.c.id == lockout_id)
            .values(accepted_evaluation_id=evaluation_id, accepted_at=T0 + timedelta(hours=1))
        )

    run_in_transaction(engine, job, T0 + timedelta(hours=1))


@pytest.fixture
def page(web_engine: Engine) -> Iterator[tuple[Page, str, int]]:
    cfg = qc_config()
    run_in_transaction(web_engine, lambda tx: register_instruments(tx, cfg), T0)
    ids = lockout(web_engine, cfg)
    accepted_run(web_engine, ids["lockout"])
    add_person(web_engine, "qm", [Role.QUALITY_MANAGER], name="Kari Kvalitet", password=PASSWORD)
    with (
        serving(create_app(cfg, web_engine)) as url,
        sync_playwright() as driver,
    ):
        browser = driver.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(viewport=VIEWPORT, locale="nb-NO")
        tab = context.new_page()
        tab.goto(url + "/qc")
        sign_in_with_the_form(tab, "qm", PASSWORD)
        yield tab, url, ids["lockout"]
        browser.close()


def test_a_lockout_is_lifted_after_the_signed_corrective_action(
    page: tuple[Page, str, int],
) -> None:
    tab, url, lockout_id = page
    tab.goto(url + "/qc")
    row = tab.locator('tr[data-qc="afinion-1|HBA1C"]')
    expect(row.locator('[data-qc-status="out_of_control"]')).to_have_text(
        nb("qc_badge.out_of_control")
    )
    expect(tab.get_by_role("heading", name=nb("qc.lockouts.open"))).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / "qc-overview-lockout.png"), full_page=True)
    row.locator(f'[data-lockout-link="{lockout_id}"]').click()
    expect(tab.locator('[data-lockout-state="open"]')).to_be_visible()
    form = tab.locator("#qc-corrective")
    form.get_by_label(nb("qc.lockout.corrective_field")).fill(
        "Byttet reagenskassett; ny kontroll OK"
    )
    form.get_by_label(nb("signature.password")).fill("feil passord")
    form.get_by_role("button", name=nb("qc.lockout.sign_corrective")).click()
    expect(tab.locator("#qc-corrective .form-error")).to_be_visible()  # a wrong password
    form = tab.locator("#qc-corrective")
    form.get_by_label(nb("signature.password")).fill(PASSWORD)
    form.get_by_role("button", name=nb("qc.lockout.sign_corrective")).click()
    expect(tab.locator("#outcome")).to_have_text(nb("qc.lockout.signed"))
    expect(tab.locator("[data-corrective]")).to_contain_text("Byttet reagenskassett")
    expect(tab.locator('[data-lockout-state="lifted"]')).to_be_visible()
    tab.goto(url + "/qc")
    expect(tab.get_by_role("heading", name=nb("qc.lockouts.open"))).to_have_count(0)
