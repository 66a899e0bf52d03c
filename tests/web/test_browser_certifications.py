"""The certification pages in real headless Debian Chromium (Playwright), served by uvicorn on
loopback over a real SQLite store with ``[people] enforce = true``; every page is reached by
signing in through the sign-in form.

- an expired certification takes effect at midnight Europe/Oslo, on the page (the web's
  clock) and at ingest (a result performed at 23:59 passes, one at 00:00 is held);
- the competence import: a file with an error, then a good one previewed, applied with an
  electronic signature, and the same file again with nothing to change;
- recertification: confirmed moves the due date; "something is unclear" raises a deviation;
- the screenshot of the roster in bokmål (docs/screenshots/certifications.png with
  TRYGG_SCREENSHOTS=1, see tests/web/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from sqlalchemy import Engine, select

from gateway.catalogue import text
from gateway.config import Config, PeopleConfig
from gateway.model import HoldReason
from gateway.store import people
from gateway.store.tables import certifications, holds, results, signatures
from gateway.web.app import create_app
from tests.web import test_browser as shared
from tests.web.conftest import (
    PASSWORD,
    SCREENSHOTS,
    VALID_FNR,
    Clock,
    make_config,
    observation,
    serving,
)
from tests.web.people_set import (
    import_people,
    ingest_with_facts,
    people_csv,
    portal_update,
    set_passwords,
)
from tests.web.test_browser import VIEWPORT, fits_width, sign_in_with_the_form

pytestmark = pytest.mark.browser

# the dashboard tests' Debian chromium, one per module
playwright = shared.playwright
browser = shared.browser

SCREENSHOT = SCREENSHOTS / "certifications.png"
DUE = date(2026, 2, 10)  # winter: Oslo is UTC+1
LAST_MINUTE = datetime(2026, 2, 10, 22, 59, 59, tzinfo=UTC)  # 23:59:59 Oslo on the due date
MIDNIGHT = datetime(2026, 2, 10, 23, 0, tzinfo=UTC)  # 00:00 Oslo on 11.02.2026
TODAY = date(2026, 1, 15)
NOON = datetime(2026, 1, 15, 11, 0, tzinfo=UTC)  # 12:00 Oslo


@pytest.fixture
def web_config() -> Config:
    """The web tests' site with the people rules on."""
    return make_config().model_copy(update={"people": PeopleConfig(enforce=True)})


def console_error(message: ConsoleMessage) -> bool:
    """An error in the page's console, other than the log line for a refused form's 4xx
    answer (a page that says what is wrong, on purpose)."""
    return message.type == "error" and not message.text.startswith("Failed to load resource")


@contextmanager
def page_for(browser: Browser, url: str, person: str) -> Iterator[Page]:
    """A bokmål page signed in as ``person`` through the sign-in form; no console errors and
    no host but this one, checked when done."""
    context = browser.new_context(viewport=VIEWPORT, locale="nb-NO")
    page = context.new_page()
    hosts: set[str] = set()
    errors: list[str] = []
    page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or ""))
    page.on("console", lambda msg: errors.append(msg.text) if console_error(msg) else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url + "/signin")
        sign_in_with_the_form(page, person, PASSWORD)
        expect(page.locator(".who-name")).to_be_visible()
        yield page
        assert hosts == {"127.0.0.1"}, hosts
        assert errors == []
    finally:
        context.close()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Logg ut").click()
    expect(page.locator(".notice")).to_have_text("Du er logget ut.")


# --- midnight in Oslo ------------------------------------------------------------------------


MIDNIGHT_CSV = "\n".join(
    [
        "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence",
        f"kari,Kari Nordmann,OP7,operator,afinion-1:CRP,certified,2025-02-01,{DUE},,Kurs 2025",
        "siri,Siri Veileder,SV,supervisor;operator,afinion-1:CRP,certified,2025-06-01,"
        "2026-06-01,,Veilederkurs",
    ]
)


