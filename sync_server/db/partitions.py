"""Monthly partitions of ``readings`` on PostgreSQL: created ahead, dropped whole when expired.

A month is a partition in the schema ``readings_partitions``, named ``readings_YYYYMM`` and
bounded by UTC milliseconds. A default partition catches what no month holds (a stamp from a
gateway whose clock was never set, a backfill of past months): maintenance creates their
months and moves such rows into them, since PostgreSQL refuses a partition whose rows sit in
the default. Expired months are detached, then dropped: no reading is deleted row by row.
SQLite has no partitions; every function here answers "not partitioned" there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import postgresql

from edge_agent.records import now_ms
from sync_server.db.schema import dropped_months

__all__ = [
    "DEFAULT_PARTITION",
    "READINGS_KEY",
    "SCHEMA",
    "Partition",
    "create_months",
    "drop_partition",
    "dropped_months_holding",
    "is_partitioned",
    "month_start_ms",
    "months_in",
    "next_month_ms",
    "partitions",
    "rehome_default",
]

SCHEMA = "readings_partitions"
#: The partitioned table's key, a unique index rather than a primary key constraint:
#: ``pg_restore --clean`` cannot drop a partition's inherited constraint, and so could not
#: restore a backup over an existing database. The schema check leaves it out (PostgreSQL
#: only, like the partitions).
READINGS_KEY = "uq_readings_stream_id_seq_ts_ms"
DEFAULT_PARTITION = "readings_default"
_BOUND = re.compile(r"FOR VALUES FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One month of readings: [start_ms, end_ms) in UTC ms; both None for the default."""

    name: str
    start_ms: int | None
    end_ms: int | None


def month_start_ms(ms: int) -> int:
    """The first millisecond of the UTC month holding ``ms``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)


def next_month_ms(start_ms: int) -> int:
    """The first millisecond of the UTC month after the one starting at ``start_ms``."""
    moment = datetime.fromtimestamp(start_ms / 1000, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _name(start_ms: int) -> str:
    moment = datetime.fromtimestamp(start_ms / 1000, UTC)
    return f"readings_{moment.year:04d}{moment.month:02d}"


def is_partitioned(conn: Connection) -> bool:
    """Whether ``readings`` is a partitioned table (PostgreSQL after migration 0008)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c "
        "ON c.oid = p.partrelid WHERE c.relname = 'readings' "
        "AND c.relnamespace = current_schema()::regnamespace)").scalar())


def partitions(conn: Connection) -> list[Partition]:
    """The partitions of ``readings``, months oldest first, then the default."""
    if not is_partitioned(conn):
        return []
    rows = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass")
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound)
        found.append(Partition(name, int(match.group(1)), int(match.group(2))) if match
                     else Partition(name, None, None))
    return sorted(found, key=lambda p: (p.start_ms is None, p.start_ms or 0))


def create_months(conn: Connection, from_ms: int, to_ms: int) -> list[str]:
    """Create the month partitions covering [from_ms, to_ms] that are missing; their names.

    Rows already in the default partition for a new month are moved into it.
    """
    existing = {p.start_ms for p in partitions(conn)}
    created = []
    start = month_start_ms(from_ms)
    while start <= to_ms:
        end = next_month_ms(start)
        if start not in existing:
            _create_month(conn, start, end)
            created.append(_name(start))
        start = end
    return created


def months_in(conn: Connection, table: str) -> list[int]:
    """The first ms of each UTC month that rows of ``table`` (qualified name) fall in."""
    months = conn.execute(text(
        "SELECT DISTINCT date_trunc('month', to_timestamp(ts_ms / 1000.0) AT TIME ZONE 'UTC') "
        f"FROM {table}")).scalars().all()
    return sorted(int(month.replace(tzinfo=UTC).timestamp() * 1000) for month in months)


def rehome_default(conn: Connection) -> list[str]:
    """Create the months of the rows sitting in the default partition (moving them there)."""
    created = []
    for start in months_in(conn, f"{SCHEMA}.{DEFAULT_PARTITION}"):
        created += create_months(conn, start, start)
    return created


def _create_month(conn: Connection, start: int, end: int) -> None:
    name = f"{SCHEMA}.{_name(start)}"
    default = f"{SCHEMA}.{DEFAULT_PARTITION}"
    stranded = conn.exec_driver_sql(
        f"SELECT EXISTS (SELECT 1 FROM {default} WHERE ts_ms >= {start} AND ts_ms < {end})"
    ).scalar()
    if not stranded:
        conn.exec_driver_sql(f"CREATE TABLE {name} PARTITION OF readings "
                             f"FOR VALUES FROM ({start}) TO ({end})")
        return
    conn.exec_driver_sql(f"ALTER TABLE readings DETACH PARTITION {default}")
    conn.exec_driver_sql(f"CREATE TABLE {name} PARTITION OF readings "
                         f"FOR VALUES FROM ({start}) TO ({end})")
    conn.exec_driver_sql(f"INSERT INTO {name} SELECT * FROM {default} "
                         f"WHERE ts_ms >= {start} AND ts_ms < {end}")
    conn.exec_driver_sql(f"DELETE FROM {default} WHERE ts_ms >= {start} AND ts_ms < {end}")
    conn.exec_driver_sql(f"ALTER TABLE readings ATTACH PARTITION {default} DEFAULT")


def drop_partition(conn: Connection, partition: Partition) -> None:
    """Detach ``partition`` from ``readings``, then drop it: its rows go in one step. The
    month is remembered in ``dropped_months``."""
    if partition.start_ms is None or partition.end_ms is None:
        raise ValueError("the default partition is never dropped")
    conn.exec_driver_sql(f"ALTER TABLE readings DETACH PARTITION {SCHEMA}.{partition.name}")
    conn.exec_driver_sql(f"DROP TABLE {SCHEMA}.{partition.name}")
    dropped_at = now_ms()
    conn.execute(postgresql.insert(dropped_months).values(
        start_ms=partition.start_ms, end_ms=partition.end_ms, dropped_ms=dropped_at,
    ).on_conflict_do_update(index_elements=["start_ms"], set_={"dropped_ms": dropped_at}))


def dropped_months_holding(conn: Connection, stamps: list[int]) -> set[int]:
    """Those of ``stamps`` (UTC ms) that fall in a month retention dropped."""
    months = conn.execute(select(dropped_months.c.start_ms, dropped_months.c.end_ms)).all()
    return {ts for ts in stamps if any(start <= ts < end for start, end in months)}
