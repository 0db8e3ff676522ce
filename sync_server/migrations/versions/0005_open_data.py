"""Open data: the datasets each territory publishes, and what the open data says of a place

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 23:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_datasets",
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=32), nullable=False),
        sa.Column("enabled_ms", sa.BigInteger(), nullable=False),
        sa.Column("enabled_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["territory_id"], ["territories.id"],
                                name=op.f("fk_open_datasets_territory_id_territories")),
        sa.PrimaryKeyConstraint("territory_id", "dataset", name=op.f("pk_open_datasets")),
    )
    op.create_table(
        "open_data_places",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("gateway_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"],
                                name=op.f("fk_open_data_places_gateway_id_gateways")),
        sa.ForeignKeyConstraint(["territory_id"], ["territories.id"],
                                name=op.f("fk_open_data_places_territory_id_territories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_data_places")),
        sa.UniqueConstraint("gateway_id", "device",
                            name=op.f("uq_open_data_places_gateway_id_device")),
    )


def downgrade() -> None:
    op.drop_table("open_data_places")
    op.drop_table("open_datasets")
