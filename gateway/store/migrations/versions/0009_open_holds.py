"""An index of open holds by reason: ingest asks "is any result held for an uncertified
operator?" once per writer batch, and only looks a re-run's predecessor up when one is.

A partial index (open holds only) on both SQLite and PostgreSQL: it stays as small as the
number of results waiting for someone, however many holds were released before. The revision
ID is descriptive so that another helper's 0009 can sit beside it until merged.

Revision ID: 0009_open_holds
Revises: 0008_people
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_open_holds"
down_revision = "0008_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_holds_open_reason",
        "holds",
        ["reason"],
        sqlite_where=sa.text("released_at IS NULL"),
        postgresql_where=sa.text("released_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_holds_open_reason", table_name="holds")
