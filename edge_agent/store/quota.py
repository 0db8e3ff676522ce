"""The disk quota: what gives way when the outbox outgrows its share of the disk.

Size is measured as pages in use, ``(page_count - freelist_count) * page_size``, inside the
append's own transaction. Past the quota, the oldest records of evictable streams (least
urgent stream first) are deleted in chunks until the outbox is back under 90 % of it, and a
``gap`` event stating stream, seq range, count and time span of the loss is written in the
same transaction, so the hub learns exactly what it will never receive. Events and alarms are
never evicted: when only they fill the quota, writing goes on and the outbox says so once.

Freed pages are reused by the next appends; after an eviction ``release_pages`` hands back to
the file system whatever the file holds beyond the quota (``auto_vacuum=INCREMENTAL``, so no
VACUUM on the hot path).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, replace

from edge_agent.records import Event, now_ms
from edge_agent.store.tables import StreamState, insert_events, used_bytes

__all__ = ["EVICT_TO", "Eviction", "QuotaOutcome", "enforce_quota", "gap_event", "release_pages"]

#: Eviction brings the outbox back under this fraction of the quota, so that it does not run
#: again on every append.
EVICT_TO = 0.9

#: Fewest records deleted per chunk: keeps the number of chunks small when estimates are off.
_MIN_CHUNK = 256


@dataclass(frozen=True, slots=True)
class Eviction:
    """Records of one stream dropped by the quota: seqs ``first_seq`` to ``last_seq``."""

    stream: str
    first_seq: int
    last_seq: int
    count: int
    from_ts_ms: int
    to_ts_ms: int


@dataclass(frozen=True, slots=True)
class QuotaOutcome:
    """What one quota check did; logged by the outbox once the transaction committed.

    ``over_quota_bytes`` is the size still in use when nothing evictable was left to drop.
    """

    evictions: tuple[Eviction, ...] = ()
    over_quota_bytes: int | None = None


def gap_event(eviction: Eviction) -> Event:
    """The event telling the hub exactly which records it will never receive."""
    return Event(
        kind="gap",
        device="outbox",
        ts_ms=now_ms(),
        attrs={
            "reason": "disk_quota",
            "stream": eviction.stream,
            "first_seq": eviction.first_seq,
            "last_seq": eviction.last_seq,
            "count": eviction.count,
            "from_ts_ms": eviction.from_ts_ms,
            "to_ts_ms": eviction.to_ts_ms,
        },
    )


def _evict(
    conn: sqlite3.Connection, state: StreamState, used: int, target: int, avg_bytes: float
) -> tuple[StreamState, Eviction | None, int]:
    """Delete the oldest records of one stream until ``used <= target`` or it is empty.

    Chunk sizes are re-estimated from the bytes each chunk actually freed.
    """
    first = head = state.head_seq
    count = 0
    lo: int | None = None
    hi: int | None = None
    chunk = max(_MIN_CHUNK, math.ceil((used - target) / avg_bytes))
    where = f"FROM {state.table} WHERE stream_id = ? AND seq BETWEEN ? AND ?"
    while used > target and head <= state.last_seq:
        last = min(head + chunk - 1, state.last_seq)
        args = (state.id, head, last)
        n, chunk_lo, chunk_hi = conn.execute(
            f"SELECT count(*), min(ts_ms), max(ts_ms) {where}", args
        ).fetchone()
        conn.execute(f"DELETE {where}", args)
        count += n
        if n:
            lo = chunk_lo if lo is None else min(lo, chunk_lo)
            hi = chunk_hi if hi is None else max(hi, chunk_hi)
        now_used = used_bytes(conn)
        freed = used - now_used
        per_record = freed / (last - head + 1)
        head, used = last + 1, now_used
        chunk = (
            max(_MIN_CHUNK, math.ceil((used - target) / per_record * 1.1))
            if per_record > 0
            else chunk * 2
        )
    if head == first:
        return state, None, used
    new = replace(state, head_seq=head, evicted_total=state.evicted_total + count)
    eviction = Eviction(state.spec.name, first, head - 1, count, lo or 0, hi or 0)
    return new, eviction, used


def enforce_quota(
    conn: sqlite3.Connection, staged: dict[str, StreamState], quota_bytes: int, gap_stream: str
) -> QuotaOutcome:
    """Evict within the current transaction until under quota; updates ``staged`` in place.

    ``staged`` maps stream names to the counters as they will be once the transaction
    commits; evicted streams and the stream receiving the gap events are replaced in it.
    """
    used = used_bytes(conn)
    if used <= quota_bytes:
        return QuotaOutcome()
    target = int(quota_bytes * EVICT_TO)
    records = sum(state.depth for state in staged.values())
    avg_bytes = used / max(1, records)
    victims = sorted(
        (state for state in staged.values() if state.spec.evictable and state.depth > 0),
        key=lambda state: (-state.spec.priority, state.spec.name),
    )
    evictions: list[Eviction] = []
    for victim in victims:
        if used <= target:
            break
        staged[victim.spec.name], eviction, used = _evict(conn, victim, used, target, avg_bytes)
        if eviction is not None:
            evictions.append(eviction)
    if evictions:
        gaps = staged[gap_stream]
        insert_events(conn, gaps.id, gaps.last_seq + 1, [gap_event(e) for e in evictions])
        staged[gap_stream] = replace(gaps, last_seq=gaps.last_seq + len(evictions))
    return QuotaOutcome(tuple(evictions), used if used > quota_bytes else None)


def release_pages(conn: sqlite3.Connection, quota_bytes: int) -> None:
    """Give back to the file system the free pages that make the file larger than the quota.

    Runs outside any transaction (``executescript`` steps the pragma to completion, which a
    plain ``execute`` does not). A no-op on files created without incremental auto-vacuum.
    """
    page_count, freelist, page_size = conn.execute(
        "SELECT (SELECT page_count FROM pragma_page_count()),"
        " (SELECT freelist_count FROM pragma_freelist_count()),"
        " (SELECT page_size FROM pragma_page_size())"
    ).fetchone()
    excess = min(int(freelist), int(page_count) - quota_bytes // int(page_size))
    if excess > 0:
        conn.executescript(f"PRAGMA incremental_vacuum({excess});")
