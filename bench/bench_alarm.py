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
import time
from pathlib import Path

from edge_agent.config import SyncSection
from edge_agent.records import Event, now_ms
from edge_agent.store import Outbox
from edge_agent.sync.client import HubClient
from edge_agent.sync.identity import Identity
from edge_agent.sync.loop import SyncLoop
from simulators.alarm_watch import AlarmWatcher, fill, hub_with_gateway, latency_table, runs

ALARMS = 20


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


async def measure(outbox: Outbox, identity: Identity, watcher: AlarmWatcher, first_seq: int,
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
    with hub_with_gateway(root, "alarm") as (identity, watcher):
        fill(root / "outbox.sqlite", backlog)
        with Outbox.open(root / "outbox.sqlite") as outbox:
            busy = asyncio.run(measure(outbox, identity, watcher, 1, seed))
            left = sum(s.depth for s in outbox.stats())
            outbox.ack("readings", backlog)
            idle = asyncio.run(measure(outbox, identity, watcher, ALARMS + 1, seed + 1))
    return busy, idle, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    args = parser.parse_args()
    busy, idle, lefts = runs(args.runs, args.backlog, run_once)
    print(f"alarm raised -> stored at the hub (SQLite hub, batches of 10,000), "
          f"{args.runs} runs x {ALARMS} alarms")
    print(latency_table(args.backlog, busy, idle))
    print(f"readings still waiting when the last alarm was stored: "
          f"{', '.join(f'{left:,}' for left in lefts)} (the backlog was still draining)")


if __name__ == "__main__":
    main()
