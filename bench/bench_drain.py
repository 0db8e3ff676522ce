"""Draining a week of backlog from the outbox to the hub, end to end, in readings per second.

The backlog: 200 meters read once a minute for 7 days, 2,016,000 readings (an energy index
and a power value per meter, alternating), written to a gateway outbox before timing. The
timed part is exactly what ``edge-agent sync --once`` does: ``SyncLoop.start`` then
``push_next`` until the outbox is empty (read a batch of 10,000, encode it columnar, zstd,
HTTP POST to a hub process on 127.0.0.1, decode, store, answer, delete through the ack).

Baseline, measured in the same run on the same database: the store floor, inserting the same
rows straight into an identical ``readings`` table in batches of 10,000 with the fastest bulk
path of the store (``executemany`` on SQLite, ``COPY`` on PostgreSQL), no HTTP and no codec.
The ratio says how much of the database's own speed the whole sync path keeps.

Stores: the embedded SQLite hub always; the PostgreSQL hub when 127.0.0.1:5432 answers.
Run: .venv/bin/python bench/bench_drain.py [--runs 3] [--days 7] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import Engine, text

from bench.scratch_database import scratch_database
from edge_agent.config import SyncSection
from edge_agent.records import Reading
from edge_agent.store import Outbox
from edge_agent.sync.client import HubClient, enroll
from edge_agent.sync.identity import Identity
from edge_agent.sync.loop import SyncLoop
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import upgrade

METERS = 200
START_MS = 1_795_564_800_000  # 2026-11-25T00:00:00Z
BATCH = 10_000
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def backlog(days: int) -> Iterator[list[Reading]]:
    """The week's readings, one minute of 200 meters at a time."""
    energy = [1000.0 + meter * 13.7 for meter in range(METERS)]
    for minute in range(days * 24 * 60):
        ts = START_MS + minute * 60_000
        chunk = []
        for meter in range(METERS):
            if minute % 2:
                power = 300.0 + (meter * 37 + minute * 11) % 2200
                chunk.append(Reading(f"berth-{meter:03d}", "active_power", ts, power))
            else:
                energy[meter] += 0.001 * ((meter + minute) % 40)
                chunk.append(Reading(f"berth-{meter:03d}", "active_energy_import", ts,
                                     energy[meter]))
        yield chunk


def fill_outbox(path: Path, days: int) -> int:
    """Write the backlog; how many readings it holds."""
    count = 0
    pending: list[Reading] = []
    with Outbox.open(path) as outbox:
        for chunk in backlog(days):
            pending += chunk
            if len(pending) >= 10_000:
                count += len(outbox.append_readings(pending))
                pending = []
        if pending:
            count += len(outbox.append_readings(pending))
    return count


@contextmanager
def database(store: str, root: Path) -> Iterator[str]:
    """A fresh hub database URL, dropped afterwards."""
    if store == "sqlite":
        yield f"sqlite:///{root / 'hub.db'}"
        return
    with scratch_database("drain") as db:
        yield db.url


def register(engine: Engine, url: str, name: str) -> Identity:
    """Register one gateway and enroll it over HTTP, as ``edge-agent provision`` does."""
    admin.add_territory(engine, "bench")
    admin.add_site(engine, "bench", "site")
    code = admin.add_gateway(engine, "bench", "site", name).code
    return asyncio.run(enroll(url, code, insecure_http=True))


async def drain(outbox: Outbox, identity: Identity) -> int:
    """The ``sync --once`` path: what the hub acknowledged."""
    async with HubClient(identity, timeout_s=120) as client:
        loop = SyncLoop(outbox, client, SyncSection(batch_limit=BATCH))
        await loop.start()
        sent = 0
        while count := await loop.push_next():
            sent += count
        return sent


def run_sync(store: str, days: int, template: Path, root: Path) -> float:
    """Readings per second through the whole sync path."""
    outbox_path = root / "outbox.sqlite"
    outbox_path.write_bytes(template.read_bytes())
    with database(store, root) as url:
        engine = demo_engine(root, url)
        upgrade(engine)
        base, process = spawn_hub(root, url)
        try:
            identity = register(engine, base, "drain")
            with Outbox.open(outbox_path) as outbox:
                started = time.perf_counter()
                sent = asyncio.run(drain(outbox, identity))
                elapsed = time.perf_counter() - started
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
            if stored != sent:
                raise SystemExit(f"{store}: {sent} acknowledged but {stored} stored")
        finally:
            stop_process(process)
            engine.dispose()
    return sent / elapsed


def run_floor(store: str, readings: list[list[Reading]], root: Path) -> float:
    """Readings per second inserting the same rows straight into the hub's table."""
    with database(store, root) as url:
        engine = create_hub_engine(url)
        upgrade(engine)
        flat = (r for chunk in readings for r in chunk)
        rows = [(1, seq, seq % (2 * METERS), r.ts_ms, r.value, 0)
                for seq, r in enumerate(flat, 1)]
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            with engine.begin() as conn:
                if store == "sqlite":
                    conn.exec_driver_sql(
                        "INSERT INTO readings (stream_id, seq, series_id, ts_ms, value, quality)"
                        " VALUES (?, ?, ?, ?, ?, ?)", part)
                else:
                    driver = conn.connection.driver_connection
                    assert driver is not None
                    with driver.cursor().copy(
                        "COPY readings (stream_id, seq, series_id, ts_ms, value, quality)"
                        " FROM STDIN") as copy:
                        for row in part:
                            copy.write_row(row)
        elapsed = time.perf_counter() - started
        engine.dispose()
    return len(rows) / elapsed


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per store (median taken)")
    parser.add_argument("--days", type=int, default=7, help="days of backlog (default 7)")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], action="append",
                        help="only this store (repeatable); default: both when reachable")
    args = parser.parse_args()
    stores = args.store or ["sqlite", *(["postgresql"] if postgres_reachable() else [])]
    readings = list(backlog(args.days))
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.sqlite"
        count = fill_outbox(template, args.days)
        print(f"backlog: {count:,} readings ({METERS} meters, {args.days} days, one a minute); "
              f"batches of {BATCH:,}; median of {args.runs} runs")
        print(f"{'store':<11} {'sync r/s':>10} {'floor r/s':>10} {'ratio':>6} {'drain time':>11}")
        for store in stores:
            sync_rates, floor_rates = [], []
            for run in range(args.runs):
                root = Path(tmp) / f"{store}-{run}"
                root.mkdir()
                sync_rates.append(run_sync(store, args.days, template, root))
                (root / "floor").mkdir()
                floor_rates.append(run_floor(store, readings, root / "floor"))
            sync, floor = statistics.median(sync_rates), statistics.median(floor_rates)
            print(f"{store:<11} {sync:>10,.0f} {floor:>10,.0f} {sync / floor:>6.2f}"
                  f" {count / sync:>10.1f}s")


if __name__ == "__main__":
    main()
