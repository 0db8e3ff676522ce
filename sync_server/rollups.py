"""Hourly and daily rollups of readings, kept by an incremental job that survives a crash.

Progress is a mark per stream, ``rollup_marks.rolled_seq``: every reading of the stream up to
that sequence number is in the rollups. A pass takes the next seqs above the mark (up to the
stream's acknowledged mark), merges their aggregates into ``rollups_hourly`` and
``rollups_daily`` and moves the mark, in one transaction: killed anywhere, a pass either
happened whole or not at all, so the next run resumes exactly where the last commit left it.

Marks follow arrival, not time: a gateway back after a week offline sends old timestamps with
new seqs, and they are rolled up into last week's buckets like any others. The one way a
reading lands below a mark is a replay that fills a hole below the stream's acknowledged mark;
ingest notes those seqs in ``rollup_pending`` (``note_late_readings``) and the next pass adds
them. The stream's row is locked while a pass works on it (ingest locks it too), so a pass and
a push of the same stream never interleave.

Merging is exact for count, min and max; the sum too for values whose sums are exact (floats
are added in another order than a query over the raw rows would). ``last_value`` is the
largest value at the bucket's latest timestamp: a rule that does not depend on the order in
which readings were rolled up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, func, select, text

from edge_agent.records import now_ms
from sync_server.db.engine import reading
from sync_server.db.schema import rollup_marks, rollup_pending, series, streams

__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MAX_AGGREGATED",
    "RollupReport",
    "has_unrolled",
    "note_late_readings",
    "roll_up",
    "unrolled_ranges",
]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: Seqs of one stream per transaction: a push of that stream waits at most for one of them.
DEFAULT_CHUNK = 20_000
#: The largest magnitude aggregated: NULL, NaN, infinities and values beyond it are not. A
#: bucket's sum must stay a finite double: PostgreSQL raises on a float overflow (two readings
#: of 1.7e308 in one hour failed the chart and every rollup pass at that bucket), SQLite gives
#: infinity, which no JSON answer carries. 10**18 readings of this size still sum below the
#: largest double, and no quantity a gateway measures comes near it.
MAX_AGGREGATED = 1e290
_TABLES = (("rollups_hourly", HOUR_MS), ("rollups_daily", DAY_MS))


@dataclass(frozen=True, slots=True)
class RollupReport:
    """What one run did."""

    streams: int
    seqs: int
    late_ranges: int


def note_late_readings(conn: Connection, stream_id: int, seqs: Sequence[int]) -> None:
    """Remember readings stored below the stream's acknowledged mark, as runs of seqs."""
    runs: list[list[int]] = []
    for seq in sorted(seqs):
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    if runs:
        conn.execute(rollup_pending.insert(), [
            {"stream_id": stream_id, "first_seq": first, "last_seq": last}
            for first, last in runs])


