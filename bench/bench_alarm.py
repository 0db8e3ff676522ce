"""Alarm latency, raised at the edge to stored at the hub, while a backlog drains.

The gateway has a million readings waiting (a long outage just ended) and the sync loop is
draining them in batches of 10,000 (the default). Every 0.1 to 0.3 s an alarm is raised:
written to the outbox's alarms stream and the loop woken, as the agent's writer does. A
watcher polls the hub's database every 2 ms for the alarm's seq; the latency is from the
write's start to the first poll that sees it committed at the hub (an upper bound by up to
2 ms).

Baseline, same run, same hub: the same alarms raised with an empty outbox, the loop idle
with the default 5 s interval, so only the wake-up makes them leave at once.

Run: .venv/bin/python bench/bench_alarm.py [--runs 3] [--backlog 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, func, select

from edge_agent.config import SyncSection
from edge_agent.records import Event, Reading, now_ms
from edge_agent.store import Outbox
from edge_agent.sync.client import HubClient, enroll
from edge_agent.sync.identity import Identity
from edge_agent.sync.loop import SyncLoop
from simulators.hub_process import spawn_hub, stop_process
from sync_server import admin
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import upgrade
from sync_server.db.schema import events

ALARMS = 20
START_MS = 1_795_564_800_000


def fill(path: Path, count: int) -> None:
    """``count`` readings of 200 meters, one a minute, as a week offline leaves them."""
    with Outbox.open(path) as outbox:
        for start in range(0, count, 10_000):
            outbox.append_readings([
                Reading(f"berth-{i % 200:03d}", "active_energy_import",
                        START_MS + i // 200 * 60_000, 1000.0 + i * 0.001)
                for i in range(start, min(count, start + 10_000))])


class Watcher(threading.Thread):
    """Polls the hub for the highest alarm seq stored and notes when each one appeared."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        query = select(func.max(events.c.seq)).where(events.c.kind == "alarm.raised")
        while not self.stop.is_set():
            with self.engine.connect() as conn:
                top = conn.execute(query).scalar() or 0
            now = time.perf_counter()
            for seq in range(len(self.seen) + 1, top + 1):
                self.seen[seq] = now
            time.sleep(0.002)


async def raise_alarms(outbox: Outbox, loop: SyncLoop, first_seq: int,
                       rng: random.Random) -> dict[int, float]:
    """Raise ``ALARMS`` alarms; when each was raised, by seq."""
    raised: dict[int, float] = {}
    for n in range(ALARMS):
        await asyncio.sleep(rng.uniform(0.1, 0.3))
        started = time.perf_counter()
        alarm = Event("alarm.raised", "level-1", now_ms(), {"level_cm": 300 + n})
        await asyncio.to_thread(outbox.append_events, [alarm], stream="alarms")
        loop.wake()
        raised[first_seq + n] = started
    return raised


async def measure(outbox: Outbox, identity: Identity, watcher: Watcher, first_seq: int,
                  seed: int) -> list[float]:
    """Latencies in ms of one series of alarms against the running loop."""
    async with HubClient(identity, timeout_s=60) as client:
        loop = SyncLoop(outbox, client, SyncSection())
        stop = asyncio.Event()
        runner = asyncio.create_task(loop.run(stop))
        raised = await raise_alarms(outbox, loop, first_seq, random.Random(seed))
        deadline = time.perf_counter() + 30
        while any(seq not in watcher.seen for seq in raised) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await runner
    return [(watcher.seen[seq] - at) * 1000 for seq, at in raised.items()]


def run_once(root: Path, backlog: int, seed: int) -> tuple[list[float], list[float], int]:
    """(latencies with the backlog, latencies idle, readings still waiting after the first)."""
    url = f"sqlite:///{root / 'hub.db'}"
    engine = create_hub_engine(url)
    upgrade(engine)
    base, process = spawn_hub(root, url)
    watcher = Watcher(engine)
    try:
        admin.add_territory(engine, "bench")
        admin.add_site(engine, "bench", "site")
        identity = asyncio.run(enroll(base, admin.add_gateway(engine, "bench", "site",
                                                              "alarm").code))
        fill(root / "outbox.sqlite", backlog)
        watcher.start()
        with Outbox.open(root / "outbox.sqlite") as outbox:
            busy = asyncio.run(measure(outbox, identity, watcher, 1, seed))
            left = sum(s.depth for s in outbox.stats())
            outbox.ack("readings", backlog)
            idle = asyncio.run(measure(outbox, identity, watcher, ALARMS + 1, seed + 1))
    finally:
        watcher.stop.set()
        watcher.join()
        stop_process(process)
        engine.dispose()
    return busy, idle, left


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    args = parser.parse_args()
    busy: list[float] = []
    idle: list[float] = []
    lefts = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            b, i, left = run_once(Path(tmp), args.backlog, seed=run)
        busy += b
        idle += i
        lefts.append(left)
    print(f"alarm raised -> stored at the hub (SQLite hub, batches of 10,000), "
          f"{args.runs} runs x {ALARMS} alarms")
    print(f"{'outbox':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{f'{args.backlog:,} readings draining':<34} {statistics.median(busy):>8.1f}"
          f" {p99(busy):>8.1f} {max(busy):>8.1f}")
    print(f"{'empty (baseline)':<34} {statistics.median(idle):>8.1f} {p99(idle):>8.1f}"
          f" {max(idle):>8.1f}")
    print(f"readings still waiting when the last alarm was stored: "
          f"{', '.join(f'{left:,}' for left in lefts)} (the backlog was still draining)")


if __name__ == "__main__":
    main()
