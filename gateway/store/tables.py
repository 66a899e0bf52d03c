"""The database schema as SQLAlchemy Core tables (the Alembic migrations create exactly these)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"naive or non-datetime value {value!r}: store aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TZ = UtcDateTime()

instruments = Table(
    "instruments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("driver", String(64), nullable=False),
    Column("url", String(255), nullable=False),
    Column("connected", Boolean, nullable=False, default=False),
    # the connection state's code (gateway.texts renders it); state_detail is technical text
    Column("state_code", String(32), nullable=False, default="", server_default=""),
    Column("state_detail", String(255), nullable=False, default=""),
    Column("last_seen_at", TZ),
    Column("last_message_at", TZ),
    Column("messages_received", Integer, nullable=False, default=0),
)

raw_messages = Table(
    "raw_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("instrument_id", String(64), nullable=False),
    Column("protocol", String(32), nullable=False),
    Column("received_at", TZ, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("control_id", String(64), nullable=False, default=""),
    Column("outcome", String(16), nullable=False),  # stored | quarantined
    Column("n_observations", Integer, nullable=False, default=0),
    Index("ix_raw_messages_instrument_digest", "instrument_id", "digest"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("raw_message_id", Integer, ForeignKey("raw_messages.id"), nullable=False),
    Column("instrument_id", String(64), nullable=False),
    Column("received_at", TZ, nullable=False),
    Column("error", Text, nullable=False),  # the technical error text, as the driver gave it
    Column("field", String(64), nullable=False, default=""),
    # the reason code (gateway.quarantine_reason) and its parameters as a JSON object
    Column("reason", String(64), nullable=False, default="", server_default=""),
    Column("params", Text),
    Column("state", String(16), nullable=False, default="open"),  # open | replayed | discarded
    Column("resolved_at", TZ),
    Column("resolved_by", String(64)),
)

results = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("raw_message_id", Integer, ForeignKey("raw_messages.id")),
    Column("instrument_id", String(64), nullable=False),
    Column("test_code", String(64), nullable=False),
    Column("nlk_code", String(32), nullable=False, default=""),
    Column("test_name", String(255), nullable=False, default=""),
    Column("value", Text, nullable=False),
    Column("value_type", String(4), nullable=False),
    Column("unit", String(64), nullable=False, default=""),
    Column("reference_range", String(64), nullable=False, default=""),
    Column("abnormal_flags", String(64), nullable=False, default=""),
    Column("method", String(16), nullable=False),
    Column("performed_at", TZ),
    Column("operator_id", String(64), nullable=False, default=""),
    Column("specimen_id", String(64), nullable=False, default=""),
    Column("patient_id", String(32), nullable=False, default=""),
    Column("result_status", String(2), nullable=False, default="F"),
    Column("comment", Text, nullable=False, default=""),
    Column("instrument_serial", String(64), nullable=False, default=""),
    # the sender's processing ID (HL7 MSH-11, ASTM H.12); "P" on every result bound for the LIS
    Column("processing_id", String(16), nullable=False, default="P", server_default="P"),
    # who performed it (users.person): its operator ID resolved on arrival, or who typed it in
    Column("performed_by", String(64), nullable=False, default="", server_default=""),
    Column("state", String(16), nullable=False),
    Column("correction_of", Integer, ForeignKey("results.id")),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    UniqueConstraint("fingerprint"),
    Index("ix_results_state", "state"),
    Index("ix_results_specimen", "instrument_id", "specimen_id", "test_code"),
)

qc_results = Table(
    "qc_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("raw_message_id", Integer, ForeignKey("raw_messages.id")),
    Column("instrument_id", String(64), nullable=False),
    Column("test_code", String(64), nullable=False),
    Column("nlk_code", String(32), nullable=False, default=""),
    Column("value", Text, nullable=False),
    Column("unit", String(64), nullable=False, default=""),
    Column("control_lot", String(64), nullable=False, default=""),
    Column("control_level", String(32), nullable=False, default=""),
    Column("performed_at", TZ),
    Column("operator_id", String(64), nullable=False, default=""),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", TZ, nullable=False),
    # who performed it (users.person): the operator ID resolved, or who typed it in (0010)
    Column("performed_by", String(64), nullable=False, default="", server_default=""),
    # instrument | manual (typed in on the QC entry page)
    Column("source", String(16), nullable=False, default="instrument", server_default="instrument"),
    UniqueConstraint("fingerprint"),
    Index("ix_qc_results_series", "instrument_id", "test_code", "control_level", "id"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("result_id", Integer, ForeignKey("results.id"), nullable=False),
    Column("reason", String(64), nullable=False),
    # the reason's parameters as a JSON object; NULL on rows from before 0004, which carry
    # their texts in detail, detail_nb and action instead (new rows leave those empty)
    Column("params", Text),
    Column("detail", Text, nullable=False, default=""),
    Column("detail_nb", Text, nullable=False, default="", server_default=""),
    Column("action", Text, nullable=False, default=""),
    Column("release_role", String(64), nullable=False, default=""),
    Column("created_at", TZ, nullable=False),
    Column("released_at", TZ),
    Column("released_by", String(64)),
    Column("release_note", Text),
    Index("ix_holds_result", "result_id"),
    # open holds by reason (0009): "is any result held for an uncertified operator?" at ingest
    Index(
        "ix_holds_open_reason",
        "reason",
        sqlite_where=text("released_at IS NULL"),
        postgresql_where=text("released_at IS NULL"),
    ),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("control_id", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("n_results", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | acknowledged | rejected
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", TZ, nullable=False),
    Column("first_sent_at", TZ),
    Column("last_attempt_at", TZ),
    Column("acked_at", TZ),
    Column("ack_code", String(4), nullable=False, default=""),
    Column("ack_text", Text, nullable=False, default=""),
    UniqueConstraint("control_id"),
    Index("ix_outbox_state", "state"),
)

outbox_items = Table(
    "outbox_items",
    metadata,
    Column("outbox_id", Integer, ForeignKey("outbox.id"), primary_key=True),
    Column("result_id", Integer, ForeignKey("results.id"), primary_key=True),
    Column("corrected", Boolean, nullable=False, default=False),
    Index("ix_outbox_items_result", "result_id"),
)

deviations = Table(
    "deviations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", TZ, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("instrument_id", String(64), nullable=False, default=""),
    Column("result_id", Integer),
    Column("outbox_id", Integer),
    Column("summary", Text, nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("responsible_function", String(64), nullable=False, default=""),
    # open | in_progress | closed (gateway.deviations.workflow); moves in deviation_events
    Column("state", String(16), nullable=False, default="open"),
    Column("created_by", String(64), nullable=False),
    # the register's workflow (0010): routing category, and what was done about it
    Column("category", String(16), nullable=False, default="", server_default=""),
    Column("immediate_action", Text, nullable=False, default="", server_default=""),
    Column("cause", Text, nullable=False, default="", server_default=""),
    Column("corrective_action", Text, nullable=False, default="", server_default=""),
    # false: the handler decided no corrective action is needed (corrective_action says why)
    Column(
        "corrective_action_needed", Boolean, nullable=False, default=True, server_default=true()
    ),
    Column("updated_at", TZ),
    Column("updated_by", String(64), nullable=False, default="", server_default=""),
    Column("closed_at", TZ),
    Column("closed_by", String(64), nullable=False, default="", server_default=""),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("specimen_id", String(64), nullable=False),
    Column("test_code", String(64), nullable=False),
    Column("patient_id", String(32), nullable=False, default=""),
    Column("priority", String(1), nullable=False, default="R"),
    Column("placer_order", String(64), nullable=False, default=""),
    Column("state", String(16), nullable=False),  # open | cancelled
    Column("raw_message_id", Integer, ForeignKey("raw_messages.id")),
    Column("placed_at", TZ, nullable=False),
    Column("placed_by", String(64), nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("updated_by", String(64), nullable=False),
    Index("ix_orders_specimen", "specimen_id", "state"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", TZ, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("before", Text, nullable=False, default=""),
    Column("after", Text, nullable=False, default=""),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

facts_version = Table(
    "facts_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)
"""One row (id 1): bumped in every transaction that changes a fact rules read (people,
certifications, QC status), so the pipeline reloads its rule facts only when this moved."""


#: one row per store: which gateway may run on it (see ``gateway.store.lease``)
gateway_lease = Table(
    "gateway_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("instance_id", String(32), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("site", String(64), nullable=False),
    Column("started_at", TZ, nullable=False),
    Column("heartbeat_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("released_at", TZ),
)


# --- people (issue 10): users and roles, operator IDs, certifications, sign-in, signatures ---

users = Table(
    "users",
    metadata,
    # the stable person ID (the competence portal's); everything else names a person by it
    Column("person", String(64), primary_key=True),
    Column("name", String(255), nullable=False, default=""),
    Column("roles", String(255), nullable=False, default=""),  # ";"-separated role codes
    # argon2id (gateway.people.passwords); NULL: imported, cannot sign in until one is set
    Column("password_hash", String(255)),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", TZ),
    Column("password_changed_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("updated_by", String(64), nullable=False, default=""),
)

#: the IDs a person types or scans on instruments; instrument "" is any instrument
operator_ids = Table(
    "operator_ids",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person", String(64), ForeignKey("users.person"), nullable=False),
    Column("instrument_id", String(64), nullable=False, default=""),
    Column("operator_id", String(64), nullable=False),
    UniqueConstraint("instrument_id", "operator_id", name="uq_operator_ids_instrument_operator"),
    Index("ix_operator_ids_person", "person"),
)

certifications = Table(
    "certifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person", String(64), ForeignKey("users.person"), nullable=False),
    Column("task", String(128), nullable=False),  # gateway.people.tasks, canonical text
    Column("status", String(16), nullable=False),  # trainee | certified | expired | suspended
    Column("certified_on", Date),
    Column("recert_due", Date),
    Column("supervisor", String(64), nullable=False, default=""),
    Column("evidence", Text, nullable=False, default=""),
    Column("updated_at", TZ, nullable=False),
    Column("updated_by", String(64), nullable=False, default=""),
    UniqueConstraint("person", "task", name="uq_certifications_person_task"),
)

#: a person's recertification (DOMAIN rule 10): they reviewed the procedure and signed
recertifications = Table(
    "recertifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person", String(64), ForeignKey("users.person"), nullable=False),
    Column("task", String(128), nullable=False),
    Column("signed_at", TZ, nullable=False),
    Column("outcome", String(16), nullable=False),  # confirmed | unclear
    Column("note", Text, nullable=False, default=""),
    Index("ix_recertifications_person", "person", "task"),
)

#: web sign-ins; the cookie holds a random token, the store only its SHA-256
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("person", String(64), ForeignKey("users.person"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("last_seen_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("ended_at", TZ),
    Column("end_reason", String(16), nullable=False, default=""),  # signed_out | idle | ...
    Column("client", String(64), nullable=False, default=""),
    UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
    Index("ix_web_sessions_person", "person", "created_at"),
)

#: who read or changed which patient's results (Normen); a patient may ask for their extract
access_log = Table(
    "access_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", TZ, nullable=False),
    Column("person", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # read | change | raw | export
    Column("route", String(255), nullable=False, default=""),
    Column("result_id", Integer),
    Column("patient_id", String(32), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_access_log_patient", "patient_id", "at"),
    Index("ix_access_log_person", "person", "at"),
)

#: electronic signatures: a person, a meaning, a time (and what they signed, in detail)
signatures = Table(
    "signatures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", TZ, nullable=False),
    Column("person", String(64), nullable=False),
    # release | correct | override | verify | reject | cosign | recertify
    Column("meaning", String(16), nullable=False),
    Column("result_id", Integer, ForeignKey("results.id")),
    Column("comment", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),  # a JSON object
    Index("ix_signatures_result", "result_id"),
)

#: a patient-ID or specimen-ID correction: the original is kept here, the result holds the new
corrections = Table(
    "corrections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("result_id", Integer, ForeignKey("results.id"), nullable=False),
    Column("field", String(32), nullable=False),  # patient_id | specimen_id
    Column("old_value", String(64), nullable=False),
    Column("new_value", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("person", String(64), nullable=False),
    Column("at", TZ, nullable=False),
    Index("ix_corrections_result", "result_id"),
)


# --- quality control (issue 11): control lots and targets, evaluations, status, lockouts, EQA ---

#: a control material's lot for one test and level (DOMAIN rule 8); instrument "" any
control_lots = Table(
    "control_lots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("instrument_id", String(64), nullable=False, default=""),
    Column("test_code", String(64), nullable=False),
    Column("level", String(32), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("material", String(255), nullable=False, default=""),  # e.g. "Afinion HbA1c Control"
    Column("unit", String(64), nullable=False, default=""),
    # quantitative: judged by Westgard against a target; qualitative: by its expected answer
    Column("kind", String(16), nullable=False, default="quantitative"),
    Column("expected", String(64), nullable=False, default=""),  # qualitative: "neg", "Positive"
    Column("expires_on", Date),
    Column("opened_on", Date),
    Column("in_use_days", Integer),  # stability once opened; NULL: until expiry
    Column("manufacturer_mean", Text),  # decimal text as printed on the insert; NULL: none
    Column("manufacturer_sd", Text),
    # where the target comes from: manufacturer | first_n | rolling (default: the [[qc]] entry)
    Column("target_source", String(16), nullable=False, default=""),
    Column("first_n", Integer),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", TZ, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("updated_by", String(64), nullable=False),
    UniqueConstraint(
        "instrument_id", "test_code", "level", "lot", name="uq_control_lots_instrument_test"
    ),
    Index("ix_control_lots_test", "test_code", "level"),
)

#: a lot's target (mean, SD): the newest row of a lot is its current target
qc_targets = Table(
    "qc_targets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lot_id", Integer, ForeignKey("control_lots.id"), nullable=False),
    Column("mean", Text, nullable=False),  # decimal text
    Column("sd", Text, nullable=False),
    Column("source", String(16), nullable=False),  # manufacturer | first_n | rolling | manual
    Column("n", Integer, nullable=False, default=0),  # runs it was computed from
    Column("set_at", TZ, nullable=False),
    Column("set_by", String(64), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Index("ix_qc_targets_lot", "lot_id", "id"),
)

#: the judgement of one control value when it arrived, with a snapshot of the target used
qc_evaluations = Table(
    "qc_evaluations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("qc_result_id", Integer, ForeignKey("qc_results.id"), nullable=False),
    Column("instrument_id", String(64), nullable=False),
    Column("test_code", String(64), nullable=False),
    Column("level", String(32), nullable=False, default=""),
    Column("lot_id", Integer, ForeignKey("control_lots.id")),
    Column("run_key", String(64), nullable=False),  # controls of one run share it
    Column("target_id", Integer, ForeignKey("qc_targets.id")),
    Column("target_mean", Text),  # the snapshot (the target row may be superseded later)
    Column("target_sd", Text),
    Column("target_source", String(16), nullable=False, default=""),
    Column("z", Text),
    # accept | warning | reject | no_target (collecting first_n, or no lot) | pass | fail
    # (qualitative) ; every rule that fired is in violations (a JSON list)
    Column("verdict", String(16), nullable=False),
    Column("violations", Text, nullable=False, default="[]"),
    Column("allowed_ok", Boolean),  # the fixed allowed-deviation limit; NULL: not used
    Column("rules", String(255), nullable=False, default=""),
    Column("evaluated_at", TZ, nullable=False),
    Column("performed_at", TZ),
    UniqueConstraint("qc_result_id", name="uq_qc_evaluations_qc_result_id"),
    Index("ix_qc_evaluations_series", "instrument_id", "test_code", "level", "id"),
)

#: a person's comment on a control point (shown on the Levey-Jennings chart)
qc_comments = Table(
    "qc_comments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("qc_result_id", Integer, ForeignKey("qc_results.id"), nullable=False),
    Column("person", String(64), nullable=False),
    Column("at", TZ, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_qc_comments_result", "qc_result_id"),
)

#: where each instrument's QC for one test stands (a rule fact: changes bump facts_version)
qc_status = Table(
    "qc_status",
    metadata,
    Column("instrument_id", String(64), primary_key=True),
    Column("test_code", String(64), primary_key=True),
    # in_control | warning | out_of_control | overdue | no_qc
    Column("status", String(16), nullable=False),
    Column("since", TZ, nullable=False),
    Column("last_run_at", TZ),
    Column("last_accepted_at", TZ),
    Column("due_at", TZ),  # the next controls are due then (time-based schedules)
    Column("patients_since", Integer, nullable=False, default=0),  # schedule every_n
    Column("lockout_id", Integer),  # the open lockout, if any
    Column("updated_at", TZ, nullable=False),
    # the [[qc]] schedule the row was computed with (a new lot makes "new_lot" due at once)
    Column("schedule", String(16), nullable=False, default="", server_default=""),
)

#: a QC lockout: from failure (or overdue) until an accepted run and a corrective action
qc_lockouts = Table(
    "qc_lockouts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("instrument_id", String(64), nullable=False),
    Column("test_code", String(64), nullable=False),
    Column("cause", String(16), nullable=False),  # out_of_control | overdue
    Column("started_at", TZ, nullable=False),
    Column("evaluation_id", Integer, ForeignKey("qc_evaluations.id")),
    Column("deviation_id", Integer, ForeignKey("deviations.id")),
    Column("accepted_evaluation_id", Integer, ForeignKey("qc_evaluations.id")),
    Column("accepted_at", TZ),
    Column("corrective_action", Text, nullable=False, default=""),
    Column("corrective_action_at", TZ),
    Column("corrective_action_by", String(64), nullable=False, default=""),
    Column("lifted_at", TZ),
    Column("lifted_by", String(64), nullable=False, default=""),
    Index("ix_qc_lockouts_open", "instrument_id", "test_code", "lifted_at"),
)

#: an EQA (EKV) round: a programme's shipment of samples to measure and answer by a date
eqa_rounds = Table(
    "eqa_rounds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scheme", String(128), nullable=False),  # e.g. "Noklus HbA1c"
    Column("provider", String(64), nullable=False, default="Noklus"),
    Column("shipment", String(64), nullable=False),  # the programme's round / shipment code
    Column("instrument_id", String(64), nullable=False),
    Column("received_on", Date),
    Column("due_on", Date),
    Column("state", String(16), nullable=False),  # registered | answered | assessed
    Column("answered_at", TZ),
    Column("answered_by", String(64), nullable=False, default=""),
    Column("assessed_at", TZ),
    Column("assessed_by", String(64), nullable=False, default=""),
    Column("assessment_note", Text, nullable=False, default=""),
    Column("created_at", TZ, nullable=False),
    Column("created_by", String(64), nullable=False),
    UniqueConstraint("provider", "shipment", "instrument_id", name="uq_eqa_rounds_shipment"),
)

#: one sample of a round and one test: the lab's measurement and the programme's assessment
eqa_samples = Table(
    "eqa_samples",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("round_id", Integer, ForeignKey("eqa_rounds.id"), nullable=False),
    Column("sample", String(64), nullable=False),  # the sample's label on the shipment
    Column("test_code", String(64), nullable=False),
    Column("result_id", Integer, ForeignKey("results.id")),  # the linked measurement
    Column("value", Text, nullable=False, default=""),  # as answered (linked, or typed in)
    Column("unit", String(64), nullable=False, default=""),
    Column("target_value", Text, nullable=False, default=""),  # the programme's, when assessed
    # good | acceptable | poor | "" (not assessed) for each quality the programme reports
    Column("trueness", String(16), nullable=False, default=""),
    Column("accuracy", String(16), nullable=False, default=""),
    Column("precision", String(16), nullable=False, default=""),
    Column("deviation_id", Integer, ForeignKey("deviations.id")),
    UniqueConstraint("round_id", "sample", "test_code", name="uq_eqa_samples_round_sample"),
)

#: a split sample measured here and at the central lab, judged by an allowed difference
split_samples = Table(
    "split_samples",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("instrument_id", String(64), nullable=False),
    Column("test_code", String(64), nullable=False),
    Column("sample", String(64), nullable=False),
    Column("result_id", Integer, ForeignKey("results.id")),
    Column("local_value", Text, nullable=False),
    Column("central_value", Text, nullable=False),
    Column("allowed_percent", Text, nullable=False),
    Column("difference_percent", Text, nullable=False),
    Column("within", Boolean, nullable=False),
    Column("measured_on", Date),
    Column("recorded_at", TZ, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("deviation_id", Integer, ForeignKey("deviations.id")),
)

#: what happened to a deviation, step by step (who, when, what): the register's history
deviation_events = Table(
    "deviation_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("deviation_id", Integer, ForeignKey("deviations.id"), nullable=False),
    Column("at", TZ, nullable=False),
    Column("person", String(64), nullable=False),
    # created | immediate_action | cause | corrective_action | status | comment | category
    Column("action", String(32), nullable=False),
    Column("from_value", Text, nullable=False, default=""),
    Column("to_value", Text, nullable=False, default=""),
    Index("ix_deviation_events_deviation", "deviation_id", "id"),
)
