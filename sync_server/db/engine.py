"""Engines for the two stores: SQLite (embedded default) and PostgreSQL (psycopg 3).

SQLite gets WAL and ``synchronous=FULL``: the hub acknowledges records that the gateway then
deletes, so an acknowledged batch must survive a power cut. Writing transactions start with
``BEGIN IMMEDIATE``, taking the write lock up front: two hub threads then queue on the busy
timeout instead of failing to upgrade a read lock halfway through a batch. Reads go through
``reading``, a plain deferred transaction, so a token check or an operator's query never
waits for an ingest (WAL lets them read beside it).

PostgreSQL connections are not pinged before each use: that was a round trip per checkout,
a tenth of a busy hub's time. A pooled connection the server closed (a restart, an
administrator's ``pg_terminate_backend``, an idle timeout) has its socket readable while it
sits idle, end of file or the server's last error: that is checked at checkout, without a
round trip, and such a connection is replaced (``_alive``). One that dies between checkout
and use fails its transaction, which ``transaction`` runs once more on a fresh connection;
connections are also renewed after ``_RECYCLE_S``.
"""

from __future__ import annotations

import select
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from sync_server.errors import SettingsError
from sync_server.private_files import private_directory, private_sqlite_database

__all__ = ["create_hub_engine", "open_hub_engine", "reading", "transaction"]

_T = TypeVar("_T")

_BUSY_TIMEOUT_MS = 30_000
#: Negative: KiB. Readings arrive interleaved across every series, so the (series, time)
#: index takes random inserts; a 64 MiB page cache keeps them off the disk (measured 1.8x).
_CACHE_KIB = -65_536
#: PostgreSQL connections older than this are closed and opened again at their next checkout.
_RECYCLE_S = 1800


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite it does not take the write lock."""
    with engine.connect() as conn:
        yield conn.execution_options(readonly=True)


def transaction(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    """``work`` in one transaction, committed; run once more on a fresh connection if the
    first one turned out dead (the whole transaction was rolled back with it)."""
    try:
        with engine.begin() as conn:
            return work(conn)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with engine.begin() as conn:
        return work(conn)


def create_hub_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url``: ``sqlite:///path`` or ``postgresql+psycopg://…``.

    A missing SQLite file (and its directory) is created here, 0600 (0700): only schema
    upgrades should call this on a store that may not exist yet (see ``open_hub_engine``).
    """
    parsed = _parse(url)
    if parsed.drivername == "sqlite":
        _make_parent(parsed.database)
    return _engine(url, parsed, pool_size)


def open_hub_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for an existing store; SettingsError naming the path when no SQLite file is
    there, so a command run in the wrong directory never leaves an empty hub behind."""
    parsed = _parse(url)
    database = parsed.database
    if parsed.drivername == "sqlite" and database and database != ":memory:" \
            and not Path(database).is_file():
        raise SettingsError(
            f"no hub database at {Path(database).absolute()}: nothing is there; create one with "
            "`sync-server db upgrade`, or give the hub's --data-dir or --database-url")
    return _engine(url, parsed, pool_size)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsed lazily: a bad port raises here, not later
    except (ArgumentError, ValueError) as exc:
        raise SettingsError(f"invalid database URL (password hidden) "
                            f"{_without_password(url)!r}: {exc}") from None
    return parsed


def _make_parent(database: str | None) -> None:
    if not database or database == ":memory:":
        return
    try:
        private_directory(Path(database).parent)
    except OSError as exc:
        raise SettingsError(f"cannot create the directory of {database}: {exc.strerror}") \
            from None


def _engine(url: str, parsed: URL, pool_size: int) -> Engine:
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                private_sqlite_database(Path(parsed.database))
            except OSError as exc:
                raise SettingsError(f"cannot open the hub database {parsed.database} as a "
                                    f"private file (mode 0600): {exc.strerror}") from None
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_size=pool_size, max_overflow=pool_size,
                               pool_recycle=_RECYCLE_S)
        event.listen(engine, "checkout", _alive)
        return engine
    raise SettingsError(
        f"unsupported database {parsed.drivername!r}: use sqlite:///PATH or "
        "postgresql://USER@HOST/DB"
    )


def _alive(dbapi_connection: Any, _: ConnectionPoolEntry, __: PoolProxiedConnection) -> None:
    """DisconnectionError (the pool then opens another) if the server closed this idle
    connection: anything to read on it, end of file or a last error, says so."""
    if dbapi_connection.closed:
        raise DisconnectionError("this pooled connection was closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed this pooled connection")


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       f"busy_timeout={_BUSY_TIMEOUT_MS}", f"cache_size={_CACHE_KIB}"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        readonly = connection.get_execution_options().get("readonly", False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine
