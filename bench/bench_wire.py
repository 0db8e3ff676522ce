"""Bytes on the wire per reading: the compact batch encoding against naive JSON rows.

A realistic marina day at one reading a minute: 40 berth meters (voltage, current, active
power, imported energy), a three-phase feeder (its 80 quantities) and 3 water pulse counters
(4 inputs each). Values move as they do on a pontoon: voltage wanders around 230 V, an outlet
draws power only while a boat is plugged in (and then varies), the feeder's values drift by
about 0.2 % a minute, energy and pulse counters only grow. The day is
cut into sync batches of 5,000 readings, as the outbox hands them out, and each batch is
encoded (edge_agent/codecs/batch.py). Baseline, same readings, same run: one JSON object per
reading ({"device", "quantity", "ts_ms", "value", "quality"}), plain and gzip-compressed.

Run: .venv/bin/python bench/bench_wire.py
"""

from __future__ import annotations

import gzip
import json
import random
import statistics
import time
from collections.abc import Iterator

from edge_agent.codecs.batch import decode_readings, encode_readings
from edge_agent.codecs.compression import compress, decompress
from edge_agent.profiles import load_profile
from edge_agent.records import Reading

DAY_START_MS = 1_764_028_800_000  # 2025-11-25 00:00 UTC
MINUTES = 24 * 60
BATCH = 5_000


def marina_day(seed: int = 7) -> list[Reading]:
    """One reading a minute for every quantity of the pontoon's meters, in poll order."""
    rng = random.Random(seed)
    feeder_quantities = list(load_profile("eastron-sdm630").points)
    feeder = [rng.uniform(1, 400) for _ in feeder_quantities]
    energy = [rng.uniform(100, 5000) for _ in range(40)]
    pulses = [[rng.randint(0, 10**6) for _ in range(4)] for _ in range(3)]
    plugged = [rng.random() < 0.5 for _ in range(40)]
    voltage = 230.0
    readings: list[Reading] = []
    for minute in range(MINUTES):
        ts = DAY_START_MS + minute * 60_000
        voltage += rng.gauss(0, 0.2) - (voltage - 230.0) * 0.05
        for berth in range(40):
            if rng.random() < 0.01:
                plugged[berth] = not plugged[berth]
            power = rng.uniform(300, 2500) if plugged[berth] else 0.0
            energy[berth] += power / 60_000
            name = f"berth-a{berth + 1}"
            readings += [
                Reading(name, "voltage", ts, voltage + rng.gauss(0, 0.3)),
                Reading(name, "current", ts, power / voltage),
                Reading(name, "active_power", ts, power),
                Reading(name, "active_energy_import", ts, energy[berth]),
            ]
        for index, quantity in enumerate(feeder_quantities):
            feeder[index] += rng.gauss(0, feeder[index] * 0.002)
            readings.append(Reading("feeder", quantity, ts, feeder[index]))
        for counter in range(3):
            for channel in range(4):
                pulses[counter][channel] += rng.choice((0, 0, 0, 1, 2))
                readings.append(Reading(f"water-{counter + 1}", f"pulse_count_{channel + 1}", ts,
                                        float(pulses[counter][channel])))
    return readings


def batches(readings: list[Reading]) -> Iterator[tuple[int, list[Reading]]]:
    for start in range(0, len(readings), BATCH):
        yield start + 1, readings[start : start + BATCH]


def naive_json(chunk: list[Reading]) -> bytes:
    rows = [{"device": r.device, "quantity": r.quantity, "ts_ms": r.ts_ms, "value": r.value,
             "quality": int(r.quality)} for r in chunk]
    return json.dumps(rows).encode()


def main() -> None:
    readings = marina_day()
    compact = naive = naive_gzip = 0
    encode_times: list[float] = []
    for first_seq, chunk in batches(readings):
        started = time.perf_counter()
        encoded = compress(encode_readings(first_seq, chunk), "zstd")
        encode_times.append((time.perf_counter() - started) / len(chunk))
        decoded = decompress(encoded, "zstd", max_bytes=64 * 2**20)
        assert len(decode_readings(decoded)[1]) == len(chunk)
        compact += len(encoded)
        plain = naive_json(chunk)
        naive += len(plain)
        naive_gzip += len(gzip.compress(plain, compresslevel=6))
    count = len(readings)
    print(f"marina day: {count:,} readings in {-(-count // BATCH)} batches of {BATCH:,}")
    print(f"{'encoding':<30} {'bytes/reading':>14} {'day total':>12}")
    for label, size in (("naive JSON rows", naive), ("naive JSON rows, gzip", naive_gzip),
                        ("Ponton compact batch (zstd)", compact)):
        print(f"{label:<30} {size / count:>14.3f} {size / 1024:>10.0f} KiB")
    print(f"compact vs naive JSON: {naive / compact:.0f}x smaller; encoding "
          f"{statistics.median(encode_times) * 1e6:.2f} us/reading (median over batches)")


if __name__ == "__main__":
    main()
