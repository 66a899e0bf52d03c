"""The QC pages (issue 11): overview and /api/qc/status, the dashboard's QC panel, a lockout
with its failing run and held results, the lot pages (signed lot and target changes), and
manual QC entry with its verdict shown at once."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from drivers.model import InboundMessage
from gateway.app import register_instruments
from gateway.config import Config, parse_config
from gateway.ingest import store_message
from gateway.people.roles import Role
from gateway.rule_context import current_context
from gateway.rules import context_from_config
from gateway.store import qc_lots
from gateway.store.tables import (
    audit,
    control_lots,
    holds,
    qc_evaluations,
    qc_lockouts,
    qc_results,
    qc_status,
    qc_targets,
    results,
    signatures,
)
from gateway.store.writer import Tx, run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import LOCAL, PASSWORD, T0, Clock, add_person, ingest, observation, sign_in

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


def qc_config(language: str = "nb", lockout: str = "hold") -> Config:
    return parse_config(
        {
            "site": {"name": "test-lab", "language": language},
            "web": {"listen": "127.0.0.1:8470"},
            "instruments": [
                {"id": "afinion-1", "name": "Afinion", "driver": "hl7_mllp",
                 "url": "tcp-listen://127.0.0.1:5101"},
                {"id": "bench-1", "driver": "hl7_mllp", "url": "tcp-listen://127.0.0.1:5102"},
            ],
            "tests": [
                {"code": "HBA1C", "unit": "mmol/mol"},
                {"code": "CRP", "unit": "mg/L"},
            ],
            "qc": [
                {"test": "HBA1C", "instrument": "afinion-1", "levels": ["1", "2"],
                 "lockout": lockout},
                {"test": "CRP"},
            ],
        }
    )  # fmt: skip


@pytest.fixture
def cfg() -> Config:
    return qc_config()


@pytest.fixture
def client(cfg: Config, web_engine: Engine) -> Iterator[TestClient]:
    run_in_transaction(web_engine, lambda tx: register_instruments(tx, cfg), T0)
    app = create_app(cfg, web_engine)
    app.state.web.clock = Clock(T0 + timedelta(hours=1))
    with TestClient(app, base_url=LOCAL) as test_client:
        yield test_client


def signer(client: TestClient, role: Role = Role.QUALITY_MANAGER, person: str = "qm") -> str:
    """Sign in as ``person`` with a password (for the signed forms); the CSRF token."""
    add_person(client.app.state.web.engine, person, [role], password=PASSWORD)  # type: ignore[attr-defined]
    return sign_in(client, role, person=person).csrf


def lockout(engine: Engine, cfg: Config) -> dict[str, int]:
    """afinion-1 HBA1C out of control: a failing run (1-3s), a lockout with a deviation id
    left empty, and a patient result held for it."""
    held_id = ingest(
        engine, cfg, observation("afinion-1", "HBA1C", "48", specimen="P1"),
        now=T0 + timedelta(minutes=5), raw=b"p1",
    )  # fmt: skip

    def job(tx: Tx) -> dict[str, int]:
        lot_id = qc_lots.add_lot(
            tx, instrument_id="afinion-1", test_code="HBA1C", level="1", lot="L77",
            person="qm", manufacturer_mean="40", manufacturer_sd="2",
        )  # fmt: skip
        qc_id = tx.conn.execute(
            insert(qc_results).returning(qc_results.c.id),
            {"instrument_id": "afinion-1", "test_code": "HBA1C", "value": "47.1",
             "control_lot": "L77", "control_level": "1", "performed_at": T0,
             "fingerprint": "f1", "created_at": T0},
        ).scalar_one()  # fmt: skip
        violation = {"rule": "1-3s", "kind": "reject", "levels": ["1"], "runs": ["run-9"]}
        evaluation_id = tx.conn.execute(
            insert(qc_evaluations).returning(qc_evaluations.c.id),
            {"qc_result_id": qc_id, "instrument_id": "afinion-1", "test_code": "HBA1C",
             "level": "1", "lot_id": lot_id, "run_key": "run-9", "target_mean": "40",
             "target_sd": "2", "z": "3.55", "verdict": "reject",
             "violations": json.dumps([violation]), "evaluated_at": T0, "performed_at": T0},
        ).scalar_one()  # fmt: skip
        lockout_id = tx.conn.execute(
            insert(qc_lockouts).returning(qc_lockouts.c.id),
            {"instrument_id": "afinion-1", "test_code": "HBA1C", "cause": "out_of_control",
             "started_at": T0, "evaluation_id": evaluation_id},
        ).scalar_one()  # fmt: skip
        tx.conn.execute(
            insert(qc_status),
            {"instrument_id": "afinion-1", "test_code": "HBA1C", "status": "out_of_control",
             "since": T0, "last_run_at": T0, "lockout_id": lockout_id, "updated_at": T0,
             "patients_since": 0},
        )  # fmt: skip
        tx.conn.execute(
            insert(holds),
            {"result_id": held_id, "reason": "qc_lockout", "params": "{}",
             "created_at": T0 + timedelta(minutes=5)},
        )  # fmt: skip
        return {"lockout": int(lockout_id), "held": held_id, "lot": lot_id}

    return run_in_transaction(engine, job, T0)


def test_overview_lists_configured_tests_with_no_qc_yet(client: TestClient) -> None:
    sign_in(client, Role.OPERATOR)
    page = client.get("/qc")
    assert page.status_code == 200
    html = page.text
    for pair in ("afinion-1|HBA1C", "afinion-1|CRP", "bench-1|CRP"):
        assert f'data-qc="{pair}"' in html
    assert 'data-qc="bench-1|HBA1C"' not in html  # its [[qc]] entry is afinion-1's only
    assert "Ingen kontroll ennå" in html and "Registrer kontroll-lot og kjør" in html
    assert "/qc/chart?instrument=afinion-1&amp;test=HBA1C&amp;level=2" in html
    english = client.get("/qc?lang=en").text
    assert "No QC yet" in english and "Register the control lot and run" in english
    api = client.get("/api/qc/status").json()
    assert {(r["instrument"], r["test"], r["status"]) for r in api} == {
        ("afinion-1", "HBA1C", "no_qc"),
        ("afinion-1", "CRP", "no_qc"),
        ("bench-1", "CRP", "no_qc"),
    }


def test_a_lockout_shows_everywhere_and_its_page_explains_it(
    client: TestClient, web_engine: Engine, cfg: Config
) -> None:
    ids = lockout(web_engine, cfg)
    sign_in(client, Role.OPERATOR)
    html = client.get("/qc").text
    assert f'data-lockout-link="{ids["lockout"]}"' in html
    assert 'data-qc-status="out_of_control"' in html and "1-3s" in html
    (row,) = [r for r in client.get("/api/qc/status").json() if r["test"] == "HBA1C"]
    assert (row["status"], row["lockout_id"]) == ("out_of_control", ids["lockout"])
    dashboard = client.get("/").text
    panel = dashboard.split('id="h-qc-panel"', 1)[1].split("</section>", 1)[0]
    assert 'data-qc-instrument="afinion-1" class="tone-bad"' in panel
    assert f'href="/qc/lockouts/{ids["lockout"]}"' in panel
    assert 'data-qc-instrument="bench-1" class="tone-plain"' in panel
    page = client.get(f"/qc/lockouts/{ids['lockout']}").text
    assert 'data-lockout-state="open"' in page
    assert "1-3s" in page and "run-9" in page and "47.1" in page
    assert f'data-held="{ids["held"]}"' in page
    assert "Slik oppheves sperren" in page
    assert 'id="qc-corrective"' not in page  # an operator does not sign it
    assert client.get("/qc/lockouts/999").status_code == 404


def test_admin_reads_qc_but_enters_nothing(
    client: TestClient, web_engine: Engine, cfg: Config
) -> None:
    ids = lockout(web_engine, cfg)
    sign_in(client, Role.ADMIN, person="root")
    assert client.get("/qc").status_code == 200
    page = client.get(f"/qc/lockouts/{ids['lockout']}").text
    assert "48" not in page.split('id="h-held-qc"', 1)[1]  # no patient value on the QC page
    assert client.get("/qc/entry").status_code == 403


def test_overdue_is_shown_once_the_due_time_has_passed(
    client: TestClient, web_engine: Engine
) -> None:
    def job(tx: Tx) -> None:
        tx.conn.execute(
            insert(qc_status),
            {"instrument_id": "bench-1", "test_code": "CRP", "status": "in_control",
             "since": T0, "due_at": T0 + timedelta(minutes=30), "updated_at": T0,
             "patients_since": 0},
        )  # fmt: skip

    run_in_transaction(web_engine, job, T0)
    sign_in(client, Role.OPERATOR)
    (row,) = [r for r in client.get("/api/qc/status").json() if r["instrument"] == "bench-1"]
    assert row["status"] == "overdue"  # the clock is T0 + 1 h
    client.app.state.web.clock = Clock(T0 + timedelta(minutes=10))  # type: ignore[attr-defined]
    (row,) = [r for r in client.get("/api/qc/status").json() if r["instrument"] == "bench-1"]
    assert row["status"] == "in_control"


def new_lot(csrf: str, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    return {
        "csrf": csrf, "instrument_id": "afinion-1", "test_code": "HBA1C", "level": "2",
        "lot": "L88", "kind": "quantitative", "expires_on": "2027-03-31",
        "manufacturer_mean": "62,5", "manufacturer_sd": "3,1", "password": password, **extra,
    }  # fmt: skip


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table)).all())


def test_a_lot_is_registered_signed_and_its_target_changed_signed(
    client: TestClient, web_engine: Engine
) -> None:
    csrf = signer(client)
    wrong = client.post("/qc/lots/new", data=new_lot(csrf, password="feil"))
    assert wrong.status_code == 422 and rows(web_engine, control_lots) == []
    bad = client.post("/qc/lots/new", data=new_lot(csrf, manufacturer_sd="-1", level=""))
    assert bad.status_code == 422 and "Må være større enn 0." in bad.text
    assert "Må fylles ut." in bad.text
    done = client.post("/qc/lots/new", data=new_lot(csrf), follow_redirects=False)
    assert done.status_code == 303
    (lot,) = rows(web_engine, control_lots)
    assert (lot.lot, lot.manufacturer_mean, lot.created_by) == ("L88", "62.5", "qm")
    (target,) = rows(web_engine, qc_targets)
    assert (target.mean, target.sd, target.source) == ("62.5", "3.1", "manufacturer")
    page = client.get(done.headers["location"]).text
    assert "Kontroll-lot-en er registrert." in page and "62.5 ± 3.1" in page
    again = client.post("/qc/lots/new", data=new_lot(csrf))
    assert again.status_code == 409
    # a new target: signed
    form = {"csrf": csrf, "mean": "61", "sd": "2,9", "source": "manual", "note": "egne 20 serier"}
    refused = client.post(f"/qc/lots/{lot.id}/target", data={**form, "password": "x"})
    assert refused.status_code == 422 and len(rows(web_engine, qc_targets)) == 1
    set_ = client.post(f"/qc/lots/{lot.id}/target", data={**form, "password": PASSWORD})
    assert set_.status_code == 200 and "Ny målverdi er satt." in set_.text
    newest = rows(web_engine, qc_targets)[-1]
    assert (newest.mean, newest.sd, newest.source, newest.set_by) == ("61", "2.9", "manual", "qm")
    meanings = [(s.person, s.meaning) for s in rows(web_engine, signatures)]
    assert meanings == [("qm", "qc_lot_added"), ("qm", "qc_target_set")]
    # expiry and use: audited with the person, not signed
    edit = {
        "csrf": csrf,
        "expires_on": "2027-02-28",
        "opened_on": "2026-12-01",
        "in_use_days": "30",
    }
    changed = client.post(f"/qc/lots/{lot.id}/edit", data=edit)
    assert changed.status_code == 200 and "Endringen er lagret." in changed.text
    (lot,) = rows(web_engine, control_lots)
    assert (str(lot.expires_on), lot.in_use_days, lot.active) == ("2027-02-28", 30, False)
    actions = {(a.actor, a.action) for a in rows(web_engine, audit)}
    assert {("qm", "qc.lot_added"), ("qm", "qc.target_set"), ("qm", "qc.lot_changed")} <= actions
    listed = client.get("/qc/lots?active=1").text
    assert f'data-lot="{lot.id}"' not in listed  # no longer in use
    assert f'data-lot="{lot.id}"' in client.get("/qc/lots").text


def test_an_operator_may_not_change_lots(client: TestClient) -> None:
    csrf = sign_in(client, Role.OPERATOR).csrf
    assert client.post("/qc/lots/new", data=new_lot(csrf)).status_code == 403
    assert client.get("/qc/lots/new").status_code == 403
    assert 'href="/qc/lots/new"' not in client.get("/qc").text


def test_a_qualitative_lot_needs_its_expected_answer(
    client: TestClient, web_engine: Engine
) -> None:
    csrf = signer(client)
    form = new_lot(
        csrf, kind="qualitative", test_code="CRP", manufacturer_mean="", manufacturer_sd=""
    )
    assert client.post("/qc/lots/new", data=form).status_code == 422
    done = client.post("/qc/lots/new", data={**form, "expected": "neg"}, follow_redirects=False)
    assert done.status_code == 303
    (lot,) = rows(web_engine, control_lots)
    assert (lot.kind, lot.expected) == ("qualitative", "neg")
    page = client.get(done.headers["location"]).text
    assert 'id="qc-lot-target"' not in page  # no target for a qualitative lot


def test_manual_qc_entry_shows_the_verdict_at_once(
    client: TestClient, web_engine: Engine, cfg: Config
) -> None:
    ids = lockout(web_engine, cfg)
    csrf = sign_in(client, Role.OPERATOR, person="kari").csrf
    form = client.get("/qc/entry").text
    assert f'<option value="{ids["lot"]}"' in form and "HBA1C · 1 · L77" in form
    bad = client.post(
        "/qc/entry", data={"csrf": csrf, "instrument_id": "afinion-1", "lot_id": str(ids["lot"]),
                           "value": "fire", "performed_at": ""},
    )  # fmt: skip
    assert bad.status_code == 422 and "desimalkomma" in bad.text
    typed = {"csrf": csrf, "instrument_id": "afinion-1", "lot_id": str(ids["lot"]),
             "value": "40,4", "performed_at": "2026-01-15T10:50"}  # fmt: skip
    done = client.post("/qc/entry", data=typed)
    assert done.status_code == 200
    assert 'id="outcome"' in done.text
    stored = [r for r in rows(web_engine, qc_results) if r.source == "manual"]
    assert [(r.value, r.performed_by) for r in stored] == [("40.4", "kari")]
    assert f"Kontroll {stored[0].id} er lagret" in done.text


def test_the_lockout_forms_refuse_before_anything_is_signed(
    client: TestClient, web_engine: Engine, cfg: Config
) -> None:
    ids = lockout(web_engine, cfg)
    path = f"/qc/lockouts/{ids['lockout']}"
    csrf = signer(client)
    page = client.get(path).text
    assert 'id="qc-corrective"' in page and 'id="qc-release"' not in page  # not lifted yet
    empty = client.post(
        f"{path}/corrective-action", data={"csrf": csrf, "text": " ", "password": PASSWORD}
    )
    assert empty.status_code == 422 and "Beskriv tiltaket." in empty.text
    wrong = client.post(
        f"{path}/corrective-action", data={"csrf": csrf, "text": "Ny kassett", "password": "x"}
    )
    assert wrong.status_code == 422 and "Ny kassett" in wrong.text  # the form as typed
    early = client.post(f"{path}/release", data={"csrf": csrf, "note": "ok", "password": PASSWORD})
    assert early.status_code == 409 and "ikke opphevet ennå" in early.text
    assert rows(web_engine, signatures) == []
    with web_engine.connect() as conn:
        (row,) = conn.execute(select(qc_lockouts)).all()
    assert (row.corrective_action, row.lifted_at) == ("", None)
    operator = sign_in(client, Role.OPERATOR, person="ola").csrf
    denied = client.post(
        f"{path}/corrective-action", data={"csrf": operator, "text": "x", "password": "x"}
    )
    assert denied.status_code == 403


def test_a_signed_corrective_action_writes_its_signature(
    client: TestClient, web_engine: Engine, cfg: Config
) -> None:
    ids = lockout(web_engine, cfg)
    path = f"/qc/lockouts/{ids['lockout']}"
    csrf = signer(client)
    done = client.post(
        f"{path}/corrective-action",
        data={"csrf": csrf, "text": "Byttet reagens", "password": PASSWORD},
        follow_redirects=False,
    )
    assert done.status_code == 303
    (signature,) = rows(web_engine, signatures)
    assert (signature.person, signature.meaning, signature.comment) == (
        "qm", "corrective", "Byttet reagens",
    )  # fmt: skip
    assert json.loads(signature.detail)["lockout"] == ids["lockout"]
    actions = {(a.actor, a.action) for a in rows(web_engine, audit)}
    assert ("qm", "qc.corrective_action") in actions
    assert "Byttet reagens" in client.get(path).text


def test_a_flagged_result_shows_its_qc_note_on_its_page(web_engine: Engine) -> None:
    """``lockout = "flag"``: the result measured while out of control is not held; its page
    shows the QC note (the comment that goes to the LIS)."""
    cfg = qc_config(lockout="flag")
    run_in_transaction(web_engine, lambda tx: register_instruments(tx, cfg), T0)
    row = {"instrument_id": "afinion-1", "test_code": "HBA1C", "status": "out_of_control",
           "since": T0, "last_run_at": T0, "updated_at": T0, "patients_since": 0}  # fmt: skip
    run_in_transaction(web_engine, lambda tx: tx.conn.execute(insert(qc_status), row), T0)
    obs = observation("afinion-1", "HBA1C", "48", specimen="P1")
    message = InboundMessage("afinion-1", "hl7", b"p1", T0, observations=(obs,))
    base = context_from_config(cfg)
    run_in_transaction(
        web_engine, lambda tx: store_message(tx, message, current_context(tx, base)), T0
    )
    with web_engine.connect() as conn:
        result_id, comment = conn.execute(select(results.c.id, results.c.comment)).one()
        assert conn.execute(select(holds.c.reason)).all() == []
    app = create_app(cfg, web_engine)
    app.state.web.clock = Clock(T0 + timedelta(hours=1))
    with TestClient(app, base_url=LOCAL) as client:
        sign_in(client, Role.VERIFIER)
        page = client.get(f"/results/{result_id}").text
    assert comment.startswith("QC-merknad:") and "utenfor kontroll" in comment
    assert "<dt>Merknad</dt>" in page and "QC-merknad: kontrollen for HBA1C" in page


def test_the_overview_keeps_to_the_tests_with_qc_rules(
    client: TestClient, web_engine: Engine
) -> None:
    """A lot the analyser registered for a parameter without a [[qc]] entry (a CBC control
    measures them all) is counted, not listed; its "no target" values are not news."""

    def job(tx: Tx) -> None:
        for test, lot in (("HBA1C", "L-HB"), ("MCHC", "L-CBC")):
            lot_id = qc_lots.add_lot(tx, instrument_id="afinion-1", test_code=test, level="1",
                                     lot=lot, person="system")  # fmt: skip
            qc_id = tx.conn.execute(
                insert(qc_results).returning(qc_results.c.id),
                {"instrument_id": "afinion-1", "test_code": test, "value": "33.1",
                 "control_lot": lot, "control_level": "1", "performed_at": T0,
                 "fingerprint": lot, "created_at": T0},
            ).scalar_one()  # fmt: skip
            tx.conn.execute(
                insert(qc_evaluations),
                {"qc_result_id": qc_id, "instrument_id": "afinion-1", "test_code": test,
                 "level": "1", "lot_id": lot_id, "run_key": f"run-{lot}", "verdict": "no_target",
                 "violations": "[]", "evaluated_at": T0, "performed_at": T0},
            )  # fmt: skip

    run_in_transaction(web_engine, job, T0)
    sign_in(client, Role.OPERATOR)
    html = client.get("/qc").text
    lots = html.split('id="h-qc-lots"', 1)[1].split("</section>", 1)[0]
    flagged = html.split('id="h-qc-flagged"', 1)[1].split("</section>", 1)[0]
    assert "L-HB" in lots and "L-CBC" not in lots
    assert 'id="qc-other-lots"' in lots and "1 andre lot" in lots
    assert "HBA1C" in flagged and "MCHC" not in flagged
    every = client.get("/qc/lots").text
    assert "L-HB" in every and "L-CBC" in every  # the lots page lists them all
