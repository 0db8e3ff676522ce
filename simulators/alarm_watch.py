"""For the alarm benchmarks: a hub with a gateway enrolled, a backlog, a watch on alarms.

A real hub process on SQLite (simulators/hub_process.py) with one territory, site and
gateway enrolled over HTTP; an outbox filled with a long outage's readings; and a thread
that polls the hub's database every 2 ms and notes when each ``alarm.raised`` was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Engine, func, select

from edge_agent.records import Reading
from edge_agent.store import Outbox
from edge_agent.sync.client import enroll
from edge_agent.sync.identity import Identity
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.db.migrate import upgrade
from sync_server.db.schema import events

__all__ = ["AlarmWatcher", "fill", "hub_with_gateway", "latency_table", "p99", "runs"]

START_MS = 1_795_564_800_000


def fill(path: Path, count: int) -> None:
    """``count`` readings of 200 meters, one a minute, as a week offline leaves them."""
    with Outbox.open(path) as outbox:
        for start in range(0, count, 10_000):
            outbox.append_readings([
                Reading(f"berth-{i % 200:03d}", "active_energy_import",
                        START_MS + i // 200 * 60_000, 1000.0 + i * 0.001)
                for i in range(start, min(count, start + 10_000))])


class AlarmWatcher(threading.Thread):
    """Polls the hub for the number of ``alarm.raised`` stored; ``seen[n]``: when the n-th was.

    Times are ``time.perf_counter()``, an upper bound by up to the 2 ms polling period.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        query = select(func.count()).select_from(events).where(events.c.kind == "alarm.raised")
        while not self.stop.is_set():
            with self.engine.connect() as conn:
                stored = conn.execute(query).scalar() or 0
            now = time.perf_counter()
            for n in range(len(self.seen) + 1, stored + 1):
                self.seen[n] = now
            time.sleep(0.002)


@contextlib.contextmanager
def hub_with_gateway(root: Path, name: str) -> Iterator[tuple[Identity, AlarmWatcher]]:
    """A hub on ``root/hub.db``, gateway ``name`` enrolled, and a started watcher on it."""
    url = f"sqlite:///{root / 'hub.db'}"
    engine = demo_engine(root)
    upgrade(engine)
    base, process = spawn_hub(root, url)
    watcher = AlarmWatcher(engine)
    try:
        admin.add_territory(engine, "bench")
        admin.add_site(engine, "bench", "site")
        code = admin.add_gateway(engine, "bench", "site", name).code
        identity = asyncio.run(enroll(base, code, insecure_http=True))
        watcher.start()
        yield identity, watcher
    finally:
        watcher.stop.set()
        if watcher.is_alive():
            watcher.join()
        stop_process(process)
        engine.dispose()


#: One run: (latencies with the backlog, latencies with an empty outbox, readings left).
RunOnce = Callable[[Path, int, int], tuple[list[float], list[float], int]]


def runs(count: int, backlog: int, run_once: RunOnce
         ) -> tuple[list[float], list[float], list[int]]:
    """Every run's latencies together, each run in a new directory; readings left by run."""
    busy: list[float] = []
    idle: list[float] = []
    lefts = []
    for run in range(count):
        with tempfile.TemporaryDirectory() as tmp:
            b, i, left = run_once(Path(tmp), backlog, run)
        busy += b
        idle += i
        lefts.append(left)
    return busy, idle, lefts


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def latency_table(backlog: int, busy: list[float], idle: list[float]) -> str:
    """p50, p99 and max with the backlog draining and with an empty outbox."""
    return "\n".join([
        f"{'outbox':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        f"{f'{backlog:,} readings draining':<34} {statistics.median(busy):>8.1f}"
        f" {p99(busy):>8.1f} {max(busy):>8.1f}",
        f"{'empty (baseline)':<34} {statistics.median(idle):>8.1f} {p99(idle):>8.1f}"
        f" {max(idle):>8.1f}"])
