"""The hub's PostgreSQL connections: not pinged before each use, yet never a dead one used.

A connection the server closed (a restart, ``pg_terminate_backend``) is found at checkout
without a round trip and replaced; one that dies inside a transaction has the transaction
run again once on a fresh connection. Real hub process, real PostgreSQL, real kills.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from sqlalchemy import Connection, text

from edge_agent.codecs.batch import READINGS_TYPE, encode_readings
from edge_agent.records import Reading
from sync_server.db.engine import create_hub_engine, transaction
from tests.helpers.hub import HubProcess, start_hub
from tests.helpers.postgres import HOST, PORT, USER, fresh_database, require_postgres

_T0 = 1_764_000_000_000


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    require_postgres()
    with fresh_database("connections") as url, \
            start_hub(tmp_path_factory.mktemp("hub"), url) as running:
        yield running


def _terminate(database: str, pid: int | None = None) -> int:
    """End the sessions of ``database`` (only ``pid`` if given), as an administrator would."""
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres",
                         autocommit=True) as admin:
        ended = [int(row[0]) for row in admin.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND pid <> pg_backend_pid() AND (%s::int IS NULL OR pid = %s::int)",
            (database, pid, pid)) if row[1]]
        # pg_terminate_backend only signals: wait until each backend has acted on it (a
        # loaded machine may take its time), so the next statement on it surely fails.
        deadline = time.monotonic() + 30
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                            (ended,)).fetchone() != (0,):
            assert time.monotonic() < deadline, f"backends {ended} still there after 30 s"
            time.sleep(0.05)
    time.sleep(0.2)  # the sessions' ends reach their sockets
    return len(ended)


def test_pushes_and_queries_go_on_after_the_hubs_connections_are_terminated(
    pg_hub: HubProcess,
) -> None:
    token = pg_hub.enroll("cut", "cut-gw")["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with pg_hub.operator("cut") as operator:
        for seq in range(1, 4):
            assert operator.get("/v1/latest").status_code == 200
            body = encode_readings(seq, [Reading("m1", "voltage", _T0 + seq * 1000, 230.0)])
            answer = httpx.post(f"{pg_hub.url}/v1/gateway/streams/readings/batches",
                                content=body, timeout=10,
                                headers={**auth, "Content-Type": READINGS_TYPE})
            assert (answer.status_code, answer.json()["acked"]) == (200, {"readings": seq})
            pg_hub.engine.dispose()  # the test's own connections go too, not only the hub's
            assert _terminate(pg_hub.engine.url.database or "") >= 1


def test_a_transaction_whose_connection_dies_runs_again_once() -> None:
    require_postgres()
    with fresh_database("connections") as url:
        engine = create_hub_engine(url, pool_size=2)
        database = engine.url.database or ""
        sessions: list[int] = []

        def work(conn: Connection) -> int:
            sessions.append(int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()))
            if len(sessions) == 1:
                _terminate(database, sessions[0])  # between two statements of this one
            return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

        try:
            assert transaction(engine, work) == sessions[1] != sessions[0]
        finally:
            engine.dispose()
