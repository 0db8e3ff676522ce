"""Months of readings dropped by retention, so a late replay into one is not stored twice

Revision ID: 0009_dropped_months
Revises: 0008_years_partitions
Create Date: 2026-12-04 19:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_dropped_months"
down_revision = "0008_years_partitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dropped_months",
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("dropped_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("start_ms", name=op.f("pk_dropped_months")),
    )


def downgrade() -> None:
    op.drop_table("dropped_months")
