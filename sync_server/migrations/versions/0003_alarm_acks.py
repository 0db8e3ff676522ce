"""Alarm acknowledgements, and event indexes for alarm listings and car-park states

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 20:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_acks",
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("acked_ms", sa.BigInteger(), nullable=False),
        sa.Column("acked_by", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["territory_id"],
            ["territories.id"],
            name=op.f("fk_alarm_acks_territory_id_territories"),
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["operator_tokens.id"],
            name=op.f("fk_alarm_acks_token_id_operator_tokens"),
        ),
        sa.PrimaryKeyConstraint("stream_id", "seq", name=op.f("pk_alarm_acks")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_kind_territory_id_ts_ms"),
            ["kind", "territory_id", "ts_ms"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_events_gateway_id_device_ts_ms"),
            ["gateway_id", "device", "ts_ms"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_gateway_id_device_ts_ms"))
        batch_op.drop_index(batch_op.f("ix_events_kind_territory_id_ts_ms"))
    op.drop_table("alarm_acks")
