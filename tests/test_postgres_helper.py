"""The PostgreSQL test helper: availability with a reason, throwaway databases that go away."""

from __future__ import annotations

import re
import socket
import time

import psycopg
import pytest
import sqlalchemy

from tests.helpers import postgres
from tests.helpers.postgres import fresh_database, postgres_available, require_postgres


def _exists(name: str) -> bool:
    with psycopg.connect(host=postgres.HOST, port=postgres.PORT, user=postgres.USER,
                         dbname="postgres") as connection:
        row = connection.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                                 (name,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_a_fresh_database_is_usable_then_dropped() -> None:
    require_postgres()
    with fresh_database("helper") as url:
        name = url.rsplit("/", 1)[1]
        assert re.fullmatch(r"postgresql\+psycopg://postgres@127\.0\.0\.1:5432/"
                            r"ponton_helper_[0-9a-f]{16}", url)
        assert _exists(name)
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text("CREATE TABLE t (x integer)"))
                connection.execute(sqlalchemy.text("INSERT INTO t VALUES (41), (1)"))
            with engine.connect() as connection:
                total = connection.execute(sqlalchemy.text("SELECT sum(x) FROM t")).scalar()
            assert total == 42
        finally:
            engine.dispose()
    assert not _exists(name)


def test_two_fresh_databases_never_share_a_name() -> None:
    require_postgres()
    with fresh_database("helper") as first, fresh_database("helper") as second:
        assert first != second


def test_the_database_is_dropped_despite_an_error_and_an_open_connection() -> None:
    require_postgres()
    names: list[str] = []
    left_open: list[psycopg.Connection[tuple[object, ...]]] = []

    def failing_test_body() -> None:
        with fresh_database("helper") as url:
            names.append(url.rsplit("/", 1)[1])
            left_open.append(psycopg.connect(host=postgres.HOST, port=postgres.PORT,
                                             user=postgres.USER, dbname=names[0]))
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        failing_test_body()
    try:
        assert not _exists(names[0])
        with pytest.raises(psycopg.OperationalError):
            left_open[0].execute("SELECT 1")  # terminated by the forced drop
    finally:
        left_open[0].close()


@pytest.mark.parametrize("prefix", ["", "Hub", "hub-push", "1hub", "x" * 31, "hub; DROP"])
def test_a_prefix_that_would_make_an_odd_name_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"), fresh_database(prefix):
        pass


def test_a_closed_port_gives_the_reason() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        reason = postgres_available(port=holder.getsockname()[1])
    assert reason is not None
    assert "refused" in reason.lower()


def test_a_server_that_never_answers_times_out_in_about_two_seconds() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts at the kernel level, never says a word
        started = time.monotonic()
        reason = postgres_available(port=silent.getsockname()[1])
        elapsed = time.monotonic() - started
    assert reason is not None
    assert 1.5 <= elapsed < 10


def test_require_postgres_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "postgres_available", lambda: "connection refused")
    with pytest.raises(pytest.skip.Exception,
                       match=r"^PostgreSQL not reachable at 127\.0\.0\.1:5432: "
                             r"connection refused; CI always has it$"):
        require_postgres()

