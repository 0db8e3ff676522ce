"""Access control: badges (by pseudonym) and each territory's policy rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "badges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.LargeBinary(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("valid_from_s", sa.BigInteger(), nullable=True),
        sa.Column("valid_until_s", sa.BigInteger(), nullable=True),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.Column("master", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["territory_id"], ["territories.id"], name=op.f("fk_badges_territory_id_territories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_badges")),
        sa.UniqueConstraint(
            "territory_id", "pseudonym", name=op.f("uq_badges_territory_id_pseudonym")
        ),
    )
    op.create_table(
        "policy_rules",
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["territory_id"],
            ["territories.id"],
            name=op.f("fk_policy_rules_territory_id_territories"),
        ),
        sa.PrimaryKeyConstraint("territory_id", name=op.f("pk_policy_rules")),
    )


def downgrade() -> None:
    op.drop_table("policy_rules")
    op.drop_table("badges")
