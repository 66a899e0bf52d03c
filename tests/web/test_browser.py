"""The dashboard in real headless Debian Chromium (Playwright), served by uvicorn on loopback.

Each page signs in first, through the sign-in form, as a person with the result-reading roles.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Playwright,
    Request,
    ViewportSize,
    expect,
    sync_playwright,
)
from sqlalchemy import Engine

from gateway.app import Gateway
from gateway.config import Config
from gateway.model import HoldReason
from gateway.people.roles import Role
from gateway.texts import action_texts
from gateway.web.app import create_app
from gateway.web.context import REFRESH_SECONDS
from tests.web.conftest import (
    PASSWORD,
    READER_ROLES,
    SUMMER,
    TESTER,
    Seeded,
    add_person,
    ingest,
    observation,
    serving,
)
from tests.web.test_texts_web import ENGLISH, add_refusals

# what to do about each hold reason, by language (from the catalogues)
ACTION_TEXT = {lang: action_texts(lang) for lang in ("nb", "en")}

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def chromium_path() -> str:
    """Debian's chromium; never a browser downloaded by Playwright."""
    path = shutil.which("chromium")
    if path is None:
        reason = "Debian chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    chromium_path()  # skip (or, in CI, fail) before starting Playwright's driver
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
    )
    yield chromium
    chromium.close()


@dataclass
class Served:
    url: str
    engine: Engine
    config: Config
    seeded: Seeded


@pytest.fixture
def served(
    web_config: Config, web_engine: Engine, seeded: Seeded, live_gateway: Gateway
) -> Iterator[Served]:
    """The app under uvicorn on 127.0.0.1 with a free port, in a background thread."""
    app = create_app(web_config, web_engine, gateway=live_gateway)
    with serving(app) as url:
        add_person(web_engine, TESTER, READER_ROLES, name="Tess Tester", password=PASSWORD)
        yield Served(url, web_engine, web_config, seeded)


@dataclass
class Watched:
    page: Page
    hosts: set[str]
    errors: list[str]


def sign_in_with_the_form(page: Page, person: str = TESTER, password: str = PASSWORD) -> None:
    """Fill in and send the sign-in form the page shows."""
    page.get_by_label("Bruker-ID").fill(person)
    page.get_by_label("Passord").fill(password)
    page.get_by_role("button", name="Logg inn").click()


@pytest.fixture
def watched(browser: Browser, served: Served) -> Iterator[Watched]:
    """A 1280x800 page, signed in through the form, that records every host it contacts and
    every console error."""
    context = browser.new_context(viewport=VIEWPORT, locale="nb-NO")
    page = context.new_page()
    hosts: set[str] = set()
    errors: list[str] = []

    def on_request(request: Request) -> None:
        hosts.add(urlsplit(request.url).hostname or request.url)

    page.on("request", on_request)
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + "/signin")
    sign_in_with_the_form(page)
    expect(page.locator(".who-name")).to_contain_text("Tess Tester")
    yield Watched(page, hosts, errors)
    context.close()