def test_an_expired_certification_takes_effect_at_midnight_in_oslo(
    browser: Browser, web_config: Config, web_engine: Engine
) -> None:
    import_people(web_engine, web_config, MIDNIGHT_CSV, now=LAST_MINUTE - timedelta(days=30))
    set_passwords(web_engine, PASSWORD, "siri")
    clock = Clock(LAST_MINUTE)
    app = create_app(web_config, web_engine)
    app.state.web.clock = clock
    with serving(app) as url, page_for(browser, url, "siri") as page:
        page.goto(url + "/people")
        kari = page.locator('tr[data-person="kari"] li[data-task="afinion-1:CRP"]')
        expect(kari).to_have_attribute("data-status", "certified")
        expect(kari).to_contain_text("Sertifisert")
        expect(kari).to_contain_text("frist 10.02.2026")

        clock.now = MIDNIGHT
        page.reload()
        expect(kari).to_have_attribute("data-status", "expired")
        expect(kari).to_contain_text("Utløpt")
        expect(kari).to_contain_text("frist 10.02.2026 er passert")

        # the same boundary at ingest: kari's results by her operator ID OP7 on afinion-1
        for when, specimen in ((LAST_MINUTE, "S-2359"), (MIDNIGHT, "S-0000")):
            ingest_with_facts(
                web_engine,
                web_config,
                observation(
                    "afinion-1", "CRP", "7", specimen=specimen, patient=VALID_FNR, performed_at=when
                ),
                now=MIDNIGHT + timedelta(minutes=1),
                raw=specimen.encode(),
            )
        with web_engine.connect() as conn:
            by_specimen = {
                row.specimen_id: (row.id, row.state, row.performed_by)
                for row in conn.execute(select(results))
            }
            reasons = {
                row.result_id: row.reason
                for row in conn.execute(select(holds.c.result_id, holds.c.reason))
            }
        before, after = by_specimen["S-2359"], by_specimen["S-0000"]
        assert before[2] == after[2] == "kari"
        assert before[1] != "held" and before[0] not in reasons
        assert after[1] == "held" and reasons[after[0]] == HoldReason.UNCERTIFIED_OPERATOR

        uncertified = text("nb", f"reason.{HoldReason.UNCERTIFIED_OPERATOR}")
        page.goto(f"{url}/results/{after[0]}")
        expect(page.locator(".hold .hold-reason")).to_have_text(uncertified)
        page.goto(f"{url}/results/{before[0]}")
        expect(page.locator(".hold")).to_have_count(0)
        page.goto(url + "/results?state=held")
        held = page.locator(f'tbody.result[data-result-id="{after[0]}"]')
        expect(held.locator(".hold-reason")).to_have_text(uncertified)
        expect(page.locator(f'tbody.result[data-result-id="{before[0]}"]')).to_have_count(0)


# --- the competence import -------------------------------------------------------------------


@pytest.fixture
def people_app(web_config: Config, web_engine: Engine) -> FastAPI:
    import_people(web_engine, web_config, people_csv(TODAY), now=NOON - timedelta(days=1))
    set_passwords(web_engine, PASSWORD, "hilde", "kari", "bente", "eva")
    app = create_app(web_config, web_engine)
    app.state.web.clock = Clock(NOON)
    return app


def choose_file(page: Page, name: str, content: str) -> None:
    page.get_by_label("CSV-fil").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": content.encode("utf-8")}]
    )
    page.get_by_role("button", name="Vis hva som endres").click()


def test_the_competence_import_previews_then_applies_signed(
    browser: Browser, people_app: FastAPI, web_engine: Engine, tmp_path: Path
) -> None:
    good = portal_update(TODAY)
    bad = good.replace("afinion-1:CRP,trainee,,,siri,Opp", "afinion-1:CRP,lærling,,,siri,Opp")
    with serving(people_app) as url, page_for(browser, url, "hilde") as page:
        page.goto(url + "/people")
        page.get_by_role("link", name="Importer kompetanseoversikt").click()
        expect(page).to_have_url(url + "/people/import")

        choose_file(page, "feil.csv", bad)
        problem = page.locator('.import-problems tr[data-line="7"][data-column="status"]')
        expect(problem).to_contain_text("linje 7, kolonne status")
        expect(problem).to_contain_text("lærling")
        expect(page.get_by_role("button", name="Importer og signer")).to_have_count(0)

        choose_file(page, "portal.csv", good)
        plan = page.locator(".import-plan")
        expect(plan).to_contain_text("Forhåndsvisning av portal.csv")
        nora = plan.locator('tr[data-person="nora"][data-task=""]')
        expect(nora).to_have_attribute("data-change", "created")
        kari = plan.locator('tr[data-person="kari"][data-task="afinion-1:CRP"]')
        expect(kari).to_contain_text("Endret")
        expect(kari.locator(".before").first).to_have_text("2026-01-10")
        expect(kari.locator(".after").first).to_have_text("2027-01-10")
        page.screenshot(path=tmp_path / "import-preview-nb.png", full_page=True)
        with web_engine.connect() as conn:
            assert people.get_user(conn, "nora") is None  # the preview changed nothing

        page.get_by_label("Passordet ditt (signerer handlingen)").fill(PASSWORD)
        page.get_by_role("button", name="Importer og signer").click()
        expect(page.locator(".import-applied .notice")).to_contain_text(
            "Importert fra portal.csv: 1 nye og 0 endrede personer, 1 nye og 1 endrede"
        )
        with web_engine.connect() as conn:
            assert people.get_user(conn, "nora") is not None
            due = conn.execute(
                select(certifications.c.recert_due).where(certifications.c.person == "kari")
            ).scalar_one()
            signed = conn.execute(select(signatures.c.person, signatures.c.meaning)).all()
        assert due == date(2027, 1, 10)
        assert [tuple(row) for row in signed] == [("hilde", "import")]

        choose_file(page, "portal.csv", good)  # the same file again
        expect(page.locator(".import-nothing")).to_contain_text("Ingenting å endre")
        expect(page.get_by_role("button", name="Importer og signer")).to_have_count(0)
        assert fits_width(page)


