"""PostgreSQL for tests: is it there, and a throwaway database per test module.

The hub runs on SQLite or PostgreSQL, and both must be tested. CI always has a PostgreSQL at
127.0.0.1:5432 with trust authentication; a developer's machine may not, so tests that need
it skip with a reason instead of failing (``require_postgres``). Each user of
``fresh_database`` gets its own database with a random name, so parallel runs and leftovers
of a killed run never collide, and it is dropped with ``WITH (FORCE)`` even when a
connection was left open.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

__all__ = [
    "HOST",
    "PORT",
    "USER",
    "fresh_database",
    "postgres_available",
    "require_postgres",
]

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
#: The database the helpers connect to in order to create and drop the others.
_MAINTENANCE_DB = "postgres"
_CONNECT_TIMEOUT_S = 2
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,29}")


def postgres_available(*, host: str = HOST, port: int = PORT) -> str | None:
    """None if PostgreSQL answers a query within 2 seconds, else why not."""
    try:
        with psycopg.connect(host=host, port=port, user=USER, dbname=_MAINTENANCE_DB,
                             connect_timeout=_CONNECT_TIMEOUT_S) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def require_postgres() -> None:
    """Skip the calling test (or fixture) when PostgreSQL is not reachable."""
    reason = postgres_available()
    if reason is not None:
        pytest.skip(f"PostgreSQL not reachable at {HOST}:{PORT}: {reason}; CI always has it")


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """Create ``ponton_<prefix>_<random hex>``, yield its SQLAlchemy URL, drop it at exit.

    ``prefix`` names the user (``hub``, ``queries`` …) so a leftover says where it came
    from: lower-case letters, digits and underscores, at most 30 characters.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r} must match {_PREFIX.pattern}")
    name = f"ponton_{prefix}_{secrets.token_hex(8)}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{name}"
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(statement: sql.Composed) -> None:
    # CREATE and DROP DATABASE cannot run inside a transaction, hence autocommit.
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=_MAINTENANCE_DB,
                         connect_timeout=_CONNECT_TIMEOUT_S, autocommit=True) as connection:
        connection.execute(statement)
