"""The EQA pages over a real store: a quality manager registers a round, a verifier links a
sample to a measured result and signs the answer (the password again: a wrong one signs
nothing), the printable answer sheet and its CSV, an operator reads but is offered no forms
and is refused the posts, a split sample outside the limit, and the /qc/export download."""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select

from gateway.qc.noklus_export import EQA_COLUMNS
from gateway.store import sessions
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import deviations, eqa_rounds, signatures
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import LOCAL, Clock, use_session
from tests.web.work_site import NOW, PASSWORD, arrive, prepare_store, site_config

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@dataclass
class Site:
    engine: Engine
    client: TestClient

    def sign_in(self, person: str) -> str:
        started = run_in_transaction(
            self.engine,
            lambda tx: sessions.start(tx, person, sessions.SessionPolicy.of(15, 12)),
            NOW,
        )
        self.client.cookies.clear()
        use_session(self.client, started.token)
        return started.session.csrf_token


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    engine = make_engine(f"sqlite:///{tmp_path / 'eqa-web.sqlite3'}")
    upgrade(engine)
    config = site_config()
    prepare_store(engine, config)
    arrive(
        engine,
        config,
        instrument="afinion-1",
        test="HBA1C",
        value="53",
        unit="mmol/mol",
        operator="BH",
        specimen="EKV-S1",
    )
    app = create_app(config, engine)
    app.state.web.clock = Clock(NOW)
    with TestClient(app, base_url=LOCAL) as client:
        yield Site(engine, client)
    engine.dispose()


def test_register_link_answer_print_and_export(site: Site) -> None:
    csrf = site.sign_in("hilde")  # quality manager
    page = site.client.get("/eqa")
    assert page.status_code == 200 and 'id="eqa-register"' in page.text
    made = site.client.post(
        "/eqa/register",
        data={
            "csrf": csrf,
            "scheme": "Noklus HbA1c",
            "shipment": "2026-4",
            "instrument": "afinion-1",
            "received_on": "2026-12-01",
            "due_on": "2026-12-14",
            "samples": "S1:HBA1C",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, re.findall("form-error[^<]*", made.text)
    round_url = made.headers["location"].split("?")[0]
    round_id = int(round_url.rsplit("/", 1)[1])
    # a verifier links the sample and signs the answer
    csrf = site.sign_in("bente")
    page = site.client.get(round_url)
    assert 'id="eqa-answer"' in page.text and 'id="eqa-assess"' not in page.text
    sample_id = re.search(r'data-sample-id="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    linked = site.client.post(
        f"{round_url}/value",
        data={"csrf": csrf, "sample_id": sample_id, "specimen": "EKV-S1"},
        follow_redirects=False,
    )
    assert linked.status_code == 303
    wrong = site.client.post(
        f"{round_url}/answered", data={"csrf": csrf, "password": "feil"}, follow_redirects=False
    )
    assert wrong.status_code == 422
    with site.engine.connect() as conn:
        assert conn.execute(select(eqa_rounds.c.state)).scalar_one() == "registered"
    signed = site.client.post(
        f"{round_url}/answered", data={"csrf": csrf, "password": PASSWORD}, follow_redirects=False
    )
    assert signed.status_code == 303
    with site.engine.connect() as conn:
        assert conn.execute(select(eqa_rounds.c.state)).scalar_one() == "answered"
        meaning = conn.execute(select(signatures.c.person, signatures.c.meaning)).all()
    assert ("bente", "eqa_answer") in meaning
    sheet = site.client.get(f"{round_url}/answer")
    assert sheet.status_code == 200 and "/static/eqa.css" in sheet.text and "53" in sheet.text
    answer = site.client.get(f"{round_url}/answer.csv")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[1][-4:] == ["S1", "HBA1C", "53", "mmol/mol"]
    # the quality manager records a poor assessment: a deviation
    csrf = site.sign_in("hilde")
    assessed = site.client.post(
        f"{round_url}/assess",
        data={"csrf": csrf, "sample_id": sample_id, "trueness": "poor", "password": PASSWORD},
        follow_redirects=False,
    )
    assert assessed.status_code == 303
    with site.engine.connect() as conn:
        assert conn.execute(select(deviations.c.kind)).scalars().all() == ["eqa_poor"]
    # the EQA export for December
    got = site.client.get(
        "/qc/export",
        params={"kind": "eqa", "from": "2026-12-01", "to": "2026-12-31", "format": "xlsx"},
    )
    assert got.status_code == 200
    book = load_workbook(io.BytesIO(got.content))
    exported = list(book.active.iter_rows(values_only=True))
    assert exported[0] == EQA_COLUMNS and exported[1][EQA_COLUMNS.index("value")] == 53
    assert exported[1][EQA_COLUMNS.index("trueness")] == "poor"
    assert round_id >= 1


def test_an_operator_reads_but_may_not_act(site: Site) -> None:
    csrf = site.sign_in("tone")
    page = site.client.get("/eqa")
    assert page.status_code == 200 and 'id="eqa-register"' not in page.text
    assert site.client.get("/eqa/split").status_code == 200
    assert 'id="split-record"' not in site.client.get("/eqa/split").text
    refused = site.client.post(
        "/eqa/register", data={"csrf": csrf, "scheme": "x"}, follow_redirects=False
    )
    assert refused.status_code == 403
    form = site.client.get("/qc/export")
    assert form.status_code == 200 and 'id="qc-export"' in form.text


def test_a_split_sample_outside_the_limit_opens_a_deviation(site: Site) -> None:
    csrf = site.sign_in("morten")
    page = site.client.post(
        "/eqa/split/record",
        data={
            "csrf": csrf,
            "instrument": "afinion-1",
            "test": "HBA1C",
            "sample": "P-1",
            "local_value": "60",
            "central_value": "48",
            "password": PASSWORD,
        },
    )
    assert page.status_code == 200
    assert 'data-within="false"' in page.text and "+25.0" in page.text
    with site.engine.connect() as conn:
        assert conn.execute(select(deviations.c.kind)).scalars().all() == ["split_sample"]
