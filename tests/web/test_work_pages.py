"""The people pages over a real store: the queues, held results with the actions each viewer may
take, the signed action forms (password again, CSRF, refusals shown with what was typed), the
signatures and corrections on a result's page, manual entry, and the access-log rows of it."""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from gateway import catalogue
from gateway.config import Config
from gateway.people.permissions import REFUSALS
from gateway.people.roles import HoldAction
from gateway.store import access, queries, sessions
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import results, signatures
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from gateway.web.routes.actions import FIELDS
from gateway.web.work import SIGNATURE_MEANINGS, duration
from tests.web.conftest import LOCAL, Clock, use_session
from tests.web.work_site import (
    BAD_FNR,
    NOW,
    OTHER_FNR,
    PASSWORD,
    VALID_FNR,
    arrive,
    prepare_store,
    site_config,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@dataclass
class Site:
    engine: Engine
    config: Config
    client: TestClient
    clock: Clock

    def sign_in(self, person: str, *, at: timedelta = timedelta(0)) -> str:
        """Sign ``person`` in (a session started ``at`` after now); their CSRF token."""
        started = run_in_transaction(
            self.engine,
            lambda tx: sessions.start(tx, person, sessions.SessionPolicy.of(15, 12)),
            self.clock.now + at,
        )
        self.client.cookies.clear()
        use_session(self.client, started.token)
        return started.session.csrf_token

    def arrive(self, **fields: object) -> int:
        return arrive(self.engine, self.config, now=self.clock.now, **fields)  # type: ignore[arg-type]

    def state(self, result_id: int) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(select(results.c.state).where(results.c.id == result_id)).scalar()
            )

    def post(self, path: str, csrf: str, **data: str) -> httpx.Response:
        response: httpx.Response = self.client.post(
            path, data={"csrf": csrf, **data}, follow_redirects=False
        )
        return response


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    engine = make_engine(f"sqlite:///{tmp_path / 'work.sqlite3'}")
    upgrade(engine)
    config = site_config()
    prepare_store(engine, config)
    app = create_app(config, engine)
    clock = Clock(NOW)
    app.state.web.clock = clock
    with TestClient(app, base_url=LOCAL) as client:
        yield Site(engine, config, client, clock)
    engine.dispose()


