"""A year of data: readings partitioned by month on PostgreSQL, retention, rollups

Revision ID: 0008_years_partitions
Revises: 0007_gateway_facts
Create Date: 2026-12-04 13:40:00.000000

On PostgreSQL the readings move into a table partitioned by month of ``ts_ms`` (one
partition per month that holds readings, this month and the next two, and a default), keyed by
``(stream_id, seq, ts_ms)`` by a unique index (a primary key constraint on a partitioned
table makes ``pg_restore --clean`` fail: it tries to drop each partition's inherited
constraint); downgrading moves them back into a plain table. Rows are copied
with ``INSERT … SELECT`` inside the migration's transaction: nothing is lost either way.
SQLite keeps its plain table; both get the retention and rollup tables.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

from sync_server.db.partitions import (
    DEFAULT_PARTITION,
    READINGS_KEY,
    SCHEMA,
    create_months,
    months_in,
)

revision = "0008_years_partitions"
down_revision = "0007_gateway_facts"
branch_labels = None
depends_on = None

_AHEAD_MS = 62 * 86_400_000
_COLUMNS = ("stream_id integer NOT NULL, seq bigint NOT NULL, series_id integer NOT NULL, "
            "ts_ms bigint NOT NULL, value double precision, quality smallint NOT NULL")
_COPY = "stream_id, seq, series_id, ts_ms, value, quality"


def _rollup_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("bucket_ms", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=False),
        sa.Column("min", sa.Double(), nullable=False),
        sa.Column("max", sa.Double(), nullable=False),
        sa.Column("last_ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "bucket_ms", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    op.create_table(
        "retention_periods",
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("keep_days", sa.Integer(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["territory_id"], ["territories.id"],
                                name=op.f("fk_retention_periods_territory_id_territories")),
        sa.PrimaryKeyConstraint("territory_id", name=op.f("pk_retention_periods")),
    )
    op.create_table(
        "rollup_marks",
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("rolled_seq", sa.BigInteger(), nullable=False),
        sa.Column("rolled_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"],
                                name=op.f("fk_rollup_marks_stream_id_streams")),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_rollup_marks")),
    )
    op.create_table(
        "rollup_pending",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"],
                                name=op.f("fk_rollup_pending_stream_id_streams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_pending")),
    )
    op.create_index(op.f("ix_rollup_pending_stream_id"), "rollup_pending", ["stream_id"])
    _rollup_table("rollups_hourly")
    _rollup_table("rollups_daily")
    if op.get_bind().dialect.name == "postgresql":
        _partition_readings()


def _partition_readings() -> None:
    conn = op.get_bind()
    conn.exec_driver_sql("ALTER TABLE readings RENAME TO readings_plain")
    conn.exec_driver_sql("ALTER TABLE readings_plain RENAME CONSTRAINT pk_readings "
                         "TO pk_readings_plain")
    conn.exec_driver_sql("ALTER INDEX ix_readings_series_id_ts_ms "
                         "RENAME TO ix_readings_plain_series_id_ts_ms")
    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.exec_driver_sql(f"CREATE TABLE readings ({_COLUMNS}) PARTITION BY RANGE (ts_ms)")
    conn.exec_driver_sql(f"CREATE UNIQUE INDEX {READINGS_KEY} ON readings "
                         "(stream_id, seq, ts_ms)")
    conn.exec_driver_sql("CREATE INDEX ix_readings_series_id_ts_ms ON readings "
                         "(series_id, ts_ms)")
    conn.exec_driver_sql(f"CREATE TABLE {SCHEMA}.{DEFAULT_PARTITION} PARTITION OF readings "
                         "DEFAULT")
    now = int(time.time() * 1000)
    create_months(conn, now, now + _AHEAD_MS)
    for start in months_in(conn, "readings_plain"):  # only months that hold readings
        create_months(conn, start, start)
    conn.exec_driver_sql(f"INSERT INTO readings ({_COPY}) SELECT {_COPY} FROM readings_plain")
    conn.exec_driver_sql("DROP TABLE readings_plain")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        conn = op.get_bind()
        conn.exec_driver_sql(f"CREATE TABLE readings_plain ({_COLUMNS}, CONSTRAINT "
                             "pk_readings_plain PRIMARY KEY (stream_id, seq))")
        conn.exec_driver_sql(f"INSERT INTO readings_plain ({_COPY}) "
                             f"SELECT {_COPY} FROM readings")
        conn.exec_driver_sql("DROP TABLE readings")
        conn.exec_driver_sql(f"DROP SCHEMA {SCHEMA} CASCADE")
        conn.exec_driver_sql("ALTER TABLE readings_plain RENAME TO readings")
        conn.exec_driver_sql("ALTER TABLE readings RENAME CONSTRAINT pk_readings_plain "
                             "TO pk_readings")
        conn.exec_driver_sql("CREATE INDEX ix_readings_series_id_ts_ms ON readings "
                             "(series_id, ts_ms)")
    op.drop_table("rollups_daily")
    op.drop_table("rollups_hourly")
    op.drop_index(op.f("ix_rollup_pending_stream_id"), table_name="rollup_pending")
    op.drop_table("rollup_pending")
    op.drop_table("rollup_marks")
    op.drop_table("retention_periods")
