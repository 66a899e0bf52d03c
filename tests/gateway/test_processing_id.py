"""The processing-ID rule (gateway.rules.processing_id) and where the gateway applies it.

One rule for HL7 MSH-11 and ASTM H.12: a message its sender did not mark as production is
received and kept as test data (state ``test``, a hold that cannot be released), or, with an
instrument's ``test_messages = "quarantine"``, kept in quarantine; it never reaches the LIS.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from drivers.model import InboundMessage, Method, Observation
from gateway import lifecycle
from gateway.config import TestConfig as MappingConfig
from gateway.config import parse_config
from gateway.errors import ConfigError, LocalProtocolError
from gateway.holds import release
from gateway.ingest import store_message
from gateway.lis.oru import OutboundResult, build_oru
from gateway.model import HoldReason, Result, State
from gateway.quarantine import replay
from gateway.rules import RuleContext
from gateway.rules.processing_id import TestMessages, judge
from gateway.store import audit as audit_log
from gateway.store.queries import list_results
from gateway.store.tables import audit, holds, qc_results, quarantine, raw_messages, results
from gateway.store.writer import Event, Tx, run_in_transaction
from gateway.texts import describe_hold, quarantine_code, quarantine_text

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FNR = "01010012356"
TESTS = {("", "CRP"): MappingConfig(code="CRP", nlk="NPU19748")}
KEEP = RuleContext(tests=TESTS)
QUARANTINE = RuleContext(tests=TESTS, test_messages={"bench-1": TestMessages.QUARANTINE})


def observation(value: str = "12", *, qc: bool = False, specimen: str = "S1", **kw: Any) -> Any:
    return Observation(
        instrument_id="bench-1",
        test_code="CRP",
        value=value,
        performed_at=NOW,
        specimen_id=specimen,
        patient_id="" if qc else FNR,
        is_qc=qc,
        control_lot="L1" if qc else "",
        control_level="1" if qc else "",
        **kw,
    )


def message(
    processing_id: str, *obs: Observation, field: str = "MSH-11", raw: bytes | None = None
) -> InboundMessage:
    return InboundMessage(
        "bench-1",
        "hl7v2-mllp",
        raw if raw is not None else f"MSH|...|{processing_id}|{len(obs)}".encode(),
        NOW,
        observations=obs or (observation(),),
        processing_id=processing_id,
        processing_field=field,
    )


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processing_id", "qc", "test_data"),
    [
        ("P", False, False),
        ("", False, False),  # not sent: production, as both standards read an empty field
        (" p ", False, False),
        ("T", False, True),
        ("D", False, True),
        ("X", False, True),  # anything else than P is not production
        ("PX", False, True),
        ("Q", True, False),  # E1394 quality control: a message of controls is production QC
        ("Q", False, True),  # ... but patient results marked Q are not
        ("T", True, True),
    ],
)
def test_the_rule_says_which_messages_are_test_data(
    processing_id: str, qc: bool, test_data: bool
) -> None:
    found = judge(message(processing_id, observation(qc=qc)), TestMessages.KEEP)
    assert (found is not None) == test_data
    if found is not None:
        assert found.processing_id == processing_id.strip().upper()
        assert found.field == "MSH-11" and found.policy is TestMessages.KEEP


def test_the_rule_names_the_field_and_the_reason_in_both_languages() -> None:
    found = judge(message("T", field="H.12"), TestMessages.QUARANTINE)
    assert found is not None and found.policy is TestMessages.QUARANTINE
    hold = found.hold()
    assert hold.reason == HoldReason.TEST_MESSAGE and hold.release_role == ""
    assert describe_hold(hold, "en") == (
        "test_message: Test message (H.12 = T): not sent to the LIS."
    )
    assert describe_hold(hold, "nb") == "test_message: Testmelding (H.12 = T): ikke sendt til LIS."
    assert found.error() == "test message (H.12 = T): kept in quarantine, not sent to the LIS"


def test_the_policy_is_per_instrument_and_keep_by_default() -> None:
    assert KEEP.test_message_policy("bench-1") is TestMessages.KEEP
    assert QUARANTINE.test_message_policy("bench-1") is TestMessages.QUARANTINE
    assert QUARANTINE.test_message_policy("other") is TestMessages.KEEP


def test_the_config_option_is_strict_and_names_its_key() -> None:
    base = {"site": {"name": "s"}}
    inst = {"id": "bench-1", "driver": "hl7_mllp", "url": "tcp-listen://127.0.0.1:5101"}
    assert parse_config({**base, "instruments": [inst]}).instruments[0].test_messages == "keep"
    quarantined = {**inst, "test_messages": "quarantine"}
    config = parse_config({**base, "instruments": [quarantined]})
    from gateway.rules import context_from_config

    assert context_from_config(config).test_message_policy("bench-1") is TestMessages.QUARANTINE
    with pytest.raises(ConfigError, match=r"instruments\[0\]\.test_messages"):
        parse_config({**base, "instruments": [{**inst, "test_messages": "drop"}]})


def test_the_lifecycle_has_a_test_state_that_never_moves_on() -> None:
    lifecycle.check(State.RECEIVED, State.TEST)
    assert not [move for move in lifecycle.TRANSITIONS if move[0] is State.TEST]
    with pytest.raises(lifecycle.TransitionError):
        lifecycle.check(State.TEST, State.QUEUED)


# --- ingest ---------------------------------------------------------------------------------


def test_a_test_message_is_kept_as_test_data(engine: Engine) -> None:
    seen: list[Event] = []

    def job(tx: Tx) -> Any:
        outcome = store_message(tx, message("T", observation(), observation(qc=True)), KEEP)
        seen.extend(tx.events)
        return outcome

    outcome = run_in_transaction(engine, job)
    assert (outcome.stored, outcome.test, outcome.queued, outcome.held, outcome.qc) == (
        1,
        1,
        0,
        0,
        0,
    )
    assert outcome.test_message and not outcome.quarantined
    with engine.connect() as conn:
        row = conn.execute(select(results)).one()
        (hold,) = conn.execute(select(holds)).all()
        assert conn.execute(select(func.count()).select_from(qc_results)).scalar_one() == 0
        assert conn.execute(select(raw_messages.c.outcome)).scalar_one() == "stored"
        trail = conn.execute(select(audit.c.action, audit.c.reason).order_by(audit.c.id)).all()
        assert audit_log.verify(conn).ok
        (listed,) = list_results(conn)
    assert (row.state, row.processing_id) == ("test", "T")
    assert (hold.reason, hold.release_role, hold.released_at) == ("test_message", "", None)
    assert json.loads(hold.params) == {"field": "MSH-11", "processing_id": "T"}
    assert [a for a, _ in trail] == ["result.received", "result.test"]
    assert trail[1].reason == "test_message: Test message (MSH-11 = T): not sent to the LIS."
    assert ("result", "bench-1", {"ids": [row.id], "to": "test"}) in seen
    assert listed["state"] == "test"
    assert listed["holds"][0]["detail"] == "Test message (MSH-11 = T): not sent to the LIS."


def test_a_test_message_is_quarantined_when_the_instrument_says_so(engine: Engine) -> None:
    sent = message("D", observation(), raw=b"MSH|^~\\&|raw bytes|D|")
    outcome = run_in_transaction(engine, lambda tx: store_message(tx, sent, QUARANTINE))
    assert outcome.quarantined and outcome.test_message
    assert outcome.error == "test message (MSH-11 = D): kept in quarantine, not sent to the LIS"
    with engine.connect() as conn:
        row = conn.execute(
            select(quarantine, raw_messages.c.raw, raw_messages.c.outcome).join(
                raw_messages, raw_messages.c.id == quarantine.c.raw_message_id
            )
        ).one()
        assert conn.execute(select(func.count()).select_from(results)).scalar_one() == 0
    assert (bytes(row.raw), row.outcome, row.field) == (sent.raw, "quarantined", "MSH-11")
    reason, params = quarantine_code(row._asdict())
    assert (reason, params) == ("test_message", {"field": "MSH-11", "processing_id": "D"})
    assert quarantine_text("en", reason, params) == (
        "Test message (MSH-11 = D): the sender marked it as test or debugging data, so it is "
        "kept here and never used as production data."
    )


def test_a_production_message_after_a_test_one_with_the_same_values_still_goes(
    engine: Engine,
) -> None:
    run_in_transaction(engine, lambda tx: store_message(tx, message("T"), KEEP))
    again = run_in_transaction(engine, lambda tx: store_message(tx, message("P"), KEEP))
    assert (again.stored, again.queued, again.duplicates) == (1, 1, 0)
    with engine.connect() as conn:
        states = sorted(conn.execute(select(results.c.state)).scalars())
    assert states == ["queued", "test"]


def test_a_correction_never_points_at_test_data(engine: Engine) -> None:
    run_in_transaction(engine, lambda tx: store_message(tx, message("T"), KEEP))
    corrected = message("P", observation("13", result_status="C"))
    run_in_transaction(engine, lambda tx: store_message(tx, corrected, KEEP))
    with engine.connect() as conn:
        row = conn.execute(select(results).where(results.c.state == "queued")).one()
    assert row.correction_of is None


def test_test_data_cannot_be_released_to_the_lis(engine: Engine) -> None:
    run_in_transaction(engine, lambda tx: store_message(tx, message("T"), KEEP))
    with engine.connect() as conn:
        result_id = conn.execute(select(results.c.id)).scalar_one()
    outcome = run_in_transaction(
        engine, lambda tx: release(tx, result_id, "kari", note="looks fine", context=KEEP)
    )
    assert outcome.refused and outcome.code == "test_data"
    assert "test data" in outcome.message("en")
    with engine.connect() as conn:
        assert conn.execute(select(results.c.state)).scalar_one() == "test"
        assert conn.execute(select(holds.c.released_at)).scalar_one() is None


# --- replay ---------------------------------------------------------------------------------


def _config(policy: str) -> Any:
    return parse_config(
        {
            "site": {"name": "s"},
            "instruments": [
                {
                    "id": "bench-1",
                    "driver": "astm_generic",
                    "url": "tcp-listen://127.0.0.1:5101",
                    "test_messages": policy,
                }
            ],
            "tests": [{"code": "GLU", "nlk": "NPU02192"}],
        }
    )


ASTM_T = (
    b"H|\\^&|||SIM^1^S1|||||||T|LIS2-A2|20261207090000\r"
    b"P|1|" + FNR.encode() + b"\r"
    b"O|1|SPEC-7||^^^GLU|R||||||N||||||||||||||F\r"
    b"R|1|^^^GLU|5.5|mmol/L||N||F||op1||20261207090000\r"
    b"L|1|N\r"
)


def _legacy_quarantine(engine: Engine) -> int:
    """An H.12 = T message as the profiles refused it before the rule: an error on H.12."""
    refused = InboundMessage(
        "bench-1",
        "astm-e1394",
        ASTM_T,
        NOW,
        error="processing ID is not P (production)",
        error_field="H.12",
    )
    run_in_transaction(engine, lambda tx: store_message(tx, refused, KEEP))
    with engine.connect() as conn:
        return int(conn.execute(select(quarantine.c.id)).scalar_one())


def test_replay_keeps_a_test_message_as_test_data(engine: Engine) -> None:
    entry = _legacy_quarantine(engine)
    config = _config("keep")
    from gateway.rules import context_from_config

    done = run_in_transaction(
        engine,
        lambda tx: replay(tx, entry, config, context_from_config(config), "kari"),
        NOW + timedelta(minutes=1),
    )
    assert done.ok and "test data" in done.detail
    with engine.connect() as conn:
        states = set(conn.execute(select(results.c.state)).scalars())
    assert states == {"test"}


def test_replay_leaves_a_test_message_in_quarantine_when_so_configured(engine: Engine) -> None:
    entry = _legacy_quarantine(engine)
    config = _config("quarantine")
    from gateway.rules import context_from_config

    done = run_in_transaction(
        engine, lambda tx: replay(tx, entry, config, context_from_config(config), "kari")
    )
    assert not done.ok and "H.12 = T" in done.detail
    with engine.connect() as conn:
        assert conn.execute(select(quarantine.c.state)).scalar_one() == "open"
        assert conn.execute(select(func.count()).select_from(results)).scalar_one() == 0


# --- the ORU builder never relabels ---------------------------------------------------------


def _result(processing_id: str) -> Result:
    return Result(
        instrument_id="bench-1",
        test_code="CRP",
        value="12",
        value_type="NM",
        unit="mg/L",
        reference_range="",
        abnormal_flags=(),
        method=Method.MEASURED,
        performed_at=NOW,
        operator_id="",
        specimen_id="S1",
        patient_id=FNR,
        nlk_code="NPU19748",
        processing_id=processing_id,
    )


def test_the_oru_builder_refuses_anything_but_production_results() -> None:
    from gateway.config import LisConfig

    lis = LisConfig(url="tcp://127.0.0.1:2575")
    good = build_oru([OutboundResult(1, _result("P"))], control_id="C1", now=NOW, lis=lis)
    assert good.split("\r")[0].split("|")[10] == "P"
    for processing_id in ("T", "D", "Q", ""):
        with pytest.raises(LocalProtocolError) as caught:
            build_oru(
                [OutboundResult(1, _result("P")), OutboundResult(2, _result(processing_id))],
                control_id="C1",
                now=NOW,
                lis=lis,
            )
        assert caught.value.field == "MSH-11"
    # a test LIS link labels production results T; that is the site's choice, not a relabel
    test_lis = lis.model_copy(update={"processing_id": "T"})
    text = build_oru([OutboundResult(1, _result("P"))], control_id="C1", now=NOW, lis=test_lis)
    assert text.split("\r")[0].split("|")[10] == "T"


# --- orders from the LIS --------------------------------------------------------------------


@pytest.mark.parametrize("processing_id", ["T", "D"])
async def test_test_orders_from_the_lis_never_reach_the_worklist(
    engine: Engine, processing_id: str
) -> None:
    from drivers.model import OrderAction, OrderRequest
    from drivers.protocols.hl7.ack import parse_ack
    from drivers.protocols.hl7.orders import build_order_message
    from gateway.orders.receiver import OrderReceiver
    from gateway.orders.store import list_orders
    from gateway.store.writer import GroupCommitWriter

    order = OrderRequest(OrderAction.NEW, "S-100", ("GLU",), FNR, "R", "R-1")
    production = build_order_message([order], control_id="O1", now=NOW)
    assert production.count(b"|P|2.5.1") == 1
    test = production.replace(b"|P|2.5.1", f"|{processing_id}|2.5.1".encode())
    writer = GroupCommitWriter(engine)
    writer.start()
    try:
        receiver = OrderReceiver(writer)
        ack = parse_ack(await receiver._handle(test))
    finally:
        writer.stop()
    assert (ack.code, ack.error_code) == ("AR", "202")
    assert f"MSH-11 = {processing_id}" in ack.text
    with engine.connect() as conn:
        assert list_orders(conn, state=None) == []
        row = conn.execute(
            select(quarantine, raw_messages.c.raw).join(
                raw_messages, raw_messages.c.id == quarantine.c.raw_message_id
            )
        ).one()
    assert (bytes(row.raw), row.reason, row.field) == (test, "test_message", "MSH-11")