def visible(page: str) -> str:
    """The page's text as a reader sees it (tags out, entities decoded, spaces collapsed)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def forms_of(page: str) -> list[str]:
    """The actions whose forms the page offers."""
    return re.findall(r'<form class="plain-form action-form" id="act-(\w+)"', page)


def row_of(page: str, result_id: int) -> str:
    match = re.search(rf'<tr data-result-id="{result_id}".*?</tr>', page, re.S)
    assert match, f"no row for result {result_id}"
    return visible(match.group(0))


def nb(key: str, **params: object) -> str:
    return catalogue.text("nb", key, **params)


def strip_visual(site: Site, specimen: str, operator: str = "BH", value: str = "2+") -> int:
    """A urine strip read by eye on urine-1: held awaiting verification."""
    return site.arrive(
        instrument="urine-1", test="UGLU", value=value, operator=operator, specimen=specimen
    )


# --- the verification queue and the result's forms ---------------------------------------------


def test_the_verification_queue_says_who_may_verify_and_why_not(site: Site) -> None:
    reading = strip_visual(site, "U-100")
    expected = {
        "morten": nb("verify.check"),
        "bente": nb("permission.refused.own_result"),
        "tone": nb("permission.refused.no_role"),
        "hilde": nb("permission.refused.no_role"),
    }
    for person, says in expected.items():
        site.sign_in(person)
        page = site.client.get("/verify")
        assert page.status_code == 200
        row = row_of(page.text, reading)
        assert says in row, (person, row)
        assert "Bente Hansen (bente)" in row and "2+" in row and "010100*****" in row
        assert VALID_FNR not in page.text  # masked
    # the one who may has the link to the form; a role missing is named
    site.sign_in("morten")
    assert f'href="/results/{reading}#act-verify"' in site.client.get("/verify").text
    site.sign_in("tone")
    row = row_of(site.client.get("/verify").text, reading)
    assert nb("work.needs_role", roles=nb("role.verifier")) in row


def test_the_result_page_offers_each_viewer_only_what_they_may_do(site: Site) -> None:
    reading = strip_visual(site, "U-101")
    site.sign_in("morten")
    page = site.client.get(f"/results/{reading}").text
    assert forms_of(page) == ["verify", "reject"]
    assert page.count('name="password"') == 2 and page.count('name="csrf"') >= 3
    assert "/static/refresh.js" not in page  # a page with a form does not refresh itself

    site.sign_in("bente")  # the performer: told why, offered nothing
    page = site.client.get(f"/results/{reading}").text
    assert forms_of(page) == []
    cannot = nb("work.cannot", action=nb("action.name.verify"))
    assert f"{cannot} {nb('permission.refused.own_result')}" in visible(page)

    site.sign_in("tone")  # no verifier role: nothing, and no refusal either
    page = site.client.get(f"/results/{reading}").text
    assert forms_of(page) == [] and 'class="refusal"' not in page
    assert nb("hold.todo.awaiting_verification") in visible(page)
    assert "/static/refresh.js" in page


def test_a_wrong_password_shows_the_form_again_with_what_was_typed(site: Site) -> None:
    reading = strip_visual(site, "U-102")
    csrf = site.sign_in("morten")
    response = site.post(
        f"/results/{reading}/verify",
        csrf,
        password="ikke passordet",
        value_read="2+",
        comment="sjekket mot fargekartet",
    )
    assert response.status_code == 422
    page = response.text
    form = page.split('id="act-verify"', 1)[1].split("</form>", 1)[0]
    assert nb("signature.refused", why=nb("signin.wrong")) in visible(form)
    assert 'name="value_read" value="2+"' in form
    assert "sjekket mot fargekartet</textarea>" in form
    assert "ikke passordet" not in page
    assert site.state(reading) == "held"


def test_verify_signs_queues_and_logs_the_change(site: Site) -> None:
    reading = strip_visual(site, "U-103")
    site.clock.advance(minutes=12)
    csrf = site.sign_in("morten")
    response = site.post(
        f"/results/{reading}/verify", csrf, password=PASSWORD, value_read=" 2+ ", comment="ok"
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/results/{reading}"
    assert site.state(reading) == "queued"
    page = site.client.get(f"/results/{reading}").text
    said = nb("action.done.queued", id=reading, action=nb("action.name.verify"))
    assert f'<p class="notice" role="status" id="outcome">{html.escape(said)}' in page
    text = visible(page.split('id="h-signatures"', 1)[1])
    assert "Godkjent av Morten Lie (morten), 07.12.2026 10:12:00" in text
    assert f"{nb('sig.value_read')} 2+ ({nb('sig.agreed')})" in text
    assert f"{nb('sig.interval')} 12 min" in text
    assert forms_of(page) == []
    assert 'id="outcome"' not in site.client.get(f"/results/{reading}").text  # shown once
    with site.engine.connect() as conn:
        rows = [r for r in access.by_patient(conn, VALID_FNR) if r["action"] == "change"]
    assert [(r["person"], r["result_id"], r["detail"].split(" (")[0]) for r in rows] == [
        ("morten", reading, "verify signed")
    ]


def test_the_performer_posting_verify_is_refused_and_it_stays_held(site: Site) -> None:
    reading = strip_visual(site, "U-104")
    csrf = site.sign_in("bente")
    response = site.post(f"/results/{reading}/verify", csrf, password=PASSWORD, comment="meg")
    assert response.status_code == 409
    refusal = nb("action.refused.same_person", person="bente", action=nb("action.name.verify"))
    assert refusal in visible(response.text)
    assert "/static/refresh.js" not in response.text  # its URL is a form's: not fetched again
    assert site.state(reading) == "held"
    with site.engine.connect() as conn:
        assert conn.execute(select(signatures.c.id)).first() is None


def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    reading = strip_visual(site, "U-105")
    site.sign_in("morten")
    response = site.client.post(
        f"/results/{reading}/verify", data={"password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    assert site.state(reading) == "held"


def test_a_visual_reading_read_otherwise_is_discarded_with_a_deviation(site: Site) -> None:
    reading = strip_visual(site, "U-106", value="1+")
    csrf = site.sign_in("morten")
    response = site.post(f"/results/{reading}/verify", csrf, password=PASSWORD, value_read="3+")
    assert response.status_code == 303
    assert site.state(reading) == "discarded"
    page = site.client.get(f"/results/{reading}").text
    assert nb("action.note.disagreed") in visible(page)
    assert f"3+ ({nb('sig.disagreed')})" in visible(page)


# --- reject, entry, deviations -------------------------------------------------------------------


def test_manual_entry_form_checks_next_to_the_fields(site: Site) -> None:
    csrf = site.sign_in("siri")
    form = site.client.get("/entry").text
    assert '<optgroup label="Abbott Afinion 2">' in form
    assert '<option value="afinion-1|HBA1C">B—HbA1c (mmol/mol) · afinion-1</option>' in form
    assert 'name="performed_at" value="2026-12-07T10:00"' in form  # now, in Oslo
    tests = visible(form.split('class="data entry-tests"', 1)[1])
    assert "B—HbA1c HBA1C mmol/mol 20 til 200" in tests
    assert "U—Glukose (stiks) UGLU – neg, 1+, 2+, 3+" in tests
    typed = {
        "choice": "afinion-1|HBA1C",
        "value": "900",
        "patient_id": BAD_FNR,
        "specimen_id": "M-1",
        "performed_at": "2026-12-07T09:40",
        "comment": "fra utskrift",
    }
    response = site.post("/entry", csrf, **typed)
    assert response.status_code == 422
    page = response.text
    value_label = page.split('name="value"', 1)[1].split("</label>", 1)[0]
    assert nb("manual.error.too_high", high="200") in visible(value_label)
    patient_label = page.split('name="patient_id"', 1)[1].split("</label>", 1)[0]
    assert 'class="field-error"' in patient_label
    assert f'value="{BAD_FNR}"' in page and "fra utskrift</textarea>" in page
    assert 'value="afinion-1|HBA1C" selected' in page
    with site.engine.connect() as conn:
        assert queries.list_results(conn) == []


def test_a_manual_entry_is_held_for_verification_then_rejected_with_a_deviation(
    site: Site,
) -> None:
    csrf = site.sign_in("siri")
    response = site.post(
        "/entry",
        csrf,
        choice="afinion-1|HBA1C",
        value="48,5",
        patient_id=VALID_FNR,
        specimen_id="M-2",
        performed_at="2026-12-07T09:40",
    )
    assert response.status_code == 303
    path = response.headers["location"]
    entered = int(path.rsplit("/", 1)[1])
    page = visible(site.client.get(path).text)
    held = nb("reason.awaiting_verification")
    assert nb("entry.done", id=entered, holds=held) in page
    assert "Manuell registrering" in page and "Siri Dahl (siri)" in page and "48.5" in page
    assert site.state(entered) == "held"
    with site.engine.connect() as conn:
        logged = [r for r in access.by_patient(conn, VALID_FNR) if r["action"] == "change"]
    assert [(r["person"], r["result_id"], r["detail"]) for r in logged] == [
        ("siri", entered, "manual entry")
    ]

    csrf = site.sign_in("morten")
    empty = site.post(f"{path}/reject", csrf, password=PASSWORD, comment="  ")
    assert empty.status_code == 422
    assert nb("action.refused.comment_required") in visible(empty.text)
    assert site.state(entered) == "held"
    done = site.post(
        f"{path}/reject", csrf, password=PASSWORD, comment="Feil prøve: utskriften gjelder en annen"
    )
    assert done.status_code == 303
    assert site.state(entered) == "discarded"
    deviations = site.client.get("/deviations").text
    match = re.search(
        r'<tr data-deviation-id="\d+" data-kind="verification_rejected">.*?</tr>', deviations, re.S
    )
    assert match
    row = visible(match.group(0))
    assert nb("kind.verification_rejected") in row and "Kvalitetsansvarlig" in row
    assert f'href="/results/{entered}"' in match.group(0)


# --- corrections ---------------------------------------------------------------------------------


def test_an_invalid_patient_id_is_corrected_and_the_original_kept_masked(site: Site) -> None:
    result = site.arrive(
        instrument="afinion-1",
        test="CRP",
        value="12",
        operator="ML",
        specimen="C-1",
        patient=BAD_FNR,
    )
    csrf = site.sign_in("bente")
    page = site.client.get(f"/results/{result}").text
    assert forms_of(page) == ["correct"]
    refused = site.post(
        f"/results/{result}/correct",
        csrf,
        password=PASSWORD,
        field="patient_id",
        new_value="12345678901",
        reason="feil på etiketten",
    )
    assert refused.status_code == 409
    form = refused.text.split('id="act-correct"', 1)[1].split("</form>", 1)[0]
    assert "Den nye pasient-ID-en er ikke gyldig" in visible(form)
    assert 'value="12345678901"' in form and "feil på etiketten</textarea>" in form
    assert site.state(result) == "held"
    done = site.post(
        f"/results/{result}/correct",
        csrf,
        password=PASSWORD,
        field="patient_id",
        new_value=OTHER_FNR,
        reason="feil på etiketten",
    )
    assert done.status_code == 303
    assert site.state(result) == "queued"
    page = site.client.get(f"/results/{result}").text
    assert OTHER_FNR not in page and BAD_FNR not in page
    table = visible(page.split('class="data corrections"', 1)[1].split("</table>", 1)[0])
    assert "Pasient-ID 010100***** 150372***** Bente Hansen feil på etiketten" in table
    with site.engine.connect() as conn:
        old = [r["person"] for r in access.by_patient(conn, BAD_FNR) if r["action"] == "change"]
        new = [r["person"] for r in access.by_patient(conn, OTHER_FNR) if r["action"] == "change"]
    assert old == new == ["bente"]


def test_a_missing_patient_id_is_released_with_a_note_by_a_supervisor(site: Site) -> None:
    result = site.arrive(
        instrument="afinion-1", test="CRP", value="8", operator="ML", specimen="C-2", patient=""
    )
    site.sign_in("bente")  # a verifier may correct it, not release it
    assert forms_of(site.client.get(f"/results/{result}").text) == ["correct"]
    csrf = site.sign_in("siri")
    assert forms_of(site.client.get(f"/results/{result}").text) == ["correct", "release"]
    empty = site.post(f"/results/{result}/release", csrf, password=PASSWORD, note="")
    assert empty.status_code == 422
    assert nb("action.refused.note_required") in visible(empty.text)
    done = site.post(
        f"/results/{result}/release", csrf, password=PASSWORD, note="Prøven er sendt på prøve-ID"
    )
    assert done.status_code == 303
    assert site.state(result) == "queued"
    assert "Frigitt av Siri Dahl (siri)" in visible(site.client.get(f"/results/{result}").text)


# --- co-sign and override ------------------------------------------------------------------------


def test_a_cosignature_shows_whether_the_supervisor_was_signed_in(site: Site) -> None:
    # signed in before the trainee worked (and not idle for 15 minutes by then)
    site.sign_in("siri", at=-timedelta(minutes=12))
    watched = site.arrive(
        instrument="afinion-1",
        test="HBA1C",
        value="51",
        operator="TB",
        specimen="T-1",
        performed_at=NOW - timedelta(minutes=10),
    )
    alone = site.arrive(
        instrument="afinion-1",
        test="HBA1C",
        value="47",
        operator="TB",
        specimen="T-2",
        performed_at=NOW - timedelta(hours=3),
    )
    site.sign_in("morten")
    row = row_of(site.client.get("/cosign").text, watched)
    assert nb("permission.refused.no_role") in row and "afinion-1:HBA1C" in row
    csrf = site.sign_in("siri")
    queue = site.client.get("/cosign").text
    assert f'href="/results/{watched}#act-cosign"' in queue
    assert "siri" in row_of(queue, watched)  # the supervisor the trainee's record names
    for result, says, css in (
        (watched, "sig.session_yes", "session-yes"),
        (alone, "sig.session_no", "session-no"),
    ):
        assert forms_of(site.client.get(f"/results/{result}").text) == ["cosign"]
        done = site.post(f"/results/{result}/cosign", csrf, password=PASSWORD, comment="sett")
        assert done.status_code == 303
        assert site.state(result) == "queued"
        page = site.client.get(f"/results/{result}").text
        assert f'<dd class="{css}">{nb(says)}</dd>' in page
    # the missing session is said in the outcome too
    assert nb("action.note.no_session") in visible(page)


def test_an_uncertified_operators_result_offers_override_to_a_supervisor_only(site: Site) -> None:
    result = site.arrive(
        instrument="afinion-1", test="CRP", value="30", operator="KN", specimen="K-1"
    )
    csrf = site.sign_in("tone")
    page = site.client.get(f"/results/{result}").text
    assert forms_of(page) == [] and 'class="refusal"' not in page
    assert nb("hold.todo.uncertified_operator") in visible(page)
    held = site.client.get("/held").text
    assert 'data-action="override"' not in held and f'data-result-id="{result}"' in held
    assert (
        site.post(f"/results/{result}/override", csrf, password=PASSWORD, reason="x").status_code
        == 403
    )

    csrf = site.sign_in("siri")
    assert f'href="/results/{result}#act-override"' in site.client.get("/held").text
    mine = site.client.get("/my-work").text.split('id="mw-others"', 1)[1]
    assert f'href="/results/{result}#act-override"' in mine.split("</section>", 1)[0]
    assert forms_of(site.client.get(f"/results/{result}").text) == ["override"]
    empty = site.post(f"/results/{result}/override", csrf, password=PASSWORD, reason="")
    assert empty.status_code == 422
    assert nb("action.refused.reason_required") in visible(empty.text)
    done = site.post(
        f"/results/{result}/override", csrf, password=PASSWORD, reason="Kari kjørte under tilsyn"
    )
    assert done.status_code == 303
    assert site.state(result) == "queued"
    assert "Overstyrt av Siri Dahl (siri)" in visible(site.client.get(f"/results/{result}").text)


# --- my work -------------------------------------------------------------------------------------


def test_my_work_shows_what_waits_for_each_person(site: Site) -> None:
    reading = strip_visual(site, "U-200")
    site.sign_in("morten")
    page = site.client.get("/my-work").text
    assert nb("mywork.verify", n=1) in visible(page)
    assert f'href="/results/{reading}#act-verify"' in page

    site.sign_in("bente")  # her own reading waits for someone else; her certificate is due
    page = site.client.get("/my-work").text
    text = visible(page)
    assert nb("mywork.verify", n=1) not in text
    assert nb("mywork.mine", n=1) in text and nb("hold.todo.awaiting_verification") in text
    due = visible(page.split('id="mw-due"', 1)[1])
    assert "afinion-1 20.12.2026 13 dager igjen" in due

    site.sign_in("hilde")
    assert nb("mywork.nothing") in visible(site.client.get("/my-work").text)


def test_the_pages_speak_english_too(site: Site) -> None:
    reading = strip_visual(site, "U-300")
    site.sign_in("morten")
    page = site.client.get(f"/results/{reading}?lang=en").text
    assert "Sign and verify" in page and "Your own reading (optional)" in page
    assert "Verification queue" in site.client.get("/verify?lang=en").text


# --- texts ---------------------------------------------------------------------------------------


def test_every_text_built_from_a_code_is_in_both_catalogues() -> None:
    keys = {
        f"act.{part}.{a.value}" for a in HoldAction for part in ("heading", "explain", "submit")
    }
    keys |= {f"action.name.{a.value}" for a in HoldAction}
    keys |= {f"sig.meaning.{m}" for m in SIGNATURE_MEANINGS}
    keys |= {f"permission.refused.{code}" for code in REFUSALS}
    keys |= {f"act.field_name.{f}" for f in ("patient_id", "specimen_id")}
    assert set(FIELDS) == set(HoldAction)
    for lang in catalogue.LANGUAGES:
        assert keys - set(catalogue.messages(lang)) == set(), lang


@pytest.mark.parametrize(
    ("seconds", "nb_text", "en_text"),
    [(45, "45 s", "45 s"), (720, "12 min", "12 min"), (3 * 3600 + 300, "3 t 5 min", "3 h 5 min")],
)
def test_the_time_between_readings_in_words(seconds: int, nb_text: str, en_text: str) -> None:
    assert (duration("nb", seconds), duration("en", seconds)) == (nb_text, en_text)
