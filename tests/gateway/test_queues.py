"""The people pages' queues against a real store: who may verify, co-sign or act on which hold
(and why not), what waits for one person, the recertification due list, and a fixed number
of queries whatever the number of rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from drivers.model import InboundMessage, Observation
from gateway import catalogue
from gateway.ingest import store_message
from gateway.model import HoldReason
from gateway.people.certification import CertStatus
from gateway.people.permissions import REFUSALS
from gateway.people.roles import Role
from gateway.rule_context import current_context
from gateway.rules import RuleContext
from gateway.store.engine import make_engine, upgrade
from gateway.store.people import load_people
from gateway.store.queues import (
    cosign_queue,
    held_results,
    my_work,
    recert_due_list,
    verification_queue,
)
from gateway.store.writer import Tx, run_in_transaction
from tests.gateway.manual_fixtures import (
    FNR,
    NOW,
    TODAY,
    PersonSpec,
    add_people,
    enter,
    entry,
    rule_context,
)

LATER = NOW + timedelta(hours=1)
AFINION = {"afinion-1": CertStatus.CERTIFIED}
PEOPLE = [
    # operator and verifier: her own readings she may not verify, others' she may
    PersonSpec(
        "kari",
        (Role.OPERATOR, Role.VERIFIER),
        certs=AFINION,
        operator_ids=("KB",),
        due=TODAY + timedelta(days=10),
    ),
    # certified for the model: covers every Afinion 2
    PersonSpec("vera", (Role.VERIFIER,), certs={"astm_afinion2": CertStatus.CERTIFIED}),
    PersonSpec("una", (Role.VERIFIER,), certs={"clinitek-1": CertStatus.CERTIFIED}),
    PersonSpec(
        "tom",
        (Role.OPERATOR,),
        certs={"afinion-1:HbA1c": CertStatus.TRAINEE},
        supervisor="sofie",
    ),
    PersonSpec("sofie", (Role.SUPERVISOR,), certs=AFINION),
    PersonSpec(
        "sam",
        (Role.SUPERVISOR,),
        certs={"afinion-1": CertStatus.SUSPENDED},
        due=TODAY + timedelta(days=2),
    ),
    # due today: valid through today, expired from the next midnight in Oslo
    PersonSpec("eva", (Role.VERIFIER,), certs=AFINION, due=TODAY),
    PersonSpec("dora", (Role.VERIFIER,), certs=AFINION, due=TODAY - timedelta(days=3)),
    PersonSpec("quinn", (Role.QUALITY_MANAGER,)),
    PersonSpec("ada", (Role.ADMIN,)),
    PersonSpec(
        "gone", (Role.VERIFIER,), certs=AFINION, active=False, due=TODAY + timedelta(days=1)
    ),
]


def instrument_result(engine: Engine, context: RuleContext, *, patient: str, operator: str) -> None:
    obs = Observation(
        instrument_id="afinion-1",
        test_code="CRP",
        value="12",
        unit="mg/L",
        performed_at=NOW - timedelta(minutes=5),
        operator_id=operator,
        specimen_id=f"I-{operator}",
        patient_id=patient,
    )
    message = InboundMessage(
        "afinion-1", "astm", f"raw {operator} {patient}".encode(), NOW, observations=(obs,)
    )

    def job(tx: Tx) -> None:
        store_message(tx, message, current_context(tx, context))

    run_in_transaction(engine, job, now=NOW)


def populate(engine: Engine) -> dict[str, int]:
    """Four held results: kari's entry, trainee tom's entry, an instrument result with an
    invalid patient ID (kari's operator ID), one by an unknown operator."""
    add_people(engine, PEOPLE)
    context = rule_context(enforce=True)
    ids = {}
    for name, person, specimen in (("kari", "kari", "S1"), ("tom", "tom", "S2")):
        outcome = enter(engine, entry(specimen_id=specimen), person, context)
        assert outcome.result_id is not None, outcome.errors
        ids[name] = outcome.result_id
    instrument_result(engine, context, patient=FNR[:-1] + "3", operator="KB")
    instrument_result(engine, context, patient=FNR, operator="XX")
    ids["invalid_id"], ids["unknown_operator"] = ids["tom"] + 1, ids["tom"] + 2
    return ids


@pytest.fixture
def store(sqlite_url: str) -> Iterator[tuple[Engine, dict[str, int]]]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    ids = populate(engine)
    yield engine, ids
    engine.dispose()


CONTEXT = rule_context(enforce=True)


def read(engine: Engine, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with engine.connect() as conn:
        return fn(conn, *args, **kwargs)


def verdicts(engine: Engine, viewer: str, now: datetime = LATER) -> dict[int, str]:
    """result id -> "" (may verify) or the refusal code, for ``viewer``."""
    items = read(engine, verification_queue, viewer, CONTEXT, now)
    assert all(item.may_verify == (not item.refused) for item in items)
    return {item.result.id: item.refused for item in items}


def test_the_verification_queue_says_who_may_verify_what(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = store
    kari, tom = ids["kari"], ids["tom"]
    assert verdicts(engine, "vera") == {kari: "", tom: ""}  # certified for the model
    assert verdicts(engine, "kari") == {kari: "own_result", tom: ""}
    assert verdicts(engine, "una") == {kari: "not_certified", tom: "not_certified"}
    assert verdicts(engine, "dora") == {kari: "not_certified", tom: "not_certified"}  # overdue
    for viewer in ("ada", "sofie", "quinn", "tom"):
        assert verdicts(engine, viewer) == {kari: "no_role", tom: "no_role"}, viewer
    assert verdicts(engine, "gone") == {kari: "inactive", tom: "inactive"}
    assert verdicts(engine, "nobody") == {kari: "unknown_person", tom: "unknown_person"}


def test_a_queue_item_carries_the_first_reading_with_the_patient_masked(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = store
    first, second = read(engine, verification_queue, "vera", CONTEXT, LATER)
    assert first.result.id == ids["kari"] and second.result.id == ids["tom"]  # oldest first
    reading = first.result
    assert (reading.value, reading.unit, reading.method) == ("48.5", "mmol/mol", "manual")
    assert (reading.performer, reading.performer_name) == ("kari", "Kari")
    assert reading.performed_at == datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    assert reading.received_at == NOW and first.held_at == NOW
    assert reading.patient_id == "150372*****" and reading.task == "afinion-1:HbA1c"
    shown = read(engine, verification_queue, "vera", CONTEXT, LATER, show_patient=True)
    assert shown[0].result.patient_id == FNR


def test_a_certification_due_today_lets_its_holder_verify_until_midnight_in_oslo(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = store
    before_midnight = datetime(2026, 12, 7, 22, 59, tzinfo=UTC)  # 23:59 in Oslo
    midnight = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)  # 00:00 on the 8th in Oslo
    assert verdicts(engine, "eva", before_midnight)[ids["kari"]] == ""
    assert verdicts(engine, "eva", midnight)[ids["kari"]] == "not_certified"


def test_the_cosign_queue_names_trainee_task_and_supervisor(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = store
    (item,) = read(engine, cosign_queue, "sofie", CONTEXT, LATER)
    assert item.result.id == ids["tom"]
    assert (item.trainee, item.task, item.supervisor) == ("tom", "afinion-1:HbA1c", "sofie")
    assert item.may_cosign and item.refused == ""
    refused = {
        viewer: read(engine, cosign_queue, viewer, CONTEXT, LATER)[0].refused
        for viewer in ("sam", "vera", "ada", "tom")
    }
    assert refused == {
        "sam": "not_certified",  # a supervisor whose certification is suspended
        "vera": "no_role",
        "ada": "no_role",
        "tom": "no_role",
    }


def holds_for(engine: Engine, viewer: str, **kwargs: Any) -> dict[tuple[int, str], Any]:
    items = read(engine, held_results, viewer, CONTEXT, LATER, **kwargs)
    return {(item.result.id, hold.reason): hold for item in items for hold in item.holds}


def test_held_results_offer_each_viewer_only_the_actions_they_may_take(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = store
    verify = (ids["kari"], HoldReason.AWAITING_VERIFICATION)
    cosign = (ids["tom"], HoldReason.AWAITING_COSIGN)
    invalid = (ids["invalid_id"], HoldReason.INVALID_PATIENT_ID)
    uncertified = (ids["unknown_operator"], HoldReason.UNCERTIFIED_OPERATOR)
    # an admin sees every hold and is offered nothing, told nothing
    admin = holds_for(engine, "ada")
    assert set(admin) >= {verify, cosign, invalid, uncertified}
    assert all(h.actions == () and h.refused == {} for h in admin.values())

    vera = holds_for(engine, "vera")
    assert vera[verify].actions == ("verify", "reject")
    assert vera[invalid].actions == ("correct",)  # never "release": only a correction ends it
    assert vera[uncertified].actions == () and vera[uncertified].refused == {}
    assert vera[cosign].actions == ()

    kari = holds_for(engine, "kari")
    assert kari[verify].actions == ()
    assert kari[verify].refused == {"verify": "own_result", "reject": "own_result"}

    quinn = holds_for(engine, "quinn")
    assert quinn[uncertified].actions == ("override",)
    assert quinn[invalid].actions == ("correct",)
    assert quinn[verify].actions == () and quinn[verify].refused == {}

    sofie = holds_for(engine, "sofie")
    assert sofie[cosign].actions == ("cosign",)
    assert sofie[uncertified].actions == ("override",)

    # the hold's parameters come along for the page's sentence, the patient ID masked
    assert vera[invalid].params["patient_id"] == "150372*****"
    assert vera[invalid].release_role == Role.VERIFIER
    item = read(engine, held_results, "vera", CONTEXT, LATER, reason=HoldReason.AWAITING_COSIGN)
    assert [i.result.id for i in item] == [ids["tom"]]
    assert item[0].actions == ("verify", "reject")  # the trainee's result also needs verifying


def test_my_work_lists_what_i_may_do_and_my_own_held_results(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = store
    kari = read(engine, my_work, "kari", CONTEXT, LATER, reminder_days=30)
    assert [i.result.id for i in kari.verify] == [ids["tom"]]  # not her own
    assert kari.cosign == ()
    assert [i.result.id for i in kari.my_held] == [ids["kari"], ids["invalid_id"]]
    (due,) = kari.certifications_due
    assert (due.task, due.recert_due, due.days_left) == ("afinion-1", date(2026, 12, 17), 10)
    assert read(engine, my_work, "kari", CONTEXT, LATER, reminder_days=5).certifications_due == ()

    sofie = read(engine, my_work, "sofie", CONTEXT, LATER)
    assert [i.result.id for i in sofie.cosign] == [ids["tom"]]
    assert sofie.verify == () and sofie.my_held == ()

    tom = read(engine, my_work, "tom", CONTEXT, LATER)
    assert tom.verify == () and tom.cosign == ()
    (mine,) = tom.my_held
    assert [h.reason for h in mine.holds] == [
        HoldReason.AWAITING_COSIGN,
        HoldReason.AWAITING_VERIFICATION,
    ]
    assert mine.actions == ()
    assert read(engine, my_work, "ada", CONTEXT, LATER) == type(tom)((), (), (), ())


def test_recertification_due_list_is_by_date_with_the_overdue_first(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, _ = store
    due = read(engine, recert_due_list, TODAY, 30)
    assert [(d.person, d.days_left, d.overdue) for d in due] == [
        ("dora", -3, True),
        ("eva", 0, False),
        ("kari", 10, False),
    ]  # not sam (suspended), not gone (disabled), not the ones due in 2027
    assert due[0].name == "Dora" and due[0].task == "afinion-1"
    assert [d.person for d in read(engine, recert_due_list, TODAY, 0)] == ["dora", "eva"]
    assert [d.person for d in read(engine, recert_due_list, TODAY, 400)][-1] == "vera"


def test_every_refusal_has_a_text_in_both_languages() -> None:
    for code in REFUSALS:
        for lang in catalogue.LANGUAGES:
            assert catalogue.has(lang, f"permission.refused.{code}"), (lang, code)


class Statements:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


def test_the_queues_run_a_fixed_number_of_queries_whatever_the_rows(
    store: tuple[Engine, dict[str, int]],
) -> None:
    engine, _ = store

    def queries(fn: Any, *args: Any, **kwargs: Any) -> int:
        with engine.connect() as conn:
            facts = load_people(conn)
            statements = Statements(engine)
            fn(conn, *args, facts=facts, **kwargs)
            event.remove(engine, "before_cursor_execute", statements._seen)
            return statements.count

    def all_counts() -> tuple[int, ...]:
        return (
            queries(verification_queue, "vera", CONTEXT, LATER),
            queries(cosign_queue, "sofie", CONTEXT, LATER),
            queries(held_results, "vera", CONTEXT, LATER),
            queries(my_work, "kari", CONTEXT, LATER),
        )

    before = all_counts()
    assert before == (1, 1, 2, 5)
    context = rule_context(enforce=True)
    for n in range(3, 13):
        assert enter(engine, entry(specimen_id=f"S{n}"), "tom", context).ok
    assert all_counts() == before
    assert len(read(engine, held_results, "vera", CONTEXT, LATER)) == 14


def test_queues_on_both_backends(engine: Engine) -> None:
    ids = populate(engine)
    assert verdicts(engine, "kari") == {ids["kari"]: "own_result", ids["tom"]: ""}
    (item,) = read(engine, cosign_queue, "sofie", CONTEXT, LATER)
    assert item.may_cosign and item.supervisor == "sofie"
    held = holds_for(engine, "quinn")
    assert held[ids["unknown_operator"], HoldReason.UNCERTIFIED_OPERATOR].actions == ("override",)
    assert [d.person for d in read(engine, recert_due_list, TODAY, 30)] == ["dora", "eva", "kari"]
