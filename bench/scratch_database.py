"""A throw-away PostgreSQL database for one benchmark run, dropped whatever happens."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import make_url

__all__ = ["SERVER", "ScratchDatabase", "scratch_database"]

#: The local server every benchmark uses unless told otherwise.
SERVER = "postgresql://postgres@127.0.0.1:5432"


@dataclass(frozen=True, slots=True)
class ScratchDatabase:
    """One database, named for SQLAlchemy (the hub) and for psycopg (bulk COPY)."""

    url: str
    dsn: str


@contextmanager
def scratch_database(tag: str, server: str = SERVER) -> Iterator[ScratchDatabase]:
    """A new database ``ponton_bench_<tag>_<hex>`` on ``server``, dropped (WITH FORCE) at exit,
    so an interrupted run leaves nothing behind."""
    name = f"ponton_bench_{tag}_{secrets.token_hex(4)}"
    base = make_url(server)
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield ScratchDatabase(
            base.set(drivername="postgresql+psycopg", database=name).render_as_string(
                hide_password=False),
            base.set(drivername="postgresql", database=name).render_as_string(
                hide_password=False))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
