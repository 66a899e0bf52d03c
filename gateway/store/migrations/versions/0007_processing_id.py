"""The processing ID on each result: what its sender marked it (P, or T/D test data).

Results kept as test data (state ``test``) carry the T, D or other ID they came with; every
result stored before has "P" (the gateway forwarded everything as production then). The
revision ID is descriptive so that another helper's 0007 can sit beside it until merged.

Revision ID: 0007_processing_id
Revises: 0006
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_processing_id"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results") as batch_op:
        batch_op.add_column(
            sa.Column("processing_id", sa.String(length=16), nullable=False, server_default="P")
        )


def downgrade() -> None:
    with op.batch_alter_table("results") as batch_op:
        batch_op.drop_column("processing_id")