def fits_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_dashboard_switch_language_and_open_a_result(
    watched: Watched, served: Served, tmp_path: Path
) -> None:
    page = watched.page
    held = served.seeded.invalid_patient
    page.goto(served.url + "/")
    expect(page).to_have_title("Oversikt · Testlaboratoriet · Trygg")
    expect(page.locator("html")).to_have_attribute("lang", "nb")

    instruments = page.locator("table.instruments tbody tr")
    expect(instruments).to_have_count(2)
    afinion = page.locator('tr[data-instrument="afinion-1"]')
    expect(afinion).to_contain_text("Abbott Afinion 2")
    expect(afinion.locator(".conn")).to_have_text("Tilkoblet")
    expect(afinion).to_contain_text("15.01.2026 10:39:00")  # 09:39 UTC shown in Oslo time
    expect(page.locator('tr[data-instrument="bench-1"] .conn')).to_have_text("Ikke tilkoblet")

    hold = page.locator(f'tbody[data-result-id="{held}"] .hold')
    expect(hold).to_be_visible()
    expect(hold.locator(".hold-reason")).to_have_text("Ugyldig pasient-ID")
    expect(hold).to_contain_text("Hvorfor")
    expect(hold).to_contain_text("Pasient-ID 010100***** er ikke et gyldig fødselsnummer")
    expect(hold).to_contain_text("Hva gjør du")
    expect(hold).to_contain_text(ACTION_TEXT["nb"][HoldReason.INVALID_PATIENT_ID])
    expect(page.locator('[data-counter="held"] .n')).to_have_text("3")
    assert fits_width(page)
    page.screenshot(path=tmp_path / "dashboard-nb.png", full_page=True)
    page.screenshot(path=tmp_path / "dashboard-nb-viewport.png")

    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Recent results")).to_be_visible()
    expect(hold.locator(".hold-reason")).to_have_text("Invalid patient ID")
    expect(hold).to_contain_text(ACTION_TEXT["en"][HoldReason.INVALID_PATIENT_ID])
    expect(hold).to_contain_text("Patient ID 010100***** is not a valid fødselsnummer")
    page.screenshot(path=tmp_path / "dashboard-en.png", full_page=True)

    page.locator(f'tbody[data-result-id="{held}"] a[href="/results/{held}"]').click()
    expect(page).to_have_url(f"{served.url}/results/{held}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Result no. {held}")
    expect(page.locator(".hold")).to_contain_text("What to do")
    expect(page.locator(".fields")).to_contain_text("010100*****")
    assert fits_width(page)
    page.screenshot(path=tmp_path / "result-en.png", full_page=True)

    page.get_by_role("link", name="Outbox", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Outbox to the LIS")
    expect(page.locator("table.outbox tbody tr")).to_have_count(3)

    assert watched.hosts == {"127.0.0.1"}, "the page reached beyond this machine"
    assert watched.errors == []


def test_live_part_refreshes_by_itself(watched: Watched, served: Served) -> None:
    page = watched.page
    page.goto(served.url + "/")
    page.evaluate("window.__trygg_marker = 1")  # gone if the page reloads
    new_id = ingest(
        served.engine,
        served.config,
        observation("afinion-1", "CRP", "77", specimen="S99"),
        now=SUMMER + timedelta(hours=1),
        raw=b"browser-refresh",
    )
    expect(page.locator(f'tbody[data-result-id="{new_id}"]')).to_be_visible(
        timeout=(REFRESH_SECONDS * 3) * 1000
    )
    expect(page.locator('[data-counter="received"] .n')).to_have_text("8")
    assert page.evaluate("window.__trygg_marker") == 1, "the page reloaded instead of refreshing"
    assert watched.errors == []


def test_stale_banner_when_the_gateway_is_unreachable(watched: Watched, served: Served) -> None:
    page = watched.page
    page.goto(served.url + "/")
    banner = page.locator("#stale")
    expect(banner).to_be_hidden()
    page.route("**/*", lambda route: route.abort())
    expect(banner).to_be_visible(timeout=(REFRESH_SECONDS * 3) * 1000)
    expect(banner).to_contain_text("Får ikke kontakt med gatewayen")
    page.unroute("**/*")
    expect(banner).to_be_hidden(timeout=(REFRESH_SECONDS * 3) * 1000)


def test_results_filter_form(watched: Watched, served: Served) -> None:
    page = watched.page
    page.goto(served.url + "/results")
    page.get_by_label("Status").select_option("held")
    page.get_by_label("Instrument").select_option("bench-1")
    page.get_by_role("button", name="Vis").click()
    expect(page).to_have_url(f"{served.url}/results?state=held&instrument=bench-1&limit=100")
    rows = page.locator("tbody.result")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(ACTION_TEXT["nb"][HoldReason.MISSING_PATIENT_ID])
    assert fits_width(page)
    assert watched.errors == []


def test_bokmal_quarantine_and_held_result_show_no_developer_text(
    watched: Watched, served: Served, tmp_path: Path
) -> None:
    """What a lab user sees before any click is bokmål; the technical detail is one click away."""
    add_refusals(served.engine, served.config)
    page = watched.page
    page.goto(served.url + "/quarantine")
    reason = page.locator("td.quarantine-reason").filter(has_text="ORU^R99")
    expect(reason).to_contain_text("Meldingen er ikke et prøvesvar Trygg kan lese")
    shown = page.locator("main").inner_text()
    assert [phrase for phrase in ENGLISH if phrase in shown] == []
    page.screenshot(path=tmp_path / "quarantine-nb.png", full_page=True)
    reason.locator("summary").click()
    expect(reason.locator("code")).to_have_text(
        "MSH-9: ORU^R99 is not a result message this parser reads"
    )

    held = served.seeded.invalid_patient
    page.goto(f"{served.url}/results/{held}")
    hold = page.locator(".hold")
    expect(hold).to_contain_text("Pasient-ID 010100***** er ikke et gyldig fødselsnummer")
    shown = page.locator("main").inner_text()
    assert [phrase for phrase in ENGLISH if phrase in shown] == []
    assert fits_width(page)
    page.screenshot(path=tmp_path / "held-result-nb.png", full_page=True)
    assert watched.errors == []


def test_sign_in_from_a_redirect_and_sign_out(
    browser: Browser, served: Served, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=VIEWPORT, locale="nb-NO")
    page = context.new_page()
    try:
        page.goto(served.url + "/results?state=held")
        expect(page).to_have_url(f"{served.url}/signin?next=%2Fresults%3Fstate%3Dheld")
        expect(page.get_by_role("heading", level=1)).to_have_text("Logg inn")
        expect(page.locator("nav.nav a")).to_have_count(0)  # nothing to open before sign-in
        sign_in_with_the_form(page, password="not the password")
        expect(page.locator(".form-error")).to_have_text("Feil bruker-ID eller passord.")
        expect(page.get_by_label("Bruker-ID")).to_have_value(TESTER)
        page.screenshot(path=tmp_path / "signin-wrong-nb.png", full_page=True)
        sign_in_with_the_form(page)
        expect(page).to_have_url(f"{served.url}/results?state=held")
        expect(page.locator(".who-name")).to_have_text("Innlogget: Tess Tester")
        # the tester is a quality manager too: the access log is in the nav
        expect(page.locator('nav.nav a[href="/access-log"]')).to_have_count(1)
        expect(page.locator('nav.nav a[href="/results"]')).to_have_count(1)
        page.get_by_role("button", name="Logg ut").click()
        expect(page).to_have_url(f"{served.url}/signin?signed_out=1")
        expect(page.locator(".notice")).to_have_text("Du er logget ut.")
        page.goto(served.url + "/")
        expect(page).to_have_url(f"{served.url}/signin?next=%2F")
    finally:
        context.close()


def test_an_admin_lands_on_the_access_log(browser: Browser, served: Served) -> None:
    add_person(served.engine, "ada", [Role.ADMIN], name="Ada Admin", password=PASSWORD)
    context = browser.new_context(viewport=VIEWPORT, locale="nb-NO")
    page = context.new_page()
    try:
        page.goto(served.url + "/signin")
        sign_in_with_the_form(page, "ada")
        expect(page).to_have_url(f"{served.url}/access-log")
        links = page.locator("nav.nav a")
        # the access log, (pages-people) the certification pages an admin may open, and
        # (issue 11) the QC overview: QC data holds no patient data
        expect(links).to_have_count(5)
        expect(links.first).to_have_attribute("href", "/access-log")
        expect(page.locator('nav.nav a[href="/results"]')).to_have_count(0)
        response = page.goto(served.url + "/results")
        assert response is not None and response.status == 403
        expect(page.locator(".error-message")).to_contain_text("Rollene dine gir ikke tilgang")
    finally:
        context.close()


def test_a_page_left_open_shows_the_sign_in_page_once_its_session_ends(
    watched: Watched, served: Served
) -> None:
    from gateway.store import sessions
    from gateway.store.writer import run_in_transaction

    page = watched.page
    page.goto(served.url + "/results")
    expect(page.locator(".who-name")).to_be_visible()
    run_in_transaction(
        served.engine,
        lambda tx: sessions.end_all(tx, TESTER, sessions.EndReason.DISABLED),
    )
    # the next refresh gets the sign-in page instead of the results: the page goes there
    expect(page).to_have_url(
        f"{served.url}/signin?next=%2Fresults", timeout=(REFRESH_SECONDS * 3) * 1000
    )
    expect(page.get_by_label("Passord")).to_be_visible()
    assert watched.errors == []
