"""One maintenance pass of the hub's store: months ahead, rollups, expired months dropped.

Readings that landed in the default partition (a backfill of past months, a clock never set)
get their months created and are moved there, so the retention sees them too.

Run it from a timer (docs/install-hub.md) every few minutes: each step is idempotent and
resumes from what is committed, so a pass killed halfway is simply run again. The order
matters: readings are rolled up before their month can be dropped, so the rollups keep what
the retention lets go. A push can still land in an expired month after the roll-up (a gateway
back from weeks offline): each month is dropped under the lock its detach takes anyway, and
only once none of its readings awaits a roll-up; otherwise it is held for the next pass. On
PostgreSQL an advisory lock keeps two passes from running at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from edge_agent.records import now_ms
from sync_server.db.partitions import (
    SCHEMA,
    create_months,
    drop_partition,
    is_partitioned,
    rehome_default,
)
from sync_server.errors import Conflict
from sync_server.retention import Expired, expired_partitions
from sync_server.rollups import DEFAULT_CHUNK, RollupReport, has_unrolled, roll_up

__all__ = ["AHEAD_MONTHS", "LOCK_KEY", "MaintenanceReport", "drop_expired", "maintain"]

#: Months created ahead of the current one: ingest accepts stamps a day ahead, and a pass
#: that does not run for weeks must not send readings to the default partition.
AHEAD_MONTHS = 2
#: The advisory lock a pass holds on PostgreSQL.
LOCK_KEY = 0x506F6E746F6E  # "Ponton"
#: How long a drop waits for pushes in flight; past it the month waits for the next pass
#: rather than queue every push behind the drop's lock.
DROP_LOCK_TIMEOUT = "5s"


@dataclass(slots=True)
class MaintenanceReport:
    """What one pass did."""

    partitioned: bool
    created: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    #: Expired months kept for the next pass, and why.
    held: list[dict[str, str]] = field(default_factory=list)
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
            report.dropped, report.held = drop_expired(engine, now)
    return report


def drop_expired(engine: Engine, at_ms: int) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Drop the months every retention lets go at ``at_ms``; (dropped, held for later)."""
    with engine.connect() as conn:
        expired = expired_partitions(conn, at_ms)
    dropped: list[dict[str, Any]] = []
    held: list[dict[str, str]] = []
    for month in expired:
        if (reason := _drop(engine, month)) is None:
            dropped.append({"partition": month.partition.name, "territories": month.territories})
        else:
            held.append({"partition": month.partition.name, "reason": reason})
    return dropped, held


def _drop(engine: Engine, month: Expired) -> str | None:
    """Drop one expired month unless a reading in it is not rolled up yet; why not, if not.

    ``readings`` is locked first (the detach would lock it anyway): pushes in flight commit
    before the check, later ones wait and then land in the default partition, which the next
    pass turns back into a month, rolls up, and drops.
    """
    qualified = f"{SCHEMA}.{month.partition.name}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
            conn.exec_driver_sql("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            if has_unrolled(conn, qualified):
                return "readings not rolled up yet"
            drop_partition(conn, month.partition)
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        return "pushes held the readings lock"
    return None


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
