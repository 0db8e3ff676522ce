"""One series' buckets over a range: from the rollups where they can answer, raw elsewhere.

A bucket that is a whole number of days (or hours) is the sum of daily (or hourly) rollups,
so a year's chart reads 365 rows instead of every reading. The rollups lag the data by what
the job has not rolled up yet, so those readings (``rollups.unrolled_ranges``, found through
the ``(stream_id, seq)`` key, a short tail) are aggregated raw and merged in; and the part of
the range that does not start or end on a whole hour or day is read raw too. The answer is
then the same as a query over the raw readings, with the year's cost of a few hundred rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select

from sync_server.db.schema import readings, rollups_daily, rollups_hourly
from sync_server.rollups import DAY_MS, HOUR_MS, MAX_AGGREGATED, unrolled_ranges

__all__ = ["Bucket", "raw_buckets", "series_buckets"]

#: Reads of the rollups raced by a pass's commit before the raw readings answer instead.
_TRIES = 3


@dataclass(slots=True)
class Bucket:
    """Aggregated values' count, sum, min and max (rollups.MAX_AGGREGATED says which);
    ``stored`` counts every non-NULL value."""

    count: int
    sum: float
    min: float | None
    max: float | None
    stored: int

    def add(self, other: Bucket) -> None:
        """Merge ``other`` (another part of the same bucket) into this one."""
        self.count += other.count
        self.sum += other.sum
        self.stored += other.stored
        self.min = _pick(min, self.min, other.min)
        self.max = _pick(max, self.max, other.max)


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return float(choose(a, b))


def series_buckets(conn: Connection, series_ids: Sequence[int], from_ms: int, to_ms: int,
                   bucket_ms: int) -> dict[int, Bucket]:
    """Buckets of ``bucket_ms`` (aligned on the epoch) of these series in [from_ms, to_ms)."""
    unit = DAY_MS if bucket_ms % DAY_MS == 0 else HOUR_MS if bucket_ms % HOUR_MS == 0 else 0
    start = -(-from_ms // unit) * unit if unit else to_ms
    end = to_ms // unit * unit if unit else to_ms
    if not series_ids or end <= start:
        return raw_buckets(conn, series_ids, from_ms, to_ms, bucket_ms)
    for _ in range(_TRIES):
        # PostgreSQL reads each statement at its own moment: a rollup pass committed between
        # the marks and the rollups would count its readings twice, or not at all.
        ranges = unrolled_ranges(conn, series_ids)
        rolled = _rolled(conn, series_ids, start, end, bucket_ms, unit)
        if unrolled_ranges(conn, series_ids) == ranges:
            break
    else:
        return raw_buckets(conn, series_ids, from_ms, to_ms, bucket_ms)
    found = raw_buckets(conn, series_ids, from_ms, start, bucket_ms)
    _merge(found, rolled)
    if ranges:
        _merge(found, raw_buckets(conn, series_ids, start, end, bucket_ms,
                                  only=or_(*(and_(readings.c.stream_id == sid,
                                                  readings.c.seq.between(first, last))
                                             for sid, first, last in ranges))))
    _merge(found, raw_buckets(conn, series_ids, end, to_ms, bucket_ms))
    return dict(sorted(found.items()))


def _merge(into: dict[int, Bucket], parts: dict[int, Bucket]) -> None:
    for key, part in parts.items():
        if key in into:
            into[key].add(part)
        else:
            into[key] = part


def raw_buckets(conn: Connection, series_ids: Sequence[int], from_ms: int, to_ms: int,
                bucket_ms: int, *, only: ColumnElement[bool] | None = None
                ) -> dict[int, Bucket]:
    """The buckets from the raw readings alone (``only``: those matching it)."""
    if to_ms <= from_ms or not series_ids:
        return {}
    bucket = ((readings.c.ts_ms // bucket_ms) * bucket_ms).label("bucket_ms")
    # Ingest stores NaN and infinities as NULL; one stored otherwise, or a value beyond
    # MAX_AGGREGATED, would make the sum of its bucket infinite (or fail it on PostgreSQL).
    aggregated = case((readings.c.value.between(-MAX_AGGREGATED, MAX_AGGREGATED),
                       readings.c.value))
    query = (
        select(bucket, func.count(aggregated), func.sum(aggregated), func.min(aggregated),
               func.max(aggregated), func.count(readings.c.value))
        .where(readings.c.series_id.in_(series_ids),
               readings.c.ts_ms >= from_ms, readings.c.ts_ms < to_ms,
               readings.c.value.is_not(None))  # no bucket of nulls
        .group_by(bucket)
    )
    if only is not None:
        query = query.where(only)
    return {int(key): Bucket(int(count), float(total or 0.0), low, high, int(stored))
            for key, count, total, low, high, stored in conn.execute(query)}


def _rolled(conn: Connection, series_ids: Sequence[int], from_ms: int, to_ms: int,
            bucket_ms: int, unit: int) -> dict[int, Bucket]:
    table = rollups_daily if unit == DAY_MS else rollups_hourly
    bucket = ((table.c.bucket_ms // bucket_ms) * bucket_ms).label("bucket_ms")
    total = func.sum(table.c.count)
    query = (
        select(bucket, total, func.sum(table.c.sum), func.min(table.c.min),
               func.max(table.c.max))
        .where(table.c.series_id.in_(series_ids), table.c.bucket_ms >= from_ms,
               table.c.bucket_ms < to_ms)
        .group_by(bucket)
    )
    return {int(key): Bucket(int(count), float(total_sum), low, high, int(count))
            for key, count, total_sum, low, high in conn.execute(query)}
