"""Manual QC entry (gateway.qc.entry): checks, the raw record first, the stored control, the
people rules (a QC certification with enforce on), refusals that store nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from gateway.config import Config, parse_config
from gateway.people.certification import CertStatus
from gateway.people.roles import Role
from gateway.qc.entry import EntryOutcome, QcEntry, check_value, entry_job
from gateway.rules import context_from_config
from gateway.store import qc_lots
from gateway.store.engine import make_engine, upgrade
from gateway.store.people import CertificationRecord, upsert_certification, upsert_person
from gateway.store.tables import audit, qc_comments, qc_results, raw_messages
from gateway.store.writer import Tx, run_in_transaction

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 in Oslo


def config(*, enforce: bool = False) -> Config:
    return parse_config(
        {
            "site": {"name": "test"},
            "people": {"enforce": enforce},
            "instruments": [
                {"id": "afinion-1", "driver": "astm_afinion2", "url": "tcp://127.0.0.1:9"},
                {"id": "strip-1", "driver": "astm_clinitek_status", "url": "tcp://127.0.0.1:10"},
            ],
            "tests": [{"code": "HbA1c", "unit": "mmol/mol"}, {"code": "HCG", "value_type": "ST"}],
            "qc": [{"test": "HbA1c", "levels": ["1", "2"]}, {"test": "HCG"}],
        }
    )


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """On SQLite and on PostgreSQL."""
    engine = make_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def lots(engine: Engine) -> dict[str, int]:
    """Three lots: HbA1c level 1 (any instrument), an expired one, a qualitative HCG lot."""
    expires = date(2027, 6, 30)

    def job(tx: Tx) -> dict[str, int]:
        upsert_person(tx, "kari", name="Kari", roles=[Role.OPERATOR], actor="test")
        upsert_person(tx, "admin", name="Admin", roles=[Role.ADMIN], actor="test")
        return {
            "hba1c": qc_lots.add_lot(
                tx, instrument_id="", test_code="HbA1c", level="1", lot="L1", person="qm",
                unit="mmol/mol", manufacturer_mean="40", manufacturer_sd="2", expires_on=expires,
            ),
            "expired": qc_lots.add_lot(
                tx, instrument_id="afinion-1", test_code="HbA1c", level="2", lot="OLD",
                person="qm", expires_on=date(2026, 11, 30),
            ),
            "hcg": qc_lots.add_lot(
                tx, instrument_id="strip-1", test_code="HCG", level="pos", lot="P7", person="qm",
                kind="qualitative", expected="pos", expires_on=expires,
            ),
        }  # fmt: skip

    return run_in_transaction(engine, job, NOW)


def enter(
    engine: Engine, entry: QcEntry, person: str = "kari", *, cfg: Config | None = None
) -> EntryOutcome:
    base = context_from_config(cfg or config())
    return run_in_transaction(engine, entry_job(entry, person, base), NOW)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_a_quantitative_value_takes_a_decimal_comma() -> None:
    lot = qc_lots.Lot(
        1, "", "HbA1c", "1", "L1", "", "", "quantitative", "", None, None, None, None, None,
        "", None, True, None,
    )  # fmt: skip
    assert check_value(" 41,5 ", lot) == ("41.5", [])
    assert check_value("41.50", lot)[0] == "41.50"
    assert [e.code for e in check_value("41,5 mmol", lot)[1]] == ["not_a_number"]
    assert [e.code for e in check_value("", lot)[1]] == ["required"]


def test_a_typed_control_is_stored_after_its_raw_record(engine: Engine) -> None:
    ids = lots(engine)
    outcome = enter(
        engine,
        QcEntry("afinion-1", str(ids["hba1c"]), "41,5", "2026-12-07T09:45", comment="ny kolbe"),
    )
    assert outcome.ok, outcome.errors
    with engine.connect() as conn:
        row = conn.execute(select(qc_results).where(qc_results.c.id == outcome.qc_result_id)).one()
        raw = conn.execute(
            select(raw_messages).where(raw_messages.c.id == outcome.raw_message_id)
        ).one()
        comment = conn.execute(select(qc_comments.c.text, qc_comments.c.person)).one()
        audited = conn.execute(
            select(audit.c.actor).where(audit.c.action == "qc.received")
        ).scalars()
        audited_by = list(audited)
    assert (row.value, row.control_lot, row.control_level, row.unit) == (
        "41.5",
        "L1",
        "1",
        "mmol/mol",
    )
    assert (row.source, row.performed_by, row.raw_message_id) == ("manual", "kari", raw.id)
    # 09:45 without an offset is Oslo time: 08:45 UTC
    assert row.performed_at == datetime(2026, 12, 7, 8, 45, tzinfo=UTC)
    assert raw.protocol == "manual-qc"
    record = json.loads(bytes(raw.raw))
    assert record["typed"]["value"] == "41,5"  # as typed, before it became 41.5
    assert record["person"] == "kari" and record["lot"]["lot"] == "L1"
    assert tuple(comment) == ("ny kolbe", "kari")
    assert audited_by == ["kari"]


def test_the_same_control_twice_is_refused_before_anything_is_written(engine: Engine) -> None:
    ids = lots(engine)
    entry = QcEntry("afinion-1", str(ids["hba1c"]), "41.5", "2026-12-07T09:45")
    assert enter(engine, entry).ok
    raws = count(engine, raw_messages)
    again = enter(engine, entry)
    assert [e.code for e in again.errors] == ["duplicate"]
    assert count(engine, raw_messages) == raws and count(engine, qc_results) == 1


def test_a_qualitative_control_stores_the_answer_read(engine: Engine) -> None:
    ids = lots(engine)
    outcome = enter(engine, QcEntry("strip-1", str(ids["hcg"]), "  pos "))
    assert outcome.ok, outcome.errors
    with engine.connect() as conn:
        row = conn.execute(select(qc_results)).one()
    assert (row.value, row.test_code, row.control_level) == ("pos", "HCG", "pos")


@pytest.mark.parametrize(
    ("field", "make", "code"),
    [
        ("lot_id", lambda ids: QcEntry("afinion-1", str(ids["expired"]), "50"), "lot_expired"),
        ("lot_id", lambda ids: QcEntry("afinion-1", str(ids["hcg"]), "pos"), "wrong_instrument"),
        ("lot_id", lambda ids: QcEntry("afinion-1", "999", "50"), "unknown_lot"),
        ("lot_id", lambda ids: QcEntry("afinion-1", "", "50"), "required"),
        (
            "instrument_id",
            lambda ids: QcEntry("nope", str(ids["hba1c"]), "50"),
            "unknown_instrument",
        ),
        ("value", lambda ids: QcEntry("afinion-1", str(ids["hba1c"]), "høy"), "not_a_number"),
        (
            "performed_at",
            lambda ids: QcEntry("afinion-1", str(ids["hba1c"]), "40", NOW + timedelta(hours=1)),
            "in_future",
        ),
    ],
)
def test_mistakes_are_named_and_nothing_is_stored(
    engine: Engine, field: str, make: object, code: str
) -> None:
    ids = lots(engine)
    outcome = enter(engine, make(ids))  # type: ignore[operator]
    assert (field, code) in [(e.field, e.code) for e in outcome.errors]
    assert count(engine, qc_results) == 0 and count(engine, raw_messages) == 0
    for error in outcome.errors:  # every code reads in both languages
        assert error.message("nb") and error.message("en")
        assert not error.message("nb").startswith("qc.entry.error")


def test_a_lot_past_its_in_use_days_is_refused(engine: Engine) -> None:
    ids = lots(engine)
    run_in_transaction(
        engine,
        lambda tx: qc_lots.update_lot(
            tx, ids["hba1c"], person="qm", opened_on=date(2026, 11, 1), in_use_days=30
        ),
        NOW,
    )
    outcome = enter(engine, QcEntry("afinion-1", str(ids["hba1c"]), "40"))
    assert [e.code for e in outcome.errors] == ["lot_in_use_expired"]


def test_admin_enters_no_controls(engine: Engine) -> None:
    ids = lots(engine)
    outcome = enter(engine, QcEntry("afinion-1", str(ids["hba1c"]), "40"), person="admin")
    assert [e.code for e in outcome.errors] == ["no_role"]


def test_with_enforce_on_a_qc_certification_is_needed(engine: Engine) -> None:
    ids = lots(engine)
    cfg = config(enforce=True)
    entry = QcEntry("afinion-1", str(ids["hba1c"]), "40")
    refused = enter(engine, entry, cfg=cfg)
    assert [(e.code, dict(e.params).get("task")) for e in refused.errors] == [
        ("not_certified", "qc/afinion-1:HbA1c")
    ]

    def certify(task: str) -> None:
        record = CertificationRecord(
            "kari", task, CertStatus.CERTIFIED, date(2026, 1, 1), date(2027, 1, 1)
        )
        run_in_transaction(engine, lambda tx: upsert_certification(tx, record, actor="t"), NOW)

    certify("afinion-1:HbA1c")  # the analysis itself is not the QC task
    assert [e.code for e in enter(engine, entry, cfg=cfg).errors] == ["not_certified"]
    certify("qc/afinion-1")
    assert enter(engine, entry, cfg=cfg).ok
