"""How long each territory's raw readings are kept, and which month partitions have expired.

Territories share the monthly partitions of ``readings`` (a partition per territory and month
would multiply tables by the territories), and readings are never deleted row by row. So a
retention period is how long a territory's readings are kept *at least*: a month is dropped,
whole, once every territory with readings in it has a retention period and the month ended
more than that period ago. A territory without one keeps everything, and so keeps every month
it has readings in; a short retention next to a longer one waits for the longer. Rollups are
kept: a year's chart of a dropped year still draws. SQLite has no partitions and drops nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select

from edge_agent.records import now_ms
from sync_server.db.partitions import SCHEMA, Partition, partitions
from sync_server.db.schema import retention_periods, territories
from sync_server.errors import BadRequest
from sync_server.rollups import DAY_MS

__all__ = ["MAX_KEEP_DAYS", "Expired", "expired_partitions", "retention_list", "set_retention"]

#: A century: more is a typo, not a policy.
MAX_KEEP_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class Expired:
    """A month partition to drop, and the territories whose readings it holds."""

    partition: Partition
    territories: list[str]


def set_retention(conn: Connection, territory_id: int, keep_days: int | None) -> None:
    """Keep the territory's readings ``keep_days`` days at least; None: for ever."""
    if keep_days is not None and not 1 <= keep_days <= MAX_KEEP_DAYS:
        raise BadRequest(f"days must be between 1 and {MAX_KEEP_DAYS}, got {keep_days}")
    conn.execute(delete(retention_periods).where(
        retention_periods.c.territory_id == territory_id))
    if keep_days is not None:
        conn.execute(retention_periods.insert().values(
            territory_id=territory_id, keep_days=keep_days, updated_ms=now_ms()))


def retention_list(conn: Connection) -> list[dict[str, Any]]:
    """Every territory with its retention in days (None: kept for ever)."""
    query = (select(territories.c.name.label("territory"), retention_periods.c.keep_days,
                    retention_periods.c.updated_ms)
             .outerjoin(retention_periods,
                        retention_periods.c.territory_id == territories.c.id)
             .order_by(territories.c.name))
    return [dict(row._mapping) for row in conn.execute(query)]


def expired_partitions(conn: Connection, at_ms: int) -> list[Expired]:
    """The month partitions that every territory with readings in them lets go at ``at_ms``."""
    query = select(territories.c.name, retention_periods.c.keep_days).outerjoin(
        retention_periods, retention_periods.c.territory_id == territories.c.id)
    keep: dict[str, int | None] = dict(conn.execute(query).tuples().all())
    known = [days for days in keep.values() if days is not None]
    if not known:
        return []
    expired = []
    for partition in partitions(conn):
        if partition.end_ms is None or partition.end_ms > at_ms - min(known) * DAY_MS:
            continue
        holders = _territories_in(conn, partition)
        if holders and all(keep.get(name) is not None
                           and partition.end_ms <= at_ms - int(keep[name] or 0) * DAY_MS
                           for name in holders):
            expired.append(Expired(partition, holders))
    return expired


def _territories_in(conn: Connection, partition: Partition) -> list[str]:
    """Territories with readings in ``partition``: one index probe per series, no scan."""
    rows = conn.exec_driver_sql(
        "SELECT DISTINCT t.name FROM series s JOIN territories t ON t.id = s.territory_id "
        f"WHERE EXISTS (SELECT 1 FROM {SCHEMA}.{partition.name} r WHERE r.series_id = s.id) "
        "ORDER BY t.name")
    return [str(name) for (name,) in rows]
