"""CPU the hub spends checking pushed records (sync_server/record_checks.py) per record.

Every record a gateway pushes is checked against what the hub's readers need before it is
stored. Baseline, same records, same run: decoding the batch (edge_agent/codecs/batch.py),
which the hub does for every push anyway. Two batches, as gateways send them: 5,000 readings
of 200 meters (the outbox's default batch), and 1,000 ``access.granted`` events with the
attributes the access engine writes. Times are the median of several runs, per record.

Run: .venv/bin/python bench/bench_record_checks.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from edge_agent.codecs.batch import decode_events, decode_readings, encode_events, encode_readings
from edge_agent.records import Event, Reading
from sync_server.record_checks import first_problem, ingest_window

T0 = 1_764_000_000_000


def _median_us(action: Callable[[], object], count: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) / count * 1e6


def _report(name: str, document: bytes, decode: Callable[[bytes], tuple[int, Sequence[Reading]]
                                                        | tuple[int, Sequence[Event]]],
            runs: int) -> None:
    records = decode(document)[1]
    window = ingest_window(T0 + 86_400_000)
    assert first_problem(records, window) is None
    decoding = _median_us(lambda: decode(document), len(records), runs)
    checking = _median_us(lambda: first_problem(records, window), len(records), runs)
    print(f"{name:<34} decode {decoding:6.2f} µs/record   check {checking:6.2f} µs/record "
          f"({checking / decoding:.0%} of decoding)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    readings = [Reading(f"berth-{i % 200}", ("voltage", "current", "active_power")[i % 3],
                        T0 + i // 200 * 60_000, 230.0 + i % 7 / 10) for i in range(5000)]
    _report("5,000 readings, 200 meters", encode_readings(1, readings), decode_readings, runs)
    grants = [Event("access.granted", f"gate-{i % 4}", T0 + i * 1000, {
        "reason": "granted", "policy_version": 12, "badge": f"{i * 7919:032x}",
        "category": "resident", "service": "pool"}) for i in range(1000)]
    _report("1,000 access.granted events", encode_events(1, grants), decode_events, runs)


if __name__ == "__main__":
    main()
