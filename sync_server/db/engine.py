"""Engines for the two stores: SQLite (embedded default) and PostgreSQL (psycopg 3).

SQLite gets WAL and ``synchronous=FULL``: the hub acknowledges records that the gateway then
deletes, so an acknowledged batch must survive a power cut. Every SQLite transaction starts
with ``BEGIN IMMEDIATE``, taking the write lock up front: two hub threads then queue on the
busy timeout instead of failing to upgrade a read lock halfway through a batch.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from sync_server.errors import SettingsError

__all__ = ["create_hub_engine", "is_sqlite"]

_BUSY_TIMEOUT_MS = 30_000
#: Negative: KiB. Readings arrive interleaved across every series, so the (series, time)
#: index takes random inserts; a 64 MiB page cache keeps them off the disk (measured 1.8x).
_CACHE_KIB = -65_536


def is_sqlite(engine: Engine) -> bool:
    """Whether ``engine`` is the embedded store (some statements differ)."""
    return engine.dialect.name == "sqlite"


def create_hub_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url``: ``sqlite:///path`` or ``postgresql+psycopg://…``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SettingsError(f"invalid database URL {url!r}: {exc}") from exc
    if parsed.drivername == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size,
                             pool_pre_ping=True)
    raise SettingsError(
        f"unsupported database {parsed.drivername!r}: use sqlite:///PATH or "
        "postgresql://USER@HOST/DB"
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       f"busy_timeout={_BUSY_TIMEOUT_MS}", f"cache_size={_CACHE_KIB}"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
