"""A realistic set of people for the people pages' tests: a competence CSV dated around one
day, imported through the real parser and import (as the portal's file would be)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from drivers.model import InboundMessage, Observation
from gateway.config import Config
from gateway.ingest import store_message
from gateway.people.competence import Vocabulary, parse_competence
from gateway.rule_context import RuleContexts
from gateway.rules import context_from_config
from gateway.store.competence import apply_import, person_ids
from gateway.store.signin import set_password
from gateway.store.writer import Tx, run_in_transaction

HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"


def people_csv(today: date) -> str:
    """Eight people as of ``today``: an admin, a quality manager, verifiers, a supervisor, a
    trainee, an operator whose certification passed its due date five days ago (still
    recorded as certified), one due in ten days, a suspension, a recorded expiry and a new
    certification never used (an inactivity warning)."""

    def d(days: int) -> str:
        return (today + timedelta(days=days)).isoformat()

    rows = [
        ("eva,Eva Admin,,admin",
         ",,,,,"),
        ("hilde,Hilde Kvalitet,HK,quality_manager;verifier",
         f"afinion-1,certified,{d(-700)},{d(300)},,Kurs 2024"),
        ("bente,Bente Bioingeniør,BH,verifier;operator",
         f"afinion-1:CRP,certified,{d(-400)},{d(200)},,Sertifisert av Hilde"),
        ("bente,Bente Bioingeniør,BH,verifier;operator",
         f"bench-1,certified,{d(-355)},{d(10)},,Årlig gjennomgang"),
        ("siri,Siri Veileder,SV,supervisor;operator",
         f"afinion-1:CRP,certified,{d(-500)},{d(250)},,Veilederkurs"),
        ("tone,Tone Lærling,TL,operator",
         "afinion-1:CRP,trainee,,,siri,Opplæring startet"),
        ("kari,Kari Nordmann,OP7,operator",
         f"afinion-1:CRP,certified,{d(-370)},{d(-5)},,Kurs 2025"),
        ("morten,Morten Verifikator,MV,verifier;operator",
         f"afinion-1:CRP,certified,{d(-40)},{d(325)},,Ny"),
        ("morten,Morten Verifikator,MV,verifier;operator",
         f"bench-1:HBA1C,suspended,{d(-300)},{d(60)},,Avvik 12"),
        ("ola,Ola Operatør,OO,operator",
         f"bench-1,expired,{d(-800)},{d(-30)},,"),
    ]  # fmt: skip
    return "\n".join([HEADER, *(f"{who},{task}" for who, task in rows)]) + "\n"


def portal_update(today: date) -> str:
    """The people set as the portal exports it later: kari recertified (due in 360 days, new
    evidence), and a new trainee, nora, under siri."""
    text = people_csv(today).replace(
        f"{(today - timedelta(days=5)).isoformat()},,Kurs 2025",
        f"{(today + timedelta(days=360)).isoformat()},,Kurs 2026",
    )
    return text + "nora,Nora Ny,NN,operator,afinion-1:CRP,trainee,,,siri,Start januar\n"


def import_people(engine: Engine, config: Config, text: str, *, now: datetime) -> None:
    """Import ``text`` (a competence CSV) as ``trygg operators import`` does."""
    with engine.connect() as conn:
        parsed = parse_competence(
            text, vocabulary=Vocabulary.from_config(config), known_people=person_ids(conn)
        )
    assert parsed.ok, parsed.problems
    run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor="test"), now)


def set_passwords(engine: Engine, password: str, *people: str) -> None:
    """Give each of ``people`` (already imported) ``password``, names and roles untouched."""

    def job(tx: Tx) -> None:
        for person in people:
            set_password(tx, person, password, actor="test")

    run_in_transaction(engine, job)


def ingest_with_facts(
    engine: Engine, config: Config, obs: Observation, *, now: datetime, raw: bytes
) -> None:
    """Store one message as the running gateway's ingest does: the rule context joined with
    the store's facts (people, operator IDs, certifications) of this transaction."""
    contexts = RuleContexts(context_from_config(config))
    message = InboundMessage(obs.instrument_id, "hl7", raw, now, observations=(obs,))
    run_in_transaction(engine, lambda tx: store_message(tx, message, contexts.get(tx)), now)
