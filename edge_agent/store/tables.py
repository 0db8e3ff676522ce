"""Row-level helpers shared by the outbox and its quota: stream counters and event rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.errors import StoreError
from edge_agent.records import Event
from edge_agent.store.models import RecordType, StreamSpec, StreamStats

__all__ = [
    "KEPT_DELIVERIES",
    "TABLES",
    "StreamState",
    "encode_attrs",
    "insert_events",
    "oldest_ts_ms",
    "record_deliveries",
    "save_state",
    "stream_stats",
    "used_bytes",
]

#: The table holding each record type; both are keyed by (stream_id, seq).
TABLES: dict[RecordType, str] = {"reading": "readings", "event": "events"}

#: Delivery keys kept: far more than a broker's in-flight window, which bounds how many
#: stored-but-unacknowledged messages can come again after a crash.
KEPT_DELIVERIES = 100_000


def record_deliveries(conn: sqlite3.Connection, keys: Sequence[str], *, keep: int) -> None:
    """Remember ``keys`` in the current transaction and forget all but the last ``keep``."""
    conn.executemany("INSERT OR IGNORE INTO deliveries (key) VALUES (?)", ((k,) for k in keys))
    conn.execute("DELETE FROM deliveries WHERE id <= (SELECT max(id) FROM deliveries) - ?",
                 (keep,))


@dataclass(frozen=True, slots=True)
class StreamState:
    """In-memory copy of one row of the ``streams`` table.

    The records of a stream are exactly the seqs ``head_seq`` to ``last_seq``: appends add at
    the tail, acks and evictions remove from the head. ``head_seq == last_seq + 1`` when empty.
    """

    spec: StreamSpec
    id: int
    last_seq: int
    acked_seq: int
    head_seq: int
    evicted_total: int

    @property
    def depth(self) -> int:
        """Records waiting for the hub."""
        return self.last_seq - self.head_seq + 1

    @property
    def table(self) -> str:
        """Name of the table holding this stream's records."""
        return TABLES[self.spec.record_type]


def oldest_ts_ms(conn: sqlite3.Connection, state: StreamState) -> int | None:
    """Timestamp of the next record of the stream to leave, None when it is empty."""
    if state.depth <= 0:
        return None
    row = conn.execute(
        f"SELECT ts_ms FROM {state.table} WHERE stream_id = ? AND seq = ?",
        (state.id, state.head_seq),
    ).fetchone()
    return None if row is None else int(row[0])


def stream_stats(conn: sqlite3.Connection, state: StreamState) -> StreamStats:
    """The public counters of one stream, as ``stats()`` and ``read_stats()`` report them."""
    return StreamStats(
        name=state.spec.name,
        priority=state.spec.priority,
        depth=state.depth,
        oldest_ts_ms=oldest_ts_ms(conn, state),
        last_seq=state.last_seq,
        acked_seq=state.acked_seq,
        evicted_total=state.evicted_total,
    )


def save_state(conn: sqlite3.Connection, state: StreamState) -> None:
    """Write the counters of ``state`` back to its ``streams`` row."""
    conn.execute(
        "UPDATE streams SET last_seq = ?, acked_seq = ?, head_seq = ?, evicted_total = ?"
        " WHERE id = ?",
        (state.last_seq, state.acked_seq, state.head_seq, state.evicted_total, state.id),
    )


def encode_attrs(event: Event) -> str:
    """Event attributes as compact JSON; StoreError when they are not plain JSON values."""
    try:
        return json.dumps(event.attrs, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"event {event.kind!r} from {event.device!r}: attrs must be JSON values ({exc})"
        ) from exc


def insert_events(
    conn: sqlite3.Connection, stream_id: int, first: int, events: Sequence[Event]
) -> None:
    """Insert ``events`` with seqs counting up from ``first``."""
    conn.executemany(
        "INSERT INTO events (stream_id, seq, kind, device, ts_ms, attrs) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (stream_id, seq, event.kind, event.device, event.ts_ms, encode_attrs(event))
            for seq, event in enumerate(events, first)
        ],
    )


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the file holding data: pages in use, not pages on the free list."""
    row = conn.execute(
        "SELECT (SELECT page_count FROM pragma_page_count())"
        " - (SELECT freelist_count FROM pragma_freelist_count()),"
        " (SELECT page_size FROM pragma_page_size())"
    ).fetchone()
    return int(row[0]) * int(row[1])
