"""The demo's closing summary against a store filled through the real ingest path: held totals
beside the per-reason counts, which overlap when a result has several holds."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from drivers.model import InboundMessage, Observation
from gateway.demo import DemoPlan, summary_dict
from gateway.ingest import store_message
from gateway.rules import context_from_config
from gateway.store.writer import run_in_transaction
from tests.integration.helpers import gateway_config, make_config

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
VALID = "01010012356"
INVALID = VALID[:-1] + "0"


def test_summary_has_the_held_total_beside_the_overlapping_reasons(
    engine: Engine, store_url: str
) -> None:
    config = make_config(gateway_config(store_url, [5999], lis_port=None))
    observations = (
        # a bad patient ID and a test code with no mapping: one result, two holds
        Observation("inst-0", "NOSUCHTEST", "1", patient_id=INVALID, specimen_id="S1"),
        Observation("inst-0", "CRP", "2", patient_id=INVALID, specimen_id="S2"),
        Observation("inst-0", "CRP", "3", patient_id=VALID, specimen_id="S3"),
    )
    message = InboundMessage("inst-0", "hl7", b"m1", NOW, observations=observations)
    context = context_from_config(config)
    run_in_transaction(engine, lambda tx: store_message(tx, message, context))

    data = summary_dict(engine, DemoPlan(config))

    assert data["received"] == 3
    assert data["held_total"] == 2
    assert data["held"] == {"invalid_patient_id": 2, "unmapped_test": 1}
    assert sum(data["held"].values()) > data["held_total"]
    assert data["queued"] == 1
    assert data["lost"] == 0  # no simulator, nothing acknowledged, nothing to miss
    assert data["instruments"]["inst-0"]["received"] == 3
