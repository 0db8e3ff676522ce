"""One maintenance pass of the hub's store: months ahead, rollups, expired months dropped.

Readings that landed in the default partition (a backfill of past months, a clock never set)
get their months created and are moved there, so the retention sees them too.

Run it from a timer (docs/install-hub.md) every few minutes: each step is idempotent and
resumes from what is committed, so a pass killed halfway is simply run again. The order
matters: readings are rolled up before their month can be dropped, so the rollups keep what
the retention lets go. On PostgreSQL an advisory lock keeps two passes from running at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from edge_agent.records import now_ms
from sync_server.db.partitions import create_months, drop_partition, is_partitioned, rehome_default
from sync_server.errors import Conflict
from sync_server.retention import expired_partitions
from sync_server.rollups import DEFAULT_CHUNK, RollupReport, roll_up

__all__ = ["AHEAD_MONTHS", "LOCK_KEY", "MaintenanceReport", "maintain"]

#: Months created ahead of the current one: ingest accepts stamps a day ahead, and a pass
#: that does not run for weeks must not send readings to the default partition.
AHEAD_MONTHS = 2
#: The advisory lock a pass holds on PostgreSQL.
LOCK_KEY = 0x506F6E746F6E  # "Ponton"


@dataclass(slots=True)
class MaintenanceReport:
    """What one pass did."""

    partitioned: bool
    created: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    rollups: RollupReport = field(default_factory=lambda: RollupReport(0, 0, 0))


def maintain(engine: Engine, *, at_ms: int | None = None, chunk: int = DEFAULT_CHUNK
             ) -> MaintenanceReport:
    """Create the months ahead, roll up what arrived, drop what every retention let go."""
    now = now_ms() if at_ms is None else at_ms
    with _exclusive(engine):
        with engine.begin() as conn:
            report = MaintenanceReport(is_partitioned(conn))
            if report.partitioned:
                report.created = create_months(conn, now, now + AHEAD_MONTHS * 31 * 86_400_000)
                report.created += rehome_default(conn)
        report.rollups = roll_up(engine, chunk=chunk)
        if report.partitioned:
            with engine.begin() as conn:
                for expired in expired_partitions(conn, now):
                    drop_partition(conn, expired.partition)
                    report.dropped.append({"partition": expired.partition.name,
                                           "territories": expired.territories})
    return report


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """Conflict if another pass holds the lock (PostgreSQL); SQLite serialises writers."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as lock:
        if not lock.exec_driver_sql(f"SELECT pg_try_advisory_lock({LOCK_KEY})").scalar():
            raise Conflict("another maintenance pass is running on this database")
        # The lock is the session's and outlives this commit; left open, the transaction
        # would sit idle for the whole pass, where idle_in_transaction_session_timeout kills it.
        lock.commit()
        try:
            yield
        finally:
            lock.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_KEY})")
            lock.commit()
