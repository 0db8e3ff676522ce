"""Opening the outbox database and translating sqlite3 errors into the agent's tree.

sqlite3 exceptions never leave the store: ``sqlite_errors`` turns them into ``StoreCorrupt``
when the file itself is damaged and ``StoreError`` otherwise, each naming the file and what
to do about it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.errors import StoreCorrupt, StoreError
from edge_agent.private import private_sqlite_file

__all__ = ["connect", "quick_check", "sqlite_errors", "transaction"]

#: sqlite error names that mean the file is not a sound SQLite database.
_CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})

_CORRUPT_ADVICE = (
    "stop the agent, move the file aside (salvage it later with 'sqlite3 FILE .recover') "
    "and restart the agent, which creates a new, empty outbox"
)


def _error_name(exc: sqlite3.Error | sqlite3.Warning) -> str:
    return getattr(exc, "sqlite_errorname", "") or ""


def _translate(exc: sqlite3.Error | sqlite3.Warning, path: Path, action: str) -> StoreError:
    name = _error_name(exc)
    if name in _CORRUPT:
        return StoreCorrupt(f"outbox {path} is damaged ({action}: {exc}); {_CORRUPT_ADVICE}")
    if name in {"SQLITE_BUSY", "SQLITE_LOCKED"}:
        hint = "another process holds the outbox; run one agent per outbox file"
    elif name == "SQLITE_FULL":
        hint = "the disk is full; free space or lower the outbox quota"
    elif name in {"SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_IOERR"}:
        hint = "check that the directory exists, is writable and the disk is healthy"
    else:
        hint = "see the agent log"
    return StoreError(f"outbox {path}: {action} failed: {exc}; {hint}")


@contextmanager
def sqlite_errors(path: Path, action: str) -> Iterator[None]:
    """Re-raise any sqlite3 exception inside the block as StoreError or StoreCorrupt.

    ``sqlite3.Warning`` is not an ``sqlite3.Error`` but is raised by the same module.
    """
    try:
        yield
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise _translate(exc, path, action) from exc


@contextmanager
def transaction(conn: sqlite3.Connection, path: Path, action: str) -> Iterator[None]:
    """One write transaction: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any error.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so a busy file fails before any work
    is done rather than at COMMIT.
    """
    with sqlite_errors(path, action):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def connect(path: Path, *, wal_autocheckpoint: int = 1000) -> sqlite3.Connection:
    """Open ``path`` with the durability settings the outbox relies on, mode 0600.

    WAL with ``synchronous=FULL`` makes every committed transaction survive a power cut;
    ``auto_vacuum=INCREMENTAL`` (only effective on a new file) lets the quota hand pages back
    to the file system without a full VACUUM.
    """
    try:
        private_sqlite_file(path)
    except OSError as exc:
        raise StoreError(f"outbox {path}: cannot create it private (mode 0600): {exc.strerror}; "
                         "check that the directory exists and is writable") from exc
    with sqlite_errors(path, "open"):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        with sqlite_errors(path, "open"):
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"outbox {path}: the file system refused WAL mode (got {mode!r}); "
                    "put the outbox on a local disk"
                )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint)}")
            conn.execute("PRAGMA journal_size_limit = 4194304")
            # Appends and head-of-stream reads need few pages: 256 KiB instead of SQLite's
            # 2 MiB default keeps a gateway's memory flat at no cost in write speed.
            conn.execute("PRAGMA cache_size = -256")
    except BaseException:
        conn.close()
        raise
    return conn


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """Raise StoreCorrupt when SQLite's quick integrity check finds damage."""
    with sqlite_errors(path, "integrity check"):
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        detail = "; ".join(str(problem) for problem in problems[:5])
        raise StoreCorrupt(
            f"outbox {path} failed its integrity check ({detail}); {_CORRUPT_ADVICE}"
        )
