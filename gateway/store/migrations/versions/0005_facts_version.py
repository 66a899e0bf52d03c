"""The rule facts' version counter: one row, bumped by every change to a fact rules read.

Numbered 0005 because 0004 is taken by the hold reason codes (issue 8, texts); on a branch
without 0004 it revises 0003: when both meet, it revises 0004.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    facts_version = op.create_table(
        "facts_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facts_version")),
    )
    op.bulk_insert(facts_version, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("facts_version")
