"""LoRa ingest: uplinks per second from the broker into the durable outbox, acknowledged.

A fleet of LoRa sensors (the shipped profiles in a territory's mix, simulators/lora/fleet.py)
sends N uplinks, built ahead of time by the ChirpStack simulator and published QoS 1 to the
agent's persistent session while the agent is away (a gateway coming back after a network
cut: the broker holds the backlog). Then a gateway starts (edge_agent.runtime.Gateway with one
``[[lora]]`` source): it decodes the uplinks, commits their readings and delivery keys to the
outbox, and only then acknowledges each message. Timed: from the broker's CONNACK to the
moment every message is committed and acknowledged (the source handled N messages and no
durable callback is pending); the outbox's readings are counted afterwards.

The broker is a Mosquitto of the benchmark's own (same binary, default config except
``max_queued_messages 0``): the default 1,000 queued messages per client would drop most of
the backlog, and a publisher racing the consumer overflows that queue just the same.

Baselines in the same run, same broker, same messages: a bare paho subscriber resuming its
own pre-published session with automatic acks and doing nothing with the messages (the
broker and transport ceiling); and parse only, in process: ChirpStack event decoding and
the profile's payload decoding of every message.

Run: .venv/bin/python bench/bench_lora_ingest.py [--runs 3] [--uplinks 20000] [--devices 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Literal

from edge_agent.codecs.chirpstack import decode_event
from edge_agent.config import load_config
from edge_agent.profiles import load_lora_profile
from edge_agent.runtime import OUTBOX_FILE, Gateway
from edge_agent.store import Outbox
from simulators.lora.chirpstack import ChirpstackPublisher, SimulatedSensor
from simulators.lora.fleet import (
    BareSubscriber,
    Message,
    fleet,
    lora_toml,
    make_session,
    private_broker,
    publish_all,
    uplinks,
)

Format = Literal["json", "protobuf"]


async def agent_run(url: str, messages: list[Message], sensors: list[SimulatedSensor],
                    fmt: Format, app: str) -> tuple[float, int]:
    """(uplinks/s committed and acked, readings in the outbox) for a pre-published backlog."""
    with tempfile.TemporaryDirectory() as tmp:
        client_id = f"bench-agent-{uuid.uuid4().hex[:10]}"
        await asyncio.to_thread(make_session, url, client_id, app)
        await asyncio.to_thread(publish_all, url, messages)
        gateway = Gateway(load_config(lora_toml(Path(tmp), url, app, fmt, sensors,
                                                client_id=client_id)))
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        async with asyncio.timeout(20):
            while not (gateway.lora and gateway.lora[0].session.connected.is_set()):
                await asyncio.sleep(0.001)
        start = time.monotonic()
        source = gateway.lora[0]
        deadline = start + 300
        while ((source.counters.messages < len(messages) or gateway.buffer.on_durable)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.002)
        end = time.monotonic()
        counters = source.counters
        handled, refused = counters.messages, counters.duplicates + counters.decode_errors
        stop.set()
        await task
        with Outbox.open(Path(tmp) / "data" / OUTBOX_FILE) as outbox:
            readings = next(s.depth for s in outbox.stats() if s.name == "readings")
    if handled != len(messages) or refused:
        raise RuntimeError(f"{handled} of {len(messages)} messages handled, {refused} "
                           "duplicates or decode errors")
    return len(messages) / (end - start), readings


def bare_run(url: str, messages: list[Message], app: str) -> float:
    """Uplinks/s received by a bare subscriber from its pre-published session."""
    client_id = f"bench-bare-{uuid.uuid4().hex[:10]}"
    make_session(url, client_id, app)
    publish_all(url, messages)
    return BareSubscriber(url, client_id, len(messages)).run()


def parse_only(messages: list[Message], sensors: list[SimulatedSensor], fmt: Format) -> float:
    """Uplinks/s through ChirpStack event decoding and the profile's payload decoding."""
    profiles = {s.dev_eui: load_lora_profile(s.profile) for s in sensors}
    start = time.perf_counter()
    for topic, payload in messages:
        event = decode_event(topic, payload, fmt)
        profiles[event.dev_eui].decode(event.f_port or 0, event.data, event.object)
    return len(messages) / (time.perf_counter() - start)


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--uplinks", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--format", choices=["json", "protobuf"], nargs="+",
                        default=["json", "protobuf"])
    args = parser.parse_args()
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("the mosquitto binary is not installed (apt install mosquitto): nothing measured")
        return
    sensors = fleet(args.devices)
    print(f"LoRa ingest through Mosquitto: {args.uplinks:,} uplinks of {args.devices:,} "
          f"sensors per run, median of {args.runs} runs (spread min-max)")
    print(f"{'format':<9} {'path':<46} {'uplinks/s':>10} {'spread':>15}")
    for fmt in args.format:
        agent, bare, parsed, stored = [], [], [], []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                broker = private_broker(Path(tmp))
                try:
                    app = str(uuid.uuid4())
                    publisher = ChirpstackPublisher(broker.url, app, fmt)
                    messages = uplinks(publisher, sensors, args.uplinks, seed=run)
                    publisher.close()
                    bare.append(bare_run(broker.url, messages, app))
                    rate, readings = asyncio.run(agent_run(broker.url, messages, sensors, fmt,
                                                           app))
                finally:
                    broker.stop()
            agent.append(rate)
            stored.append(readings)
            parsed.append(parse_only(messages, sensors, fmt))
            print(f"  run {run + 1}: gateway {agent[-1]:,.0f}/s, bare {bare[-1]:,.0f}/s, "
                  f"parse only {parsed[-1]:,.0f}/s, {readings:,} readings stored")
        rows = [("gateway: broker -> outbox, committed + acked", agent),
                ("baseline: bare paho subscriber, auto-ack", bare),
                ("baseline: parse only (decode_event + profile)", parsed)]
        for label, values in rows:
            print(f"{fmt:<9} {label:<46} {statistics.median(values):>10,.0f} "
                  f"{spread(values):>15}")
        print(f"{fmt:<9} gateway / bare subscriber: "
              f"{statistics.median(agent) / statistics.median(bare):.2f}; readings stored per "
              f"run {', '.join(f'{n:,}' for n in stored)}; goal >= 5,000 uplinks/s "
              f"{'met' if statistics.median(agent) >= 5000 else 'NOT met'}")


if __name__ == "__main__":
    main()
