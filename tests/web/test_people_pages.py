"""The people pages over the real app and a real SQLite store: the roster with each
certification's status today, one person's record (an operator sees only their own), the
recertification due list and signing, the competence import (multipart upload with CSRF,
preview, signed apply) and the export."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, select

from gateway.config import Config
from gateway.people.competence import parse_competence
from gateway.store import people, sessions
from gateway.store.competence import plan_import
from gateway.store.tables import certifications, deviations, recertifications, signatures
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from gateway.web.uploads import MAX_FILE_BYTES
from tests.web.conftest import LOCAL, PASSWORD, T0, Clock, use_session
from tests.web.people_set import (
    HEADER,
    import_people,
    ingest_with_facts,
    people_csv,
    portal_update,
    set_passwords,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TODAY = date(2026, 1, 15)  # T0 is 10:30 in Oslo that day
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_SHA = re.compile(r'name="sha256" value="([^"]+)"')


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def app_client(web_config: Config, web_engine: Engine, clock: Clock) -> Iterator[TestClient]:
    import_people(web_engine, web_config, people_csv(TODAY), now=T0)
    set_passwords(web_engine, PASSWORD, "hilde", "kari", "bente", "tone", "eva")
    app = create_app(web_config, web_engine)
    app.state.web.clock = clock
    with TestClient(app, base_url=LOCAL) as client:
        yield client


def as_person(client: TestClient, engine: Engine, person: str) -> str:
    """Sign ``client`` in as ``person`` (imported: their name and roles as stored); the
    session's CSRF token."""
    web = client.app.state.web  # type: ignore[attr-defined]
    started = run_in_transaction(
        engine, lambda tx: sessions.start(tx, person, web.session_policy), web.now()
    )
    use_session(client, started.token)
    return started.session.csrf_token


def row_of(html: str, marker: str) -> str:
    """The HTML from ``marker`` (a row's start, ``<tr data-person="kari"``) to its row's end."""
    start = html.index(marker)
    return html[start : html.index("</tr>", start)]


