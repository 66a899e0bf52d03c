"""Reason codes with parameters: holds.params, quarantine.reason/params, instruments.state_code.

Texts are rendered from the message catalogues at display time; rows from before keep their
stored texts (holds.params stays NULL on them, and the screens show those texts).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch_op:
        batch_op.add_column(sa.Column("params", sa.Text(), nullable=True))
    with op.batch_alter_table("quarantine") as batch_op:
        batch_op.add_column(
            sa.Column("reason", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("params", sa.Text(), nullable=True))
    with op.batch_alter_table("instruments") as batch_op:
        batch_op.add_column(
            sa.Column("state_code", sa.String(length=32), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("instruments") as batch_op:
        batch_op.drop_column("state_code")
    with op.batch_alter_table("quarantine") as batch_op:
        batch_op.drop_column("params")
        batch_op.drop_column("reason")
    with op.batch_alter_table("holds") as batch_op:
        batch_op.drop_column("params")
