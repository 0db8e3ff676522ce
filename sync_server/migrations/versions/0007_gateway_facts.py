"""What each gateway reports of itself: agent version, sync lag, bundle versions held

Revision ID: 0007_gateway_facts
Revises: 0006
Create Date: 2026-12-04 01:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_gateway_facts"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("agent_version", sa.String(length=64)),
    ("sync_lag_ms", sa.BigInteger()),
    ("held_policy_version", sa.BigInteger()),
    ("held_config_version", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        for name, _kind in reversed(_COLUMNS):
            batch.drop_column(name)
