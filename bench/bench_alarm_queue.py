"""Sensor to hub: a LoRa uplink's alarm stored at the hub while a million readings wait.

A provisioned gateway (edge_agent.runtime.Gateway, sync on, defaults) comes back from a long
outage: its outbox holds 1,000,000 readings (bench/bench_alarm.py's backlog) that the sync
loop drains to a real hub process (SQLite) in batches of 10,000. Its ``[[lora]]`` source on
the local Mosquitto hears a Dragino LDDS75 under a bridge, and a ``[[rules]]`` rule raises
``flood-road`` when the distance to the water falls below 0.5 m (clears above 0.6 m). The
ChirpStack simulator publishes a raising uplink (0.3 m), then a clearing one (1.0 m), 0.1 to
0.3 s apart, 20 times. Measured per alarm: from just before the raising uplink's publish to
the hub's database holding that ``alarm.raised`` (a watcher polls it every 2 ms: an upper
bound by up to 2 ms). The whole path: MQTT, decoding, the rule, the writer's transaction
into the alarms stream, the sync's wake-up, the push and the hub's commit.

Baseline in the same run, same hub, same gateway: the same 20 alarms once the backlog is
acknowledged (an empty outbox, the loop idle). Percentiles over every alarm of every run.
bench/bench_alarm.py measures the same with alarms written straight into the outbox.

Run: .venv/bin/python bench/bench_alarm_queue.py [--runs 3] [--backlog 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.runtime import OUTBOX_FILE, Gateway
from edge_agent.store import Outbox
from edge_agent.sync.identity import Identity, save_identity
from simulators.alarm_watch import (
    AlarmWatcher,
    fill,
    hub_with_gateway,
    latency_table,
    p99,
    runs,
)
from simulators.lora.chirpstack import ChirpstackPublisher, SimulatedSensor
from simulators.lora.fleet import BROKER, NO_BROKER, fleet, lora_toml
from simulators.mqtt_broker import broker_answers

ALARMS = 20
FLOOD = SimulatedSensor("flood-bridge", "a84041000181c061", "dragino-ldds75")
RULE = """
[[rules]]
name = "flood-road"
device = "flood-bridge"
quantity = "distance"
kind = "below"
threshold = 0.5
clear_at = 0.6
severity = "critical"
"""


async def alarms(config: Path, app: str, watcher: AlarmWatcher, first: int,
                 rng: random.Random) -> tuple[list[float], int]:
    """Latencies in ms of ``ALARMS`` LoRa-raised alarms; readings left in the outbox after."""
    gateway = Gateway(load_config(config))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    async with asyncio.timeout(20):
        while not (gateway.lora and gateway.lora[0].session.connected.is_set()):
            await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)  # subscribed; the sync has started on the backlog
    publisher = await asyncio.to_thread(ChirpstackPublisher, BROKER, app)

    def send(distance: float) -> float:
        sent = time.perf_counter()
        publisher.uplink(FLOOD, {"distance": distance, "temperature": 9.0})
        return sent

    raised: dict[int, float] = {}
    for n in range(ALARMS):
        raised[first + n] = await asyncio.to_thread(send, 0.3)
        await asyncio.sleep(rng.uniform(0.1, 0.3))
        await asyncio.to_thread(send, 1.0)
        await asyncio.sleep(rng.uniform(0.1, 0.3))
    deadline = time.perf_counter() + 30
    while any(n not in watcher.seen for n in raised) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(publisher.close)
    stop.set()
    await task
    with Outbox.open(config.parent / "data" / OUTBOX_FILE) as outbox:
        left = next(s.depth for s in outbox.stats() if s.name == "readings")
    missing = [n for n in raised if n not in watcher.seen]
    if missing:
        raise RuntimeError(f"alarms {missing} never reached the hub")
    return [(watcher.seen[n] - at) * 1000 for n, at in raised.items()], left


def run_once(root: Path, backlog: int, seed: int) -> tuple[list[float], list[float], int]:
    """(latencies with the backlog, latencies with an empty outbox, readings still waiting)."""
    app = str(uuid.uuid4())
    with hub_with_gateway(root, "lora-alarm") as (identity, watcher):
        gateway_dir = root / "gateway"
        gateway_dir.mkdir()
        config = lora_toml(gateway_dir, BROKER, app, "json", [FLOOD, *fleet(200)],
                           client_id=f"bench-alarm-{uuid.uuid4().hex[:8]}", extra=RULE, sync=True)
        provision(gateway_dir / "data", identity, backlog)
        busy, left = asyncio.run(alarms(config, app, watcher, 1, random.Random(seed)))
        with Outbox.open(gateway_dir / "data" / OUTBOX_FILE) as outbox:
            readings = next(s for s in outbox.stats() if s.name == "readings")
            outbox.ack("readings", readings.last_seq)
        idle, _ = asyncio.run(alarms(config, app, watcher, ALARMS + 1, random.Random(seed + 1)))
    return busy, idle, left


def provision(data_dir: Path, identity: Identity, backlog: int) -> None:
    """The gateway's enrollment and its outbox holding ``backlog`` readings."""
    save_identity(data_dir, identity)
    fill(data_dir / OUTBOX_FILE, backlog)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    args = parser.parse_args()
    if not broker_answers():
        print(NO_BROKER)
        return
    busy, idle, lefts = runs(args.runs, args.backlog, run_once)
    print(f"LoRa uplink -> alarm stored at the hub (SQLite hub, batches of 10,000), "
          f"{args.runs} runs x {ALARMS} alarms")
    print(latency_table(args.backlog, busy, idle))
    spread = [p99(busy[n:n + ALARMS]) for n in range(0, len(busy), ALARMS)]
    print(f"p99 of each run with the backlog: {', '.join(f'{v:.1f}' for v in spread)} ms; "
          f"readings still waiting after the last alarm: "
          f"{', '.join(f'{left:,}' for left in lefts)}; goal p99 < 1 s: "
          f"{'met' if p99(busy) < 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
