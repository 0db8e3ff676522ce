"""Bytes on the wire per reading: the compact batch encoding against naive JSON rows.

A marina day at one reading a minute: 40 berth meters (voltage, current, active power,
imported energy), a three-phase feeder (its 80 quantities) and 3 water pulse counters
(4 inputs each). Values move as they do on a pontoon: voltage wanders around 230 V with
±0.3 V of noise per meter, an outlet draws power only while a boat is plugged in (and then
any load from 300 to 2,500 W, drawn again every minute), the feeder's values drift by about
0.2 % a minute, energy and pulse counters only grow.

Timestamps come in two versions of the same day, measured in the same run:

- before: per Modbus request, as the agent stamped them until 2026-12-04 (a response when it
  arrived): each minute one bus polls every meter in turn with the reads the planner makes,
  the readings of one read share its timestamp, and each read ends its line time at 9600 8N1
  (drivers/modbus/timing.py) plus a device turnaround of 10 to 20 ms after the previous one.
  The turnaround's jitter is an assumption, not a measurement;
- now: one timestamp per poll, its slot's (drivers/modbus/bus.py): the bus spreads its
  devices' slots evenly over the minute, each device keeps its grid, and a poll that starts
  within a second of its slot (they all do here: a poll takes well under the 1.4 s between
  two slots) stamps every reading with the slot's time.

The day is cut into sync batches (5,000 readings is the outbox's default, 20,000 for
comparison) and each batch is encoded (edge_agent/codecs/batch.py) and compressed with zstd and
with gzip (edge_agent/codecs/compression.py). Baseline, same readings, same run: one JSON
object per reading ({"device", "quantity", "ts_ms", "value", "quality"}), plain and gzip.
Sizes are exact; times are CPU time per reading, the median of several runs over the whole
day, encode + compress and decompress + decode.

Run: .venv/bin/python bench/bench_wire.py [--runs 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator

from edge_agent.codecs.batch import decode_readings, encode_readings
from edge_agent.codecs.compression import Encoding, compress, decompress
from edge_agent.drivers.modbus.cost import serial_cost
from edge_agent.drivers.modbus.planner import plan_reads
from edge_agent.drivers.modbus.timing import read_transaction_s
from edge_agent.profiles import load_profile
from edge_agent.records import Reading

DAY_START_MS = 1_764_028_800_000  # 2025-11-25 00:00 UTC
MINUTES = 24 * 60
BATCHES = (5_000, 10_000, 20_000)
#: The agent's batch size by default ([sync] batch_size).
DEFAULT_BATCH = 10_000
BAUD = 9600
TURNAROUND_MS = (10.0, 20.0)
BERTH_QUANTITIES = ("voltage", "current", "active_power", "active_energy_import")
LIMIT = 64 * 2**20

#: One Modbus read of a poll: the quantities it serves and its line time in ms.
Read = tuple[tuple[str, ...], float]
#: One device's poll in a minute: its name, its reads and the value of each quantity.
Poll = tuple[str, list[Read], dict[str, float]]


def poll_plan(profile_id: str, quantities: tuple[str, ...] | None = None) -> list[Read]:
    """The reads the planner makes for one poll of a device, in the order it sends them."""
    profile = load_profile(profile_id)
    points = [point for name, point in profile.points.items()
              if quantities is None or name in quantities]
    return [(tuple(point.quantity for point in request.points),
             read_transaction_s(request.count, BAUD) * 1000)
            for request in plan_reads(points, profile.limits, serial_cost(
                BAUD, min_silence_s=profile.limits.min_silence_ms / 1000.0))]


def marina_day(seed: int = 7, *, per_request: bool = True) -> list[Reading]:
    """One reading a minute for every quantity of the pontoon's meters, in poll order.

    Both versions hold the same values in the same order (each device's in the order of its
    reads); ``per_request`` only changes the timestamps.
    """
    rng = random.Random(seed)
    line = random.Random(seed + 1)
    plans = {"berth": poll_plan("eastron-sdm120", BERTH_QUANTITIES),
             "feeder": poll_plan("eastron-sdm630"), "water": poll_plan("isma-sfar-4di")}
    feeder_quantities = list(load_profile("eastron-sdm630").points)
    feeder = [rng.uniform(1, 400) for _ in feeder_quantities]
    energy = [rng.uniform(100, 5000) for _ in range(40)]
    pulses = [[rng.randint(0, 10**6) for _ in range(4)] for _ in range(3)]
    plugged = [rng.random() < 0.5 for _ in range(40)]
    voltage = 230.0
    readings: list[Reading] = []
    for minute in range(MINUTES):
        polls: list[Poll] = []
        voltage += rng.gauss(0, 0.2) - (voltage - 230.0) * 0.05
        for berth in range(40):
            if rng.random() < 0.01:
                plugged[berth] = not plugged[berth]
            power = rng.uniform(300, 2500) if plugged[berth] else 0.0
            energy[berth] += power / 60_000
            polls.append((f"berth-a{berth + 1}", plans["berth"], {
                "voltage": voltage + rng.gauss(0, 0.3), "current": power / voltage,
                "active_power": power, "active_energy_import": energy[berth]}))
        for index in range(len(feeder_quantities)):
            feeder[index] += rng.gauss(0, feeder[index] * 0.002)
        polls.append(("feeder", plans["feeder"],
                      dict(zip(feeder_quantities, feeder, strict=True))))
        for counter in range(3):
            for channel in range(4):
                pulses[counter][channel] += rng.choice((0, 0, 0, 1, 2))
            polls.append((f"water-{counter + 1}", plans["water"], {
                f"pulse_count_{channel + 1}": float(pulses[counter][channel])
                for channel in range(4)}))
        minute_ms = DAY_START_MS + minute * 60_000
        readings += stamp(minute_ms, polls, line) if per_request else stamp_slots(minute_ms,
                                                                                  polls)
    return readings


def stamp_slots(minute_ms: int, polls: list[Poll]) -> list[Reading]:
    """A minute's polls on one bus, each stamped with its slot, spread over the minute."""
    readings = []
    for index, (device, reads, values) in enumerate(polls):
        slot = minute_ms + round(60_000 * index / len(polls))
        readings += [Reading(device, quantity, slot, values[quantity])
                     for quantities, _ in reads for quantity in quantities]
    return readings


