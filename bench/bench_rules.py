"""Edge rules: what they cost per reading, and how fast a crossed threshold reaches a relay.

1. Engine cost. 100 rules (60 thresholds with hysteresis and durations, 20 rates over a
   15-minute window, 20 silences) over 200 simulated meters of 10 quantities each; every poll
   cycle is one batch of 2,000 readings, 100 of them watched, values wandering across the
   thresholds so alarms raise and clear. Measured: µs per reading through
   ``RecordBuffer.put_readings`` with the rules as an observer, against the same readings
   through a RecordBuffer without observers, in the same run; and the engine alone on
   readings that are all watched (the worst case: every reading evaluates a rule). Median
   of the runs.
2. Sensor to action. A running gateway polls a meter every 50 ms on the Modbus TCP
   simulator, whose voltage swings across a rule's threshold; the rule latches a relay of a
   simulated board on the same bus while raised. Measured: from the reading handed to the
   record buffer to the board decoding the relay command (monotonic clock, one process);
   p50 and p99. Baseline: the same command sent straight from a RelayBoard on an idle bus.

Run: .venv/bin/python bench/bench_rules.py [--runs 7] [--cycles 100] [--swings 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from edge_agent.buffer import RecordBuffer
from edge_agent.config import load_config
from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.drivers.modbus.relay import RelayBoard
from edge_agent.profiles import load_profile
from edge_agent.records import Reading
from edge_agent.rules.engine import RuleEngine
from edge_agent.rules.models import RuleConfig
from edge_agent.runtime import Gateway
from edge_agent.schema import validate
from simulators.modbus import ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard

QUANTITIES = ["voltage", "current", "active_power", "apparent_power", "reactive_power",
              "power_factor", "frequency", "active_energy_import", "water_level",
              "temperature"]
T0 = 1_796_292_000_000


def rules_100() -> list[RuleConfig]:
    """60 thresholds, 20 rates and 20 silences on 100 meters' water levels."""
    rules = []
    for index in range(100):
        base = {"name": f"r{index}", "device": f"m{index}", "quantity": "water_level"}
        if index < 60:
            rules.append(validate(RuleConfig,
                base | {"kind": "above" if index % 2 else "below", "threshold": 1.0,
                        "clear_at": 0.9 if index % 2 else 1.1, "for_s": 20 * (index % 3),
                        "on_raise": [{"type": "latch", "board": "relays", "channel": 1}]}))
        elif index < 80:
            rules.append(validate(RuleConfig,
                base | {"kind": "rate", "delta": 0.2, "window_s": 900}))
        else:
            rules.append(validate(RuleConfig,
                base | {"kind": "stale", "quantity": None, "after_s": 30}))
    return rules


def poll_cycles(cycles: int, *, watched_only: bool) -> list[list[Reading]]:
    """Batches of readings every 10 s; water levels wander across 1.0."""
    rng = random.Random(1)
    levels = [1.0] * 200
    batches = []
    for cycle in range(cycles):
        ts = T0 + cycle * 10_000
        batch = []
        for meter in range(100 if watched_only else 200):
            levels[meter] += rng.uniform(-0.05, 0.05)
            for quantity in (["water_level"] if watched_only else QUANTITIES):
                value = levels[meter] if quantity == "water_level" else rng.uniform(0, 400)
                batch.append(Reading(f"m{meter}", quantity, ts, value))
        batches.append(batch)
    return batches


def through_buffer(batches: list[list[Reading]], engine: RuleEngine | None) -> float:
    """µs per reading through put_readings (the writer's hand-over emptied each cycle)."""
    buffer = RecordBuffer()
    if engine is not None:
        def observe(readings: list[Reading]) -> None:
            engine.feed(readings)  # the transitions go to the executor in the gateway

        buffer.observers.append(observe)
    count = sum(len(batch) for batch in batches)
    start = time.perf_counter()
    for batch in batches:
        buffer.put_readings(batch)
        buffer.written_readings(len(batch))
        if engine is not None:
            engine.tick(batch[0].ts_ms)
    return (time.perf_counter() - start) / count * 1e6


def engine_alone(batches: list[list[Reading]], rules: list[RuleConfig]) -> float:
    engine = RuleEngine(rules, T0)
    count = sum(len(batch) for batch in batches)
    start = time.perf_counter()
    for batch in batches:
        engine.feed(batch)
    return (time.perf_counter() - start) / count * 1e6