# --- recertification -------------------------------------------------------------------------


def test_recertification_confirmed_moves_the_due_date_unclear_raises_a_deviation(
    browser: Browser, people_app: FastAPI, web_engine: Engine
) -> None:
    with serving(people_app) as url:
        with page_for(browser, url, "kari") as page:
            page.get_by_role("link", name="Mine sertifiseringer").click()
            expect(page).to_have_url(url + "/people/kari")
            row = page.locator('tr[data-task="afinion-1:CRP"]')
            expect(row).to_have_attribute("data-status", "expired")
            expect(row).to_contain_text("10.01.2026")
            row.get_by_role("link", name="Resertifiser").click()
            page.get_by_label("Jeg har gått gjennom prosedyren").check()
            page.get_by_label("Passordet ditt (signerer handlingen)").fill(PASSWORD)
            page.get_by_role("button", name="Signer").click()
            expect(page.locator(".recert-done .notice")).to_have_text(
                "Resertifisert for afinion-1:CRP: neste frist er 15.01.2027 (var 10.01.2026)."
            )
            page.get_by_role("link", name="Mine sertifiseringer").first.click()
            expect(row).to_have_attribute("data-status", "certified")
            expect(row).to_contain_text("15.01.2027")
            expect(page.locator("table.recertifications")).to_contain_text("Gjennomgått")
            sign_out(page)

        with page_for(browser, url, "bente") as page:
            page.goto(url + "/recert/sign?task=bench-1")
            page.get_by_label("Noe er uklart (skriv hva under)").check()
            page.get_by_label("Passordet ditt (signerer handlingen)").fill(PASSWORD)
            page.get_by_role("button", name="Signer").click()
            expect(page.locator(".form-error")).to_contain_text("Skriv hva som er uklart")
            page.get_by_label("Merknad (må fylles ut hvis noe er uklart)").fill(
                "Nytt kalibreringstrinn er ikke beskrevet i prosedyren"
            )
            page.get_by_label("Passordet ditt (signerer handlingen)").fill(PASSWORD)
            page.get_by_role("button", name="Signer").click()
            expect(page.locator(".recert-done .notice")).to_contain_text(
                "går til kvalitetsansvarlig"
            )
            page.get_by_role("link", name="Avvik").click()
            deviation = page.locator("table.data tbody tr").filter(has_text="Resertifisering uklar")
            expect(deviation).to_have_count(1)
            expect(deviation).to_contain_text("bente")
            expect(deviation).to_contain_text("Kvalitetsansvarlig")
    with web_engine.connect() as conn:
        meanings = conn.execute(select(signatures.c.person, signatures.c.meaning)).all()
        due = conn.execute(
            select(certifications.c.recert_due).where(
                certifications.c.person == "bente", certifications.c.task == "bench-1"
            )
        ).scalar_one()
    assert sorted(tuple(m) for m in meanings) == [("bente", "recertify"), ("kari", "recertify")]
    assert due == TODAY + timedelta(days=10)  # unclear leaves the certification as it is


# --- the screenshot --------------------------------------------------------------------------


def test_screenshot_of_the_certification_page_in_bokmal(
    browser: Browser, people_app: FastAPI
) -> None:
    with serving(people_app) as url, page_for(browser, url, "hilde") as page:
        page.goto(url + "/people")
        expect(page.get_by_role("heading", level=1)).to_have_text("Operatører og sertifiseringer")
        rows = page.locator("table.people tbody tr")
        expect(rows).to_have_count(8)
        for status in ("trainee", "certified", "expired", "suspended"):
            expect(page.locator(f'li[data-status="{status}"]').first).to_be_visible()
        expect(page.locator(".reminders")).to_contain_text("Påminnelser")
        assert fits_width(page)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
    assert SCREENSHOT.stat().st_size > 20_000
