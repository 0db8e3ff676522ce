"""Sensor to action: a LoRa water-level uplink published → the relay command on the board.

A running gateway (edge_agent.runtime.Gateway) has a ``[[lora]]`` source on the local
Mosquitto with a fleet of 200 sensors, a Waveshare relay board on the Modbus TCP simulator,
and a ``[[rules]]`` rule on a Dragino LDDS75 under a bridge: distance to the water below
0.5 m raises the flood alarm and latches the road-barrier relay, above 0.6 m clears it and
releases the relay. The ChirpStack simulator publishes the sensor's uplinks (QoS 1, as
ChirpStack does), alternating 0.3 m and 1.0 m, so every uplink raises or clears.

Measured per uplink, one monotonic clock (one process): from just before the publish call to
the board decoding the relay command (the board's receive time, ``RelayCommand.at_ns``).
Baseline in the same run, same uplinks: from the same start to the uplink's readings handed
to the gateway's record buffer (an observer called from the source's on_batch callback):
the MQTT transit to the agent and its hand-over to the event loop, the part the broker sets.
p50, p99 and max per run; the figures are the medians of the runs.

Run: .venv/bin/python bench/bench_sensor_action.py [--runs 3] [--events 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.records import Reading
from edge_agent.runtime import Gateway
from simulators.lora.chirpstack import ChirpstackPublisher, SimulatedSensor
from simulators.lora.fleet import BROKER, NO_BROKER, fleet, lora_toml
from simulators.modbus import ModbusSimulator
from simulators.modbus.relay_board import SimulatedRelayBoard
from simulators.mqtt_broker import broker_answers

FLOOD = SimulatedSensor("flood-bridge", "a84041000181c061", "dragino-ldds75")
CHANNEL = 3


def extra_toml(endpoint: str) -> str:
    """The relay board and the flood rule."""
    return f"""
[[buses]]
name = "field"
tcp = "{endpoint}"

[[devices]]
name = "relays"
bus = "field"
profile = "waveshare-relay-8ch"
unit = 1
interval_s = 60

[[rules]]
name = "flood-road"
device = "{FLOOD.name}"
quantity = "distance"
kind = "below"
threshold = 0.5
clear_at = 0.6
severity = "critical"
on_raise = [{{type = "latch", board = "relays", channel = {CHANNEL}}}]
"""


async def one_run(events: int) -> tuple[list[float], list[float]]:
    """(publish → relay command, publish → readings in the buffer) in ms, per uplink."""
    board = SimulatedRelayBoard(1)
    app = str(uuid.uuid4())
    handed: list[int] = []
    async with ModbusSimulator([board]) as field:
        with tempfile.TemporaryDirectory() as tmp:
            config = lora_toml(Path(tmp), BROKER, app, "json", [FLOOD, *fleet(200)],
                               client_id=f"bench-action-{uuid.uuid4().hex[:8]}",
                               extra=extra_toml(field.endpoint))
            gateway = Gateway(load_config(config))

            def note(readings: list[Reading]) -> None:
                if any(r.device == FLOOD.name and r.quantity == "distance" for r in readings):
                    handed.append(time.monotonic_ns())

            gateway.buffer.observers.append(note)  # before the rules: they start later
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop))
            async with asyncio.timeout(20):
                while not (gateway.lora and gateway.lora[0].session.connected.is_set()):
                    await asyncio.sleep(0.02)
            await asyncio.sleep(1.0)  # subscribed; the boards' all-off done
            publisher = await asyncio.to_thread(ChirpstackPublisher, BROKER, app)

            def send(distance: float) -> int:
                sent = time.monotonic_ns()
                publisher.uplink(FLOOD, {"distance": distance, "temperature": 9.0})
                return sent

            to_relay: list[float] = []
            to_buffer: list[float] = []
            for n in range(events):
                before = len([c for c in board.commands if c.channel == CHANNEL])
                sent = await asyncio.to_thread(send, 0.3 if n % 2 == 0 else 1.0)
                async with asyncio.timeout(5):
                    while len(commands := [c for c in board.commands
                                           if c.channel == CHANNEL]) <= before:
                        await asyncio.sleep(0.0005)
                to_relay.append((commands[before].at_ns - sent) / 1e6)
                to_buffer.append((handed[-1] - sent) / 1e6)
                await asyncio.sleep(0.05)
            await asyncio.to_thread(publisher.close)
            stop.set()
            await task
    return to_relay, to_buffer


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=300, help="uplinks, raise and clear")
    args = parser.parse_args()
    if not broker_answers():
        print(NO_BROKER)
        return
    rows: dict[str, list[tuple[float, float, float]]] = {"relay": [], "buffer": []}
    for run in range(args.runs):
        to_relay, to_buffer = asyncio.run(one_run(args.events))
        for key, values in (("relay", to_relay), ("buffer", to_buffer)):
            rows[key].append((statistics.median(values), p99(values), max(values)))
        print(f"  run {run + 1}: publish -> relay p50 {rows['relay'][-1][0]:.2f} ms, p99 "
              f"{rows['relay'][-1][1]:.2f} ms | publish -> buffer p50 "
              f"{rows['buffer'][-1][0]:.2f} ms, p99 {rows['buffer'][-1][1]:.2f} ms")
    print(f"LoRa uplink -> relay command, {args.events} uplinks alternating raise and clear, "
          f"Mosquitto at {BROKER}, median of {args.runs} runs (spread of the runs)")
    labels = {"relay": "publish -> relay command decoded by the board",
              "buffer": "baseline: publish -> readings in the record buffer"}
    print(f"{'path':<50} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  p99 spread")
    for key, label in labels.items():
        p50s, p99s, maxes = zip(*rows[key], strict=True)
        print(f"{label:<50} {statistics.median(p50s):>8.2f} {statistics.median(p99s):>8.2f} "
              f"{statistics.median(maxes):>8.2f}  {min(p99s):.2f}-{max(p99s):.2f}")
    relay_p99 = statistics.median(r[1] for r in rows["relay"])
    print(f"goal p99 <= 50 ms: {'met' if relay_p99 <= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