def roll_up(engine: Engine, *, chunk: int = DEFAULT_CHUNK) -> RollupReport:
    """Bring every reading stream's rollups up to its acknowledged mark."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    todo = (select(streams.c.id)
            .outerjoin(rollup_marks, rollup_marks.c.stream_id == streams.c.id)
            .where(streams.c.record_type == "reading")
            .where((streams.c.acked_seq > func.coalesce(rollup_marks.c.rolled_seq, 0))
                   | streams.c.id.in_(select(rollup_pending.c.stream_id)))
            .order_by(streams.c.id))
    with reading(engine) as conn:
        stream_ids = [int(sid) for sid in conn.execute(todo).scalars()]
    seqs = late = 0
    for stream_id in stream_ids:
        while True:
            with engine.begin() as conn:
                advanced, merged = _roll_chunk(conn, stream_id, chunk)
            seqs += advanced
            late += merged
            if not advanced:
                break
    return RollupReport(len(stream_ids), seqs, late)


def _roll_chunk(conn: Connection, stream_id: int, chunk: int) -> tuple[int, int]:
    """Roll up the next ``chunk`` seqs of one stream and its late readings; (seqs, late)."""
    acked = int(conn.execute(select(streams.c.acked_seq).where(streams.c.id == stream_id)
                             .with_for_update()).scalar_one())
    rolled = int(conn.execute(select(rollup_marks.c.rolled_seq)
                              .where(rollup_marks.c.stream_id == stream_id)).scalar() or 0)
    pending = conn.execute(select(rollup_pending.c.id, rollup_pending.c.first_seq,
                                  rollup_pending.c.last_seq)
                           .where(rollup_pending.c.stream_id == stream_id)).all()
    upto = min(acked, rolled + chunk)
    # A late seq above the mark is rolled up with its chunk; only those below need adding.
    ranges = [(int(first), min(int(last), rolled)) for _, first, last in pending
              if first <= rolled]
    if upto > rolled:
        ranges.append((rolled + 1, upto))
    for table, unit in _TABLES:
        if ranges:
            _merge(conn, table, unit, stream_id, ranges)
    if pending:
        conn.execute(delete(rollup_pending).where(
            rollup_pending.c.id.in_([row.id for row in pending])))
    if upto > rolled or not conn.execute(select(rollup_marks.c.stream_id).where(
            rollup_marks.c.stream_id == stream_id)).first():
        _set_mark(conn, stream_id, upto)
    return upto - rolled, len(pending)


def _set_mark(conn: Connection, stream_id: int, rolled: int) -> None:
    conn.execute(delete(rollup_marks).where(rollup_marks.c.stream_id == stream_id))
    conn.execute(rollup_marks.insert().values(stream_id=stream_id, rolled_seq=rolled,
                                              rolled_ms=now_ms()))


def _merge(conn: Connection, table: str, unit: int, stream_id: int,
           ranges: Sequence[tuple[int, int]]) -> None:
    """Aggregate the readings of ``ranges`` (inclusive seqs) into ``table``'s buckets."""
    least, greatest = ("LEAST", "GREATEST") if conn.dialect.name == "postgresql" \
        else ("min", "max")
    params: dict[str, int | float] = {"sid": stream_id, "unit": unit, "top": MAX_AGGREGATED}
    conditions = []
    for i, (first, last) in enumerate(ranges):
        conditions.append(f"seq BETWEEN :f{i} AND :l{i}")
        params[f"f{i}"], params[f"l{i}"] = first, last
    old, new = table, "excluded"
    conn.execute(text(f"""
        INSERT INTO {table} (series_id, bucket_ms, count, sum, min, max, last_ts_ms, last_value)
        SELECT series_id, b * :unit, count(*), sum(value), min(value), max(value), max(ts_ms),
               max(CASE WHEN ts_ms = latest THEN value END)
        FROM (SELECT series_id, ts_ms / :unit AS b, ts_ms, value,
                     max(ts_ms) OVER (PARTITION BY series_id, ts_ms / :unit) AS latest
              FROM readings
              WHERE stream_id = :sid AND ({" OR ".join(conditions)})
                AND value BETWEEN -:top AND :top) AS chunk
        WHERE true
        GROUP BY series_id, b
        ON CONFLICT (series_id, bucket_ms) DO UPDATE SET
            count = {old}.count + {new}.count,
            sum = {old}.sum + {new}.sum,
            min = {least}({old}.min, {new}.min),
            max = {greatest}({old}.max, {new}.max),
            last_value = CASE WHEN {new}.last_ts_ms > {old}.last_ts_ms THEN {new}.last_value
                              WHEN {new}.last_ts_ms < {old}.last_ts_ms THEN {old}.last_value
                              ELSE {greatest}({old}.last_value, {new}.last_value) END,
            last_ts_ms = {greatest}({old}.last_ts_ms, {new}.last_ts_ms)
    """), params)


def has_unrolled(conn: Connection, table: str) -> bool:
    """Whether ``table`` (a month of readings, qualified) holds a reading the rollups lack:
    above its stream's mark, or in a late run. An index probe per stream and run, no scan."""
    return bool(conn.exec_driver_sql(f"""
        SELECT EXISTS (
            SELECT 1 FROM streams s LEFT JOIN rollup_marks m ON m.stream_id = s.id
            WHERE s.record_type = 'reading' AND EXISTS (
                SELECT 1 FROM {table} r
                WHERE r.stream_id = s.id AND r.seq > coalesce(m.rolled_seq, 0)))
        OR EXISTS (
            SELECT 1 FROM rollup_pending p WHERE EXISTS (
                SELECT 1 FROM {table} r
                WHERE r.stream_id = p.stream_id AND r.seq BETWEEN p.first_seq AND p.last_seq))
    """).scalar())


def unrolled_ranges(conn: Connection, series_ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(stream_id, first, last)``: inclusive seq runs of the streams of these series'
    gateways that the rollups do not hold yet. One query, a row per stream (and late run)."""
    if not series_ids:
        return []
    query = (
        select(streams.c.id, streams.c.acked_seq,
               func.coalesce(rollup_marks.c.rolled_seq, 0).label("rolled"),
               rollup_pending.c.first_seq, rollup_pending.c.last_seq)
        .outerjoin(rollup_marks, rollup_marks.c.stream_id == streams.c.id)
        .outerjoin(rollup_pending, rollup_pending.c.stream_id == streams.c.id)
        .where(streams.c.record_type == "reading", streams.c.gateway_id.in_(
            select(series.c.gateway_id).where(series.c.id.in_(series_ids))))
    )
    found: set[tuple[int, int, int]] = set()
    for sid, acked, rolled, first, last in conn.execute(query):
        if acked > rolled:
            found.add((int(sid), int(rolled) + 1, int(acked)))
        if first is not None and first <= rolled:
            found.add((int(sid), int(first), min(int(last), int(rolled))))
    return sorted(found)
