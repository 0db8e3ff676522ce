"""Reading an outbox from another process, for ``edge-agent status`` and diagnostics.

The agent owns the file and is its only writer; this side only reads, so it can run while
the agent appends (WAL lets readers and the writer proceed together). It never creates,
migrates or repairs a file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_agent.errors import StoreError
from edge_agent.store.connection import sqlite_errors
from edge_agent.store.migrations import MIGRATIONS, schema_version
from edge_agent.store.models import StreamSpec, StreamStats
from edge_agent.store.tables import StreamState, stream_stats

__all__ = ["read_stats"]


def read_stats(path: Path) -> list[StreamStats]:
    """Counters of every stream in the outbox file at ``path``, most urgent first.

    StoreError when the file is missing, not an outbox, or at a schema version this agent
    does not read (an older file is upgraded by the agent at its next start).
    """
    path = Path(path)
    with sqlite_errors(path, "open for reading"):
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
    try:
        version = schema_version(conn, path)
        if version != len(MIGRATIONS):
            raise StoreError(
                f"outbox {path} has schema version {version} and this agent reads version "
                f"{len(MIGRATIONS)}: start the agent once to upgrade it, or upgrade the agent "
                "if the file is newer"
            )
        with sqlite_errors(path, "read stats"):
            conn.execute("BEGIN")
            rows = conn.execute(
                "SELECT id, name, record_type, priority, evictable, last_seq, acked_seq,"
                " head_seq, evicted_total FROM streams ORDER BY priority, name"
            ).fetchall()
            stats = [
                stream_stats(conn, StreamState(
                    StreamSpec(name, priority, record_type, bool(evictable)), stream_id, *counters))
                for stream_id, name, record_type, priority, evictable, *counters in rows
            ]
            conn.execute("COMMIT")
        return stats
    finally:
        conn.close()
