"""Holds carry their explanation in bokmål too (detail_nb), for the screens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch_op:
        batch_op.add_column(sa.Column("detail_nb", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch_op:
        batch_op.drop_column("detail_nb")