def stamp(minute_ms: int, polls: list[Poll], line: random.Random) -> list[Reading]:
    """A minute's polls on one bus, each read stamped when its answer arrives."""
    clock = minute_ms + line.uniform(0, 2)  # the poll timer fires a little late
    readings = []
    for device, reads, values in polls:
        for quantities, line_ms in reads:
            clock += line_ms + line.uniform(*TURNAROUND_MS)
            readings += [Reading(device, quantity, int(clock), values[quantity])
                         for quantity in quantities]
    return readings


def batches(readings: list[Reading], size: int) -> Iterator[tuple[int, list[Reading]]]:
    for start in range(0, len(readings), size):
        yield start + 1, readings[start : start + size]


def naive_json(chunk: list[Reading]) -> bytes:
    rows = [{"device": r.device, "quantity": r.quantity, "ts_ms": r.ts_ms, "value": r.value,
             "quality": int(r.quality)} for r in chunk]
    return json.dumps(rows).encode()


def per_reading_s(work: Callable[[], object], count: int, runs: int) -> float:
    """Median over ``runs`` of the CPU time ``work`` takes, per reading.

    CPU time, not wall time: the work is pure Python in one thread, and other processes on a
    shared machine then change the figure much less.
    """
    times = []
    for _ in range(runs):
        started = time.process_time()
        work()
        times.append((time.process_time() - started) / count)
    return statistics.median(times)


def compact(chunks: list[tuple[int, list[Reading]]], encoding: Encoding, runs: int
            ) -> tuple[int, float, float]:
    """Bytes of the compact batches, encode and decode seconds per reading."""
    wire = [compress(encode_readings(seq, chunk), encoding) for seq, chunk in chunks]
    for body, (_, chunk) in zip(wire, chunks, strict=True):
        assert len(decode_readings(decompress(body, encoding, max_bytes=LIMIT))[1]) == len(chunk)
    count = sum(len(chunk) for _, chunk in chunks)
    encode = per_reading_s(
        lambda: [compress(encode_readings(seq, chunk), encoding) for seq, chunk in chunks],
        count, runs)
    decode = per_reading_s(
        lambda: [decode_readings(decompress(body, encoding, max_bytes=LIMIT)) for body in wire],
        count, runs)
    return sum(map(len, wire)), encode, decode


def report(title: str, readings: list[Reading], runs: int) -> float:
    """Print the table of one version of the day; its B/reading at the default batch, zstd."""
    count = len(readings)
    series = len({(r.device, r.quantity) for r in readings})
    print(f"{title}: {count:,} readings of {series} series")
    default = float("nan")
    print(f"{'batch':>6}  {'encoding':<24} {'B/reading':>9} {'day total':>11} {'vs JSON':>8}"
          f" {'encode us/r':>11} {'decode us/r':>11}")
    for size in BATCHES:
        chunks = list(batches(readings, size))
        naive = [naive_json(chunk) for _, chunk in chunks]
        naive_bytes = sum(map(len, naive))
        rows = [("naive JSON rows", naive_bytes, ""),
                ("naive JSON rows, gzip",
                 sum(len(gzip.compress(body, compresslevel=6)) for body in naive), "")]
        for encoding in ("zstd", "gzip"):
            wire_bytes, encode, decode = compact(chunks, encoding, runs)
            rows.append((f"Ponton compact, {encoding}", wire_bytes,
                         f"{encode * 1e6:>11.2f} {decode * 1e6:>11.2f}"))
        for label, total, times in rows:
            print(f"{size:>6,}  {label:<24} {total / count:>9.3f} {total / 1024:>7.0f} KiB"
                  f" {naive_bytes / total:>7.0f}x {times}")
            if size == DEFAULT_BATCH and label == "Ponton compact, zstd":
                default = total / count
    print()
    return default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="timing runs (median)")
    args = parser.parse_args()
    before = report("before: marina day, timestamps per Modbus request", marina_day(),
                    args.runs)
    now = report("now: same day, one timestamp per poll at its slot",
                 marina_day(per_request=False), args.runs)
    verdict = "met" if now <= 1.0 else "MISSED"
    print(f"default settings (batch {DEFAULT_BATCH:,}, zstd): {before:.3f} B/reading before, "
          f"{now:.3f} now ({now / before:.0%}); goal <= 1 B/reading {verdict}")


if __name__ == "__main__":
    main()
