"""Pure rule functions over a result and its context; each returns holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.config import Config, QcConfig, TestConfig
from gateway.model import Hold, Result
from gateway.rules.facts import Facts, QcFact, QcStatus
from gateway.rules.patient_id import patient_id_rule
from gateway.rules.people import certification_rule, verification_rule
from gateway.rules.processing_id import TestMessages
from gateway.rules.qc import qc_flag, qc_lockout_rule
from gateway.rules.unmapped import unmapped_test_rule

__all__ = [
    "RULES",
    "Facts",
    "QcFact",
    "QcStatus",
    "Rule",
    "RuleContext",
    "certification_rule",
    "context_from_config",
    "patient_id_rule",
    "qc_flag",
    "qc_lockout_rule",
    "run_rules",
    "unmapped_test_rule",
    "verification_rule",
]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """The facts rules need besides the result itself: from config, and from the store.

    ``tests`` maps (instrument id, instrument test code) to its [[tests]] entry; an entry with
    instrument "" applies to every instrument that has no specific entry for that code.
    ``test_messages`` maps an instrument to what becomes of its test messages (keep when not
    named: ``gateway.rules.processing_id``). The fields up to ``zone`` come from config
    (``context_from_config``); ``facts`` comes from the store and is swapped in by the
    pipeline when it changed (``gateway.rule_context``), so a rule never reads the database
    itself; ``now`` is set per transaction.
    """

    tests: Mapping[tuple[str, str], TestConfig] = field(default_factory=dict)
    require_patient_id: bool = True
    allow_synthetic_ids: bool = False
    accept_2032_ids: bool = False
    forward_unmapped: bool = False
    test_messages: Mapping[str, TestMessages] = field(default_factory=dict)
    #: the people rules (``gateway.rules.people``) hold nothing while this is off
    enforce_people: bool = False
    #: instrument id -> its driver key (a certification may name the model)
    drivers: Mapping[str, str] = field(default_factory=dict)
    #: the site's time zone: certifications expire at its midnight
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Oslo"))
    #: the site's language: notes written into a result (a QC flag) go to the LIS in it
    language: str = "nb"
    #: (instrument id, instrument test code) -> its `[[qc]]` entry, resolved per instrument
    #: (``Config.qc_for``): tests without one have no QC rules
    qc: Mapping[tuple[str, str], QcConfig] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)
    #: when the job runs (the transaction's time): for a result that does not say when it
    #: was performed
    now: datetime | None = None

    def find_test(self, instrument_id: str, code: str) -> TestConfig | None:
        """The mapping for ``code`` on ``instrument_id``: instrument-specific first, then ""."""
        specific = self.tests.get((instrument_id, code))
        return specific if specific is not None else self.tests.get(("", code))

    def test_message_policy(self, instrument_id: str) -> TestMessages:
        """What becomes of a message ``instrument_id`` marked as test data (default: keep)."""
        return self.test_messages.get(instrument_id, TestMessages.KEEP)


Rule = Callable[[Result, RuleContext], Sequence[Hold]]

RULES: tuple[Rule, ...] = (
    patient_id_rule,
    unmapped_test_rule,
    certification_rule,
    verification_rule,
    qc_lockout_rule,
)


def run_rules(
    result: Result, context: RuleContext, rules: Sequence[Rule] = RULES
) -> tuple[Hold, ...]:
    """Every hold from every rule, in rule order; empty when the result may go on."""
    return tuple(hold for rule in rules for hold in rule(result, context))


def context_from_config(config: Config) -> RuleContext:
    """A rule context from a validated config (``[[tests]]`` and ``[rules]``)."""
    return RuleContext(
        tests={(test.instrument, test.code): test for test in config.tests},
        require_patient_id=config.rules.require_patient_id,
        forward_unmapped=config.rules.forward_unmapped,
        allow_synthetic_ids=config.rules.allow_synthetic_ids,
        accept_2032_ids=config.rules.accept_2032_ids,
        test_messages={
            instrument.id: TestMessages(instrument.test_messages)
            for instrument in config.instruments
        },
        enforce_people=config.people.enforce,
        drivers={instrument.id: instrument.driver for instrument in config.instruments},
        zone=ZoneInfo(config.site.timezone),
        language=config.site.language,
        qc={
            (instrument.id, code): found
            for instrument in config.instruments
            for code in {entry.test for entry in config.qc}
            if (found := config.qc_for(instrument.id, code)) is not None
        },
    )
