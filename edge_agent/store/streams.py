"""Stream bookkeeping at open: checking the configured streams against the file.

Streams are configuration (``StreamSpec``) but their counters live in the file. At open the
configured streams are registered, priorities follow the configuration, and a stream whose
record type changed is refused rather than misread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from edge_agent.errors import StoreError
from edge_agent.store.connection import transaction
from edge_agent.store.models import StreamSpec
from edge_agent.store.tables import TABLES, StreamState

__all__ = ["check_specs", "checkpoint_pages", "gap_stream_for", "load_streams"]

logger = logging.getLogger("edge_agent.store")


def check_specs(streams: Sequence[StreamSpec]) -> tuple[StreamSpec, ...]:
    """Refuse an empty or ambiguous stream list; return it most urgent first."""
    if not streams:
        raise ValueError("an outbox needs at least one stream")
    names = [spec.name for spec in streams]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"stream names must be unique, repeated: {', '.join(duplicates)}")
    for spec in streams:
        if not spec.name:
            raise ValueError("a stream needs a name")
        if spec.record_type not in TABLES:
            raise ValueError(f"stream {spec.name!r}: record_type must be 'reading' or 'event'")
    return tuple(sorted(streams, key=lambda spec: (spec.priority, spec.name)))


def checkpoint_pages(quota_bytes: int | None) -> int:
    """WAL pages between checkpoints: SQLite's default, less under a small quota.

    The WAL sits beside the database and is not counted by the quota; checkpointing at about
    a tenth of the quota keeps it from outgrowing a small one.
    """
    if quota_bytes is None:
        return 1000
    return max(100, min(1000, quota_bytes // 40960))


def gap_stream_for(specs: Sequence[StreamSpec]) -> str | None:
    """Where ``gap`` events go: ``events`` if it can hold them, else the most urgent kept one."""
    kept = [spec for spec in specs if spec.record_type == "event" and not spec.evictable]
    for spec in kept:
        if spec.name == "events":
            return spec.name
    return kept[0].name if kept else None


def load_streams(
    conn: sqlite3.Connection, path: Path, specs: Sequence[StreamSpec]
) -> dict[str, StreamState]:
    """Register configured streams in the file and read their counters, in one transaction."""
    states: dict[str, StreamState] = {}
    with transaction(conn, path, "load streams"):
        rows = {
            row[1]: row
            for row in conn.execute(
                "SELECT id, name, record_type, priority, evictable, last_seq, acked_seq,"
                " head_seq, evicted_total FROM streams"
            )
        }
        for spec in specs:
            row = rows.pop(spec.name, None)
            if row is None:
                cursor = conn.execute(
                    "INSERT INTO streams (name, record_type, priority, evictable)"
                    " VALUES (?, ?, ?, ?)",
                    (spec.name, spec.record_type, spec.priority, int(spec.evictable)),
                )
                assert cursor.lastrowid is not None
                states[spec.name] = StreamState(spec, cursor.lastrowid, 0, 0, 1, 0)
                continue
            stream_id, _name, record_type, priority, evictable, *counters = row
            if record_type != spec.record_type:
                raise StoreError(
                    f"outbox {path}: stream {spec.name!r} holds {record_type}s in this file "
                    f"but is configured for {spec.record_type}s; rename the stream"
                )
            if (priority, bool(evictable)) != (spec.priority, spec.evictable):
                conn.execute(
                    "UPDATE streams SET priority = ?, evictable = ? WHERE id = ?",
                    (spec.priority, int(spec.evictable), stream_id),
                )
            states[spec.name] = StreamState(spec, stream_id, *counters)
    for name, row in rows.items():
        depth = row[5] - row[7] + 1
        if depth > 0:
            logger.warning(
                "outbox %s: stream %s is no longer configured; its %d records stay in the "
                "file and are not sent",
                path,
                name,
                depth,
            )
    return states