def count(engine: Engine, table: object, *where: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


# --- the roster ------------------------------------------------------------------------------


def test_the_roster_shows_each_certification_as_it_is_today(
    app_client: TestClient, web_engine: Engine
) -> None:
    as_person(app_client, web_engine, "hilde")
    html = app_client.get("/people").text
    kari = row_of(html, '<tr data-person="kari"')
    # recorded as certified, due five days ago: expired today, with the date it passed
    assert 'data-status="expired"' in kari and "Utløpt" in kari
    assert "frist 10.01.2026 er passert" in kari
    tone = row_of(html, '<tr data-person="tone"')
    assert "I opplæring" in tone and "veileder:" in tone and "Siri Veileder" in tone
    morten = row_of(html, '<tr data-person="morten"')
    assert 'data-status="suspended"' in morten and 'data-status="certified"' in morten
    assert "Verifikator" in morten and "MV" in morten
    eva = row_of(html, '<tr data-person="eva"')
    assert "Administrator" in eva or "admin" in eva.lower()
    assert "Ingen sertifiseringer." in eva
    # the reminders above the roster: kari's overdue one, bente's due in ten days
    assert 'data-kind="overdue" data-person="kari"' in html
    assert 'data-kind="reminder" data-person="bente"' in html
    assert "frist 25.01.2026, om 10 dager" in html


def test_the_roster_filters_by_task_and_status(app_client: TestClient, web_engine: Engine) -> None:
    as_person(app_client, web_engine, "bente")  # a verifier may read the roster
    html = app_client.get("/people", params={"status": "expired"}).text
    listed = set(re.findall(r'<tr data-person="([^"]+)"', html))
    assert listed == {"kari", "ola"}
    html = app_client.get("/people", params={"task": "afinion-1:CRP", "status": "certified"}).text
    listed = set(re.findall(r'<tr data-person="([^"]+)"', html))
    assert listed == {"bente", "siri", "morten"}
    assert 'data-task="bench-1"' not in row_of(html, '<tr data-person="bente"')
    html = app_client.get("/people", params={"task": "qc/afinion-1"}).text
    assert "Ingen sertifiseringer passer til filteret." in html


def test_midnight_in_oslo_ends_a_certification(
    app_client: TestClient, web_engine: Engine, clock: Clock
) -> None:
    """bente's bench-1 is due 25.01.2026: certified through 23:59 Oslo, expired at 00:00."""
    clock.now = T0 + timedelta(days=10, hours=13, minutes=29)  # 23:59 Oslo on the due date
    as_person(app_client, web_engine, "hilde")
    html = app_client.get("/people").text
    assert 'data-task="bench-1" data-status="certified"' in row_of(html, '<tr data-person="bente"')
    clock.advance(minutes=1)  # 00:00 Oslo the next day
    html = app_client.get("/people").text
    bente = row_of(html, '<tr data-person="bente"')
    assert 'data-task="bench-1" data-status="expired"' in bente
    assert "frist 25.01.2026 er passert" in bente


# --- one person ------------------------------------------------------------------------------


def test_an_operator_sees_their_own_record_only(app_client: TestClient, web_engine: Engine) -> None:
    as_person(app_client, web_engine, "kari")
    own = app_client.get("/people/kari")
    assert own.status_code == 200
    assert "Dine sertifiseringer" in own.text and "Kurs 2025" in own.text  # the evidence
    assert 'href="/recert/sign?task=afinion-1%3ACRP"' in own.text
    for other in ("tone", "nobody-at-all"):  # refused alike: existence is not revealed
        refused = app_client.get(f"/people/{other}")
        assert refused.status_code == 403
        assert "Tone" not in refused.text
    assert app_client.get("/people").status_code == 403
    mine = app_client.get("/my-certifications", follow_redirects=False)
    assert mine.status_code == 303 and mine.headers["location"] == "/people/kari"


def test_a_record_shows_recent_work_per_task(
    app_client: TestClient, web_engine: Engine, web_config: Config
) -> None:
    from tests.web.conftest import observation

    ingest_with_facts(
        web_engine,
        web_config,
        observation("afinion-1", "CRP", "12", performed_at=T0 - timedelta(days=3)),
        now=T0 - timedelta(days=3),
        raw=b"kari-work",
    )
    as_person(app_client, web_engine, "hilde")
    html = app_client.get("/people/kari").text
    activity = html.split('class="data activity"', 1)[1]
    assert "afinion-1" in activity and "CRP" in activity and "12.01.2026" in activity
    assert "afinion-1:CRP" in activity  # the certification that covers that work
    assert "12.01.2026" in row_of(html, '<tr data-task="afinion-1:CRP"')  # last done
    assert app_client.get("/people/nobody-at-all").status_code == 404


# --- recertification -------------------------------------------------------------------------


def test_the_due_list_has_overdue_due_soon_and_inactive(
    app_client: TestClient, web_engine: Engine
) -> None:
    as_person(app_client, web_engine, "hilde")
    html = app_client.get("/recert").text
    groups = dict(re.findall(r'data-kind="(\w+)"(.*?)</section>', html, re.S))
    assert 'data-person="kari" data-task="afinion-1:CRP"' in groups["overdue"]
    assert "for 5 dager siden" in groups["overdue"]
    assert 'data-person="bente" data-task="bench-1"' in groups["reminder"]
    assert 'data-person="morten" data-task="afinion-1:CRP"' in groups["inactive"]
    assert "ikke utført på 40 dager" in groups["inactive"]


def _sign(client: TestClient, csrf: str, **fields: str) -> httpx.Response:
    answer: httpx.Response = client.post("/recert/sign", data={"csrf": csrf, **fields})
    return answer


def test_an_operator_signs_their_recertification(
    app_client: TestClient, web_engine: Engine
) -> None:
    csrf = as_person(app_client, web_engine, "kari")
    form = app_client.get("/recert/sign", params={"task": "afinion-1:CRP"}).text
    assert "Jeg har gått gjennom prosedyren" in form and 'name="password"' in form
    wrong = app_client.post(
        "/recert/sign",
        data={"csrf": csrf, "task": "afinion-1:CRP", "outcome": "confirmed", "password": "x"},
    )
    assert wrong.status_code == 422 and "Signaturen ble ikke godtatt" in wrong.text
    assert count(web_engine, recertifications) == 0
    done = app_client.post(
        "/recert/sign",
        data={
            "csrf": csrf,
            "person": "kari",
            "task": "afinion-1:CRP",
            "outcome": "confirmed",
            "password": PASSWORD,
        },
    )
    assert done.status_code == 200, done.text
    # due 10.01.2026, signed late on 15.01.2026: a year from today
    assert "neste frist er 15.01.2027 (var 10.01.2026)" in done.text
    with web_engine.connect() as conn:
        due = conn.execute(
            select(certifications.c.recert_due, certifications.c.status).where(
                certifications.c.person == "kari"
            )
        ).one()
        signed = conn.execute(select(signatures)).one()
    assert (due.recert_due, due.status) == (date(2027, 1, 15), "certified")
    assert (signed.person, signed.meaning, signed.result_id) == ("kari", "recertify", None)
    detail = json.loads(signed.detail)
    assert detail["task"] == "afinion-1:CRP" and detail["recert_due"] == "2027-01-15"
    assert count(web_engine, recertifications, recertifications.c.outcome == "confirmed") == 1
    html = app_client.get("/people/kari").text
    assert 'data-status="certified"' in row_of(html, '<tr data-task="afinion-1:CRP"')
    assert "Gjennomgått" in html.split("recertifications", 1)[1]


def test_something_unclear_needs_a_note_and_raises_a_deviation(
    app_client: TestClient, web_engine: Engine
) -> None:
    csrf = as_person(app_client, web_engine, "bente")
    fields = {"task": "bench-1", "outcome": "unclear", "password": PASSWORD}
    no_note = _sign(app_client, csrf, **fields)
    assert no_note.status_code == 422
    assert "Skriv hva som er uklart" in no_note.text
    done = _sign(app_client, csrf, note="Nytt kalibreringstrinn er ikke beskrevet", **fields)
    assert done.status_code == 200
    assert "går til kvalitetsansvarlig" in done.text
    with web_engine.connect() as conn:
        deviation = conn.execute(select(deviations)).one()
        due = conn.execute(
            select(certifications.c.recert_due).where(
                certifications.c.person == "bente", certifications.c.task == "bench-1"
            )
        ).scalar_one()
    assert deviation.kind == "recertification_unclear"
    assert deviation.responsible_function == "Kvalitetsansvarlig"
    assert due == TODAY + timedelta(days=10)  # unchanged
    assert count(web_engine, signatures, signatures.c.meaning == "recertify") == 1
    as_person(app_client, web_engine, "hilde")
    assert "Resertifisering uklar" in app_client.get("/deviations").text


def test_nobody_signs_for_someone_else(app_client: TestClient, web_engine: Engine) -> None:
    csrf = as_person(app_client, web_engine, "hilde")
    refused = _sign(
        app_client,
        csrf,
        person="kari",
        task="afinion-1:CRP",
        outcome="confirmed",
        password=PASSWORD,
    )
    assert refused.status_code == 403
    # the session's person signs: hilde has no afinion-1:CRP certification of her own
    own = _sign(app_client, csrf, task="afinion-1:CRP", outcome="confirmed", password=PASSWORD)
    assert own.status_code == 422
    assert count(web_engine, recertifications) == 0
    assert count(web_engine, signatures) == 0


def test_a_trainee_is_not_offered_a_recertification(
    app_client: TestClient, web_engine: Engine
) -> None:
    csrf = as_person(app_client, web_engine, "tone")
    page = app_client.get("/recert/sign", params={"task": "afinion-1:CRP"}).text
    assert "veilederen sertifiserer deg" in page and 'name="password"' not in page
    refused = _sign(app_client, csrf, task="afinion-1:CRP", outcome="confirmed", password=PASSWORD)
    assert refused.status_code == 422
    assert count(web_engine, recertifications) == 0


# --- the competence import -------------------------------------------------------------------


def upload(
    client: TestClient, csrf: str | None, text: str, name: str = "portal.csv"
) -> httpx.Response:
    data = {"csrf": csrf} if csrf is not None else {}
    files = {"file": (name, text.encode("utf-8"), "text/csv")}
    answer: httpx.Response = client.post("/people/import", data=data, files=files)
    return answer


def changed_file() -> str:
    return portal_update(TODAY)


def test_the_csrf_check_covers_multipart_forms(app_client: TestClient, web_engine: Engine) -> None:
    csrf = as_person(app_client, web_engine, "hilde")
    assert upload(app_client, None, changed_file()).status_code == 403
    assert upload(app_client, "x" * 43, changed_file()).status_code == 403
    assert upload(app_client, csrf, changed_file()).status_code == 200
    too_big = upload(app_client, csrf, "x" * (2 * MAX_FILE_BYTES + 1))
    assert too_big.status_code == 413
    just_over = upload(app_client, csrf, HEADER + "\n" + "x" * MAX_FILE_BYTES)
    assert just_over.status_code == 413


def test_problems_name_their_line_and_column(app_client: TestClient, web_engine: Engine) -> None:
    csrf = as_person(app_client, web_engine, "hilde")
    bad = changed_file().replace(
        "tone,Tone Lærling,TL,operator,afinion-1:CRP,trainee",
        "tone,Tone Lærling,TL,operator,afinion-1:CRP,lærling",
    )
    answer = upload(app_client, csrf, bad)
    assert answer.status_code == 422
    html = answer.text
    assert 'data-line="7" data-column="status"' in html
    assert "linje 7, kolonne status" in html
    assert 'name="token"' not in html  # nothing to apply
    with web_engine.connect() as conn:
        assert people.get_user(conn, "nora") is None


def test_preview_then_signed_apply_then_nothing_to_change(
    app_client: TestClient, web_engine: Engine
) -> None:
    csrf = as_person(app_client, web_engine, "hilde")
    preview = upload(app_client, csrf, changed_file())
    html = preview.text
    assert 'data-person="nora" data-task="" data-change="created"' in html
    kari = row_of(html, '<tr data-person="kari" data-task="afinion-1:CRP"')
    assert 'data-change="changed"' in kari
    assert "2026-01-10" in kari and "2027-01-10" in kari  # before and after
    assert "Kurs 2025" in kari and "Kurs 2026" in kari
    token, sha = _TOKEN.search(html).group(1), _SHA.search(html).group(1)  # type: ignore[union-attr]
    assert sha in html.split("SHA-256", 1)[1][:100]  # the digest is shown
    with web_engine.connect() as conn:
        assert people.get_user(conn, "nora") is None  # a preview changes nothing

    wrong = app_client.post(
        "/people/import/apply",
        data={"csrf": csrf, "token": token, "sha256": sha, "password": "nope"},
    )
    assert wrong.status_code == 422 and "Signaturen ble ikke godtatt" in wrong.text
    applied = app_client.post(
        "/people/import/apply",
        data={"csrf": csrf, "token": token, "sha256": sha, "password": PASSWORD},
    )
    assert applied.status_code == 200, applied.text
    assert "Importert fra portal.csv: 1 nye og 0 endrede personer" in applied.text
    with web_engine.connect() as conn:
        assert people.get_user(conn, "nora") is not None
        signed = conn.execute(select(signatures)).one()
        due = conn.execute(
            select(certifications.c.recert_due).where(certifications.c.person == "kari")
        ).scalar_one()
    assert due == TODAY + timedelta(days=360)
    assert (signed.person, signed.meaning) == ("hilde", "import")
    assert json.loads(signed.detail)["sha256"] == sha
    # the token is spent
    again = app_client.post(
        "/people/import/apply",
        data={"csrf": csrf, "token": token, "sha256": sha, "password": PASSWORD},
    )
    assert again.status_code == 410
    # the same file once more: nothing to change, nothing to sign
    second = upload(app_client, csrf, changed_file())
    assert "Ingenting å endre" in second.text
    assert 'name="token"' not in second.text
    assert count(web_engine, signatures) == 1


def test_the_apply_takes_only_this_sessions_previewed_file(
    app_client: TestClient, web_engine: Engine
) -> None:
    csrf = as_person(app_client, web_engine, "hilde")
    html = upload(app_client, csrf, changed_file()).text
    token, sha = _TOKEN.search(html).group(1), _SHA.search(html).group(1)  # type: ignore[union-attr]
    other = "0" * 64
    assert (
        app_client.post(
            "/people/import/apply",
            data={"csrf": csrf, "token": token, "sha256": other, "password": PASSWORD},
        ).status_code
        == 410
    )
    # another session of an importer cannot use the token
    eva_csrf = as_person(app_client, web_engine, "eva")
    stolen = app_client.post(
        "/people/import/apply",
        data={"csrf": eva_csrf, "token": token, "sha256": sha, "password": PASSWORD},
    )
    assert stolen.status_code == 410
    with web_engine.connect() as conn:
        assert people.get_user(conn, "nora") is None


def test_a_store_changed_since_the_preview_is_shown_again(
    app_client: TestClient, web_engine: Engine, web_config: Config
) -> None:
    csrf = as_person(app_client, web_engine, "hilde")
    html = upload(app_client, csrf, changed_file()).text
    token, sha = _TOKEN.search(html).group(1), _SHA.search(html).group(1)  # type: ignore[union-attr]
    # meanwhile someone imports nora from the CLI
    import_people(web_engine, web_config, changed_file(), now=T0)
    changed = app_client.post(
        "/people/import/apply",
        data={"csrf": csrf, "token": token, "sha256": sha, "password": PASSWORD},
    )
    assert changed.status_code == 409
    assert "endret siden forhåndsvisningen" in changed.text
    assert 'name="token"' not in changed.text  # that plan changes nothing now
    assert count(web_engine, signatures) == 0


def test_the_export_reads_back_unchanged(app_client: TestClient, web_engine: Engine) -> None:
    as_person(app_client, web_engine, "eva")
    answer = app_client.get("/people/export.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="competence-2026-01-15.csv"' in answer.headers["content-disposition"]
    assert answer.content.startswith(b"\xef\xbb\xbf" + HEADER.encode())
    with web_engine.connect() as conn:
        parsed = parse_competence(answer.content)
        assert parsed.ok
        assert plan_import(conn, parsed).changes == 0
    as_person(app_client, web_engine, "bente")
    assert app_client.get("/people/export.csv").status_code == 403


def test_the_web_publishes_a_recertifications_event_on_the_gateways_bus(
    web_config: Config, web_engine: Engine, clock: Clock
) -> None:
    """Inside a running gateway the web's writes publish their events after the commit (the
    unclear recertification's ``certification`` event tells the nearest manager)."""
    from gateway.app import Gateway
    from gateway.bus.publisher import NullBus

    import_people(web_engine, web_config, people_csv(TODAY), now=T0)
    set_passwords(web_engine, PASSWORD, "bente")
    gateway = Gateway(web_config, engine=web_engine)
    assert isinstance(gateway.bus, NullBus)  # no [mqtt]: the bus counts what it is given
    app = create_app(web_config, web_engine, gateway=gateway)
    app.state.web.clock = clock
    with TestClient(app, base_url=LOCAL) as client:
        csrf = as_person(client, web_engine, "bente")
        before = gateway.bus.published
        fields = {"task": "bench-1", "outcome": "unclear", "password": PASSWORD}
        refused = _sign(client, csrf, **fields)  # no note: nothing written, nothing published
        assert refused.status_code == 422 and gateway.bus.published == before
        done = _sign(client, csrf, note="Uklart trinn 4", **fields)
        assert done.status_code == 200
        # the deviation's event and the ``certification`` event (recertification_unclear)
        assert gateway.bus.published == before + 2
