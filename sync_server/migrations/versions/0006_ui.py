"""Dashboard accounts, sessions, failed sign-ins and one-time sign-in links

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["territory_id"], ["territories.id"],
                                name=op.f("fk_ui_users_territory_id_territories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_users")),
        sa.UniqueConstraint("name", name=op.f("uq_ui_users_name")),
    )
    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ui_users.id"],
                                name=op.f("fk_ui_sessions_user_id_ui_users")),
        sa.ForeignKeyConstraint(["token_id"], ["operator_tokens.id"],
                                name=op.f("fk_ui_sessions_token_id_operator_tokens")),
        sa.ForeignKeyConstraint(["territory_id"], ["territories.id"],
                                name=op.f("fk_ui_sessions_territory_id_territories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_sessions")),
    )
    op.create_table(
        "ui_signin_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_signin_failures")),
    )
    op.create_index(op.f("ix_ui_signin_failures_client_at_ms"), "ui_signin_failures",
                    ["client", "at_ms"], unique=False)
    op.create_table(
        "ui_signin_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ui_users.id"],
                                name=op.f("fk_ui_signin_links_user_id_ui_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_signin_links")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_ui_signin_links_code_hash")),
    )


def downgrade() -> None:
    op.drop_table("ui_signin_links")
    op.drop_index(op.f("ix_ui_signin_failures_client_at_ms"), table_name="ui_signin_failures")
    op.drop_table("ui_signin_failures")
    op.drop_table("ui_sessions")
    op.drop_table("ui_users")