def engine_cost(runs: int, cycles: int) -> None:
    rules = rules_100()
    mixed = poll_cycles(cycles, watched_only=False)
    watched = poll_cycles(cycles * 20, watched_only=True)
    bare, with_rules, alone = [], [], []
    for _ in range(runs):
        bare.append(through_buffer(mixed, None))
        with_rules.append(through_buffer(mixed, RuleEngine(rules, T0)))
        alone.append(engine_alone(watched, rules))
    count = sum(len(batch) for batch in mixed)
    transitions = sum(len(RuleEngine(rules, T0).feed(batch)) for batch in watched)
    print(f"engine cost, 100 rules, {count:,} readings of 200 meters (5 % watched), "
          f"median of {runs} runs:")
    print(f"  RecordBuffer.put_readings without rules: {statistics.median(bare):6.3f} µs/reading")
    print(f"  RecordBuffer.put_readings with rules:    {statistics.median(with_rules):6.3f} "
          f"µs/reading (+{statistics.median(with_rules) - statistics.median(bare):.3f})")
    print(f"  engine alone, every reading watched:     {statistics.median(alone):6.3f} "
          f"µs/reading ({sum(map(len, watched)):,} readings, about {transitions} raises "
          f"and clears per replay)")


async def sensor_to_action(swings: int) -> tuple[list[float], list[float]]:
    """Reading handed over → relay command decoded, in ms; and the bare command's."""
    board = SimulatedRelayBoard(1)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=1, update_interval=0)
    meter.set_value("voltage", 230)
    latencies: list[float] = []
    async with ModbusSimulator([board, meter]) as field:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "gateway.toml"
            config.write_text(f"""
[gateway]
id = "bench-rules"
data_dir = "data"

[[buses]]
name = "field"
tcp = "{field.endpoint}"

[[devices]]
name = "relays"
bus = "field"
profile = "waveshare-relay-8ch"
unit = 1
interval_s = 60

[[devices]]
name = "meter"
bus = "field"
profile = "eastron-sdm120"
unit = 2
interval_s = 0.05
quantities = ["voltage"]

[[rules]]
name = "overvoltage"
device = "meter"
quantity = "voltage"
kind = "above"
threshold = 250
clear_at = 245
on_raise = [{{type = "latch", board = "relays", channel = 3}}]
""", encoding="utf-8")
            gateway = Gateway(load_config(config))
            crossings: list[int] = []
            high = [False]

            def note(readings: list[Reading]) -> None:
                for reading in readings:
                    if reading.quantity == "voltage" and (reading.value > 250) != high[0]:
                        high[0] = not high[0]
                        crossings.append(time.monotonic_ns())

            gateway.buffer.observers.append(note)  # before the rules: they start later
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop))
            await asyncio.sleep(1.0)
            start = len(board.commands)
            for swing in range(swings):
                meter.set_value("voltage", 260 if swing % 2 == 0 else 230)
                await asyncio.sleep(0.25)
            stop.set()
            await task
            commands = [c for c in board.commands[start:] if c.channel == 3]
            latencies = [(c.at_ns - t) / 1e6 for c, t in zip(commands, crossings, strict=False)]
        bus = ModbusBus(ModbusLink(LinkSettings("bare", "tcp", field.endpoint)), [],
                        RecordBuffer())
        bus_task = asyncio.create_task(bus.run())
        bare_board = RelayBoard(bus, 1, name="bare")
        bare: list[float] = []
        for swing in range(swings):
            before, sent = len(board.commands), time.monotonic_ns()
            await bare_board.set(5, swing % 2 == 0)
            bare.append((board.commands[before].at_ns - sent) / 1e6)
        bus.stop()
        await bus_task
    return latencies, bare


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cycles", type=int, default=100, help="poll cycles of 2,000 readings")
    parser.add_argument("--swings", type=int, default=100, help="threshold crossings timed")
    args = parser.parse_args()
    engine_cost(args.runs, args.cycles)
    latencies, bare = asyncio.run(sensor_to_action(args.swings))
    print(f"sensor to action, {len(latencies)} crossings (reading handed over → relay command "
          f"decoded by the board):")
    print(f"  through the rules: p50 {percentile(latencies, 0.5):6.2f} ms, "
          f"p99 {percentile(latencies, 0.99):6.2f} ms, max {max(latencies):6.2f} ms")
    print(f"  bare RelayBoard.set on an idle bus: p50 {percentile(bare, 0.5):6.2f} ms, "
          f"p99 {percentile(bare, 0.99):6.2f} ms")


if __name__ == "__main__":
    main()
