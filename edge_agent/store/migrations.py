"""Versioned schema of the outbox database.

``MIGRATIONS`` is the ordered history of the schema. Each step is a named function that runs
in one transaction together with the row recording it in ``schema_migrations``, so a crash
mid-upgrade leaves the file at the previous version, never half-way. The schema version is
the number of steps applied. Opening an older file upgrades it; a file whose version is
higher than this agent knows was written by a newer Ponton and is refused rather than
guessed at.

Never edit a released step: append a new one.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import StoreError
from edge_agent.records import now_ms
from edge_agent.store.connection import sqlite_errors, transaction

__all__ = ["APPLICATION_ID", "MIGRATIONS", "Migration", "migrate", "schema_version"]

logger = logging.getLogger("edge_agent.store")

#: Written in the SQLite header (``PRAGMA application_id``) so tools and the agent can tell
#: a Ponton outbox from any other SQLite file. ASCII "Pont".
APPLICATION_ID = 0x506F6E74


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``apply`` runs inside the transaction that records ``name``."""

    name: str
    apply: Callable[[sqlite3.Connection], None]


def _create_streams(conn: sqlite3.Connection) -> None:
    # The counters live here so that stats are O(streams) whatever the number of records.
    # Records of a stream are always the contiguous range head_seq..last_seq: appends add at
    # the tail, acks and the quota remove from the head.
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(
        """
        CREATE TABLE streams (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            record_type TEXT NOT NULL CHECK (record_type IN ('reading', 'event')),
            priority INTEGER NOT NULL,
            evictable INTEGER NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            acked_seq INTEGER NOT NULL DEFAULT 0,
            head_seq INTEGER NOT NULL DEFAULT 1,
            evicted_total INTEGER NOT NULL DEFAULT 0
        ) STRICT
        """
    )


def _create_readings(conn: sqlite3.Connection) -> None:
    # (device, quantity) pairs repeat every poll cycle: store them once and key readings by
    # a small integer. WITHOUT ROWID clusters readings by (stream, seq), the order they leave;
    # STRICT makes SQLite refuse a mistyped field instead of storing it as text.
    conn.execute(
        """
        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            quantity TEXT NOT NULL,
            UNIQUE (device, quantity)
        ) STRICT
        """
    )
    conn.execute(
        """
        CREATE TABLE readings (
            stream_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            ts_ms INTEGER NOT NULL,
            value REAL,
            quality INTEGER NOT NULL,
            PRIMARY KEY (stream_id, seq)
        ) STRICT, WITHOUT ROWID
        """
    )


def _create_events(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE events (
            stream_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            device TEXT NOT NULL,
            ts_ms INTEGER NOT NULL,
            attrs TEXT NOT NULL,
            PRIMARY KEY (stream_id, seq)
        ) STRICT, WITHOUT ROWID
        """
    )


def _create_deliveries(conn: sqlite3.Connection) -> None:
    # Keys of source messages (MQTT uplinks) whose records are stored, written in the same
    # transaction as the records, so a message delivered again after a crash is known.
    conn.execute(
        "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE) STRICT"
    )


#: The schema history, oldest first. The schema version of a file is how many it has applied.
MIGRATIONS: tuple[Migration, ...] = (
    Migration("create_streams", _create_streams),
    Migration("create_readings", _create_readings),
    Migration("create_events", _create_events),
    Migration("create_deliveries", _create_deliveries),
)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _check_ownership(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return
    foreign = app_id != 0 or (
        not _has_table(conn, "schema_migrations")
        and conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] > 0
    )
    if foreign:
        raise StoreError(
            f"{path} is an SQLite file but not a Ponton outbox; point the agent at another "
            "path or move this file away"
        )


def _applied(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    return [str(name) for _version, name in rows]


def _check_history(applied: list[str], migrations: Sequence[Migration], path: Path) -> None:
    if len(applied) > len(migrations):
        raise StoreError(
            f"outbox {path} has schema version {len(applied)} but this agent knows only up to "
            f"{len(migrations)}: it was written by a newer Ponton; upgrade the agent"
        )
    for version, (name, migration) in enumerate(zip(applied, migrations, strict=False), 1):
        if name != migration.name:
            raise StoreError(
                f"outbox {path}: schema step {version} is '{name}' in the file but "
                f"'{migration.name}' in this agent; the file comes from an incompatible build"
            )


def schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """Number of schema steps applied to the open database (0 for a new file)."""
    with sqlite_errors(path, "read schema version"):
        if not _has_table(conn, "schema_migrations"):
            return 0
        return len(_applied(conn))


def migrate(
    conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Bring the database up to ``len(migrations)`` and return that version.

    Each step re-reads the version inside its own write transaction, so two processes
    opening the same new file cannot apply a step twice.
    """
    while True:
        with transaction(conn, path, "schema migration"):
            _check_ownership(conn, path)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
            )
            applied = _applied(conn)
            _check_history(applied, migrations, path)
            version = len(applied)
            if version == len(migrations):
                return version
            step = migrations[version]
            step.apply(conn)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)",
                (version + 1, step.name, now_ms()),
            )
        logger.info("outbox %s: applied schema step %d '%s'", path, version + 1, step.name)
