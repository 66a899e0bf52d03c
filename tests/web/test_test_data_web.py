"""Test data on the results pages: its state and the reason it is not sent, in both languages."""

from __future__ import annotations

import warnings

from sqlalchemy import Engine, select

from drivers.model import InboundMessage
from gateway.config import Config
from gateway.ingest import store_message
from gateway.rules import context_from_config
from gateway.store.tables import results
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import LOCAL, T0, make_config, observation, sign_in

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


def _store_test_message(engine: Engine, config: Config) -> int:
    message = InboundMessage(
        "afinion-1",
        "hl7v2-mllp",
        b"MSH|...|T|",
        T0,
        observations=(observation("afinion-1", "CRP", "12"),),
        processing_id="T",
        processing_field="MSH-11",
    )
    run_in_transaction(engine, lambda tx: store_message(tx, message, context_from_config(config)))
    with engine.connect() as conn:
        return int(conn.execute(select(results.c.id)).scalar_one())


def test_results_pages_show_test_data_with_its_reason(web_engine: Engine) -> None:
    result_id = _store_test_message(web_engine, make_config())
    for language, state, why in [
        ("nb", "Testdata", "Testmelding (MSH-11 = T): ikke sendt til LIS."),
        ("en", "Test data", "Test message (MSH-11 = T): not sent to the LIS."),
    ]:
        config = make_config(language)
        with TestClient(create_app(config, web_engine), base_url=LOCAL) as client:
            sign_in(client)
            listed = client.get("/results?state=test")
            shown = client.get(f"/results/{result_id}")
        assert listed.status_code == shown.status_code == 200
        for page in (listed.text, shown.text):
            assert state in page and why in page
