"""Quality control (issue 11): control lots and their targets, the evaluation of every control
value (with a snapshot of the target used), comments on points, QC status per instrument and
test, QC lockouts, EQA rounds and samples, split samples; the deviation register's workflow
(category, immediate action, cause, corrective action, who closed it, and its history); who
performed a control and whether it was typed in.

Revision ID: 0010_qc
Revises: 0009_open_holds
Create Date: 2026-12-07 15:32:40
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_qc"
down_revision = "0009_open_holds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "control_lots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.String(length=64), nullable=False),
        sa.Column("test_code", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("lot", sa.String(length=64), nullable=False),
        sa.Column("material", sa.String(length=255), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("expected", sa.String(length=64), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("opened_on", sa.Date(), nullable=True),
        sa.Column("in_use_days", sa.Integer(), nullable=True),
        sa.Column("manufacturer_mean", sa.Text(), nullable=True),
        sa.Column("manufacturer_sd", sa.Text(), nullable=True),
        sa.Column("target_source", sa.String(length=16), nullable=False),
        sa.Column("first_n", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_lots")),
        sa.UniqueConstraint(
            "instrument_id", "test_code", "level", "lot", name="uq_control_lots_instrument_test"
        ),
    )
    with op.batch_alter_table("control_lots", schema=None) as batch_op:
        batch_op.create_index("ix_control_lots_test", ["test_code", "level"], unique=False)

    op.create_table(
        "eqa_rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scheme", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("shipment", sa.String(length=64), nullable=False),
        sa.Column("instrument_id", sa.String(length=64), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assessed_by", sa.String(length=64), nullable=False),
        sa.Column("assessment_note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eqa_rounds")),
        sa.UniqueConstraint("provider", "shipment", "instrument_id", name="uq_eqa_rounds_shipment"),
    )
    op.create_table(
        "qc_status",
        sa.Column("instrument_id", sa.String(length=64), nullable=False),
        sa.Column("test_code", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("patients_since", sa.Integer(), nullable=False),
        sa.Column("lockout_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schedule", sa.String(length=16), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("instrument_id", "test_code", name=op.f("pk_qc_status")),
    )
    op.create_table(
        "deviation_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("person", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_value", sa.Text(), nullable=False),
        sa.Column("to_value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deviation_id"],
            ["deviations.id"],
            name=op.f("fk_deviation_events_deviation_id_deviations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deviation_events")),
    )
    with op.batch_alter_table("deviation_events", schema=None) as batch_op:
        batch_op.create_index("ix_deviation_events_deviation", ["deviation_id", "id"], unique=False)

    op.create_table(
        "qc_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("mean", sa.Text(), nullable=False),
        sa.Column("sd", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["control_lots.id"], name=op.f("fk_qc_targets_lot_id_control_lots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_targets")),
    )
    with op.batch_alter_table("qc_targets", schema=None) as batch_op:
        batch_op.create_index("ix_qc_targets_lot", ["lot_id", "id"], unique=False)

    op.create_table(
        "eqa_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("sample", sa.String(length=64), nullable=False),
        sa.Column("test_code", sa.String(length=64), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("target_value", sa.Text(), nullable=False),
        sa.Column("trueness", sa.String(length=16), nullable=False),
        sa.Column("accuracy", sa.String(length=16), nullable=False),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deviation_id"], ["deviations.id"], name=op.f("fk_eqa_samples_deviation_id_deviations")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_eqa_samples_result_id_results")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["eqa_rounds.id"], name=op.f("fk_eqa_samples_round_id_eqa_rounds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eqa_samples")),
        sa.UniqueConstraint("round_id", "sample", "test_code", name="uq_eqa_samples_round_sample"),
    )
    op.create_table(
        "qc_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("qc_result_id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["qc_result_id"], ["qc_results.id"], name=op.f("fk_qc_comments_qc_result_id_qc_results")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_comments")),
    )
    with op.batch_alter_table("qc_comments", schema=None) as batch_op:
        batch_op.create_index("ix_qc_comments_result", ["qc_result_id"], unique=False)

    op.create_table(
        "qc_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("qc_result_id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.String(length=64), nullable=False),
        sa.Column("test_code", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=True),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("target_mean", sa.Text(), nullable=True),
        sa.Column("target_sd", sa.Text(), nullable=True),
        sa.Column("target_source", sa.String(length=16), nullable=False),
        sa.Column("z", sa.Text(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("violations", sa.Text(), nullable=False),
        sa.Column("allowed_ok", sa.Boolean(), nullable=True),
        sa.Column("rules", sa.String(length=255), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("performed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["control_lots.id"], name=op.f("fk_qc_evaluations_lot_id_control_lots")
        ),
        sa.ForeignKeyConstraint(
            ["qc_result_id"],
            ["qc_results.id"],
            name=op.f("fk_qc_evaluations_qc_result_id_qc_results"),
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["qc_targets.id"], name=op.f("fk_qc_evaluations_target_id_qc_targets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_evaluations")),
        sa.UniqueConstraint("qc_result_id", name="uq_qc_evaluations_qc_result_id"),
    )
    with op.batch_alter_table("qc_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_qc_evaluations_series", ["instrument_id", "test_code", "level", "id"], unique=False
        )

    op.create_table(
        "split_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.String(length=64), nullable=False),
        sa.Column("test_code", sa.String(length=64), nullable=False),
        sa.Column("sample", sa.String(length=64), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("local_value", sa.Text(), nullable=False),
        sa.Column("central_value", sa.Text(), nullable=False),
        sa.Column("allowed_percent", sa.Text(), nullable=False),
        sa.Column("difference_percent", sa.Text(), nullable=False),
        sa.Column("within", sa.Boolean(), nullable=False),
        sa.Column("measured_on", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deviation_id"],
            ["deviations.id"],
            name=op.f("fk_split_samples_deviation_id_deviations"),
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_split_samples_result_id_results")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_samples")),
    )
    op.create_table(
        "qc_lockouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.String(length=64), nullable=False),
        sa.Column("test_code", sa.String(length=64), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=True),
        sa.Column("deviation_id", sa.Integer(), nullable=True),
        sa.Column("accepted_evaluation_id", sa.Integer(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("corrective_action", sa.Text(), nullable=False),
        sa.Column("corrective_action_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("corrective_action_by", sa.String(length=64), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["accepted_evaluation_id"],
            ["qc_evaluations.id"],
            name=op.f("fk_qc_lockouts_accepted_evaluation_id_qc_evaluations"),
        ),
        sa.ForeignKeyConstraint(
            ["deviation_id"], ["deviations.id"], name=op.f("fk_qc_lockouts_deviation_id_deviations")
        ),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["qc_evaluations.id"],
            name=op.f("fk_qc_lockouts_evaluation_id_qc_evaluations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_lockouts")),
    )
    with op.batch_alter_table("qc_lockouts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_qc_lockouts_open", ["instrument_id", "test_code", "lifted_at"], unique=False
        )

    with op.batch_alter_table("deviations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("category", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("immediate_action", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("cause", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("corrective_action", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "corrective_action_needed", sa.Boolean(), server_default=sa.true(), nullable=False
            )
        )
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("updated_by", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("closed_by", sa.String(length=64), server_default="", nullable=False)
        )

    with op.batch_alter_table("qc_results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("performed_by", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), server_default="instrument", nullable=False)
        )
        batch_op.create_index(
            "ix_qc_results_series",
            ["instrument_id", "test_code", "control_level", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("qc_results", schema=None) as batch_op:
        batch_op.drop_index("ix_qc_results_series")
        batch_op.drop_column("source")
        batch_op.drop_column("performed_by")

    with op.batch_alter_table("deviations", schema=None) as batch_op:
        batch_op.drop_column("closed_by")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("updated_by")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("corrective_action_needed")
        batch_op.drop_column("corrective_action")
        batch_op.drop_column("cause")
        batch_op.drop_column("immediate_action")
        batch_op.drop_column("category")

    with op.batch_alter_table("qc_lockouts", schema=None) as batch_op:
        batch_op.drop_index("ix_qc_lockouts_open")

    op.drop_table("qc_lockouts")
    op.drop_table("split_samples")
    with op.batch_alter_table("qc_evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_qc_evaluations_series")

    op.drop_table("qc_evaluations")
    with op.batch_alter_table("qc_comments", schema=None) as batch_op:
        batch_op.drop_index("ix_qc_comments_result")

    op.drop_table("qc_comments")
    op.drop_table("eqa_samples")
    with op.batch_alter_table("qc_targets", schema=None) as batch_op:
        batch_op.drop_index("ix_qc_targets_lot")

    op.drop_table("qc_targets")
    with op.batch_alter_table("deviation_events", schema=None) as batch_op:
        batch_op.drop_index("ix_deviation_events_deviation")

    op.drop_table("deviation_events")
    op.drop_table("qc_status")
    op.drop_table("eqa_rounds")
    with op.batch_alter_table("control_lots", schema=None) as batch_op:
        batch_op.drop_index("ix_control_lots_test")

    op.drop_table("control_lots")
