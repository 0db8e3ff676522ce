"""Durable append throughput of the outbox against raw sqlite3, in readings per second.

Each call appends one batch in one durable transaction: 2,000 readings is one poll cycle of
200 meters x 10 quantities, 10,000 is five such cycles flushed together. Baselines, measured
in the same run with the same pragmas (WAL, synchronous=FULL, incremental auto-vacuum):

- raw flat: ``executemany`` of (seq, device, quantity, ts_ms, value, quality) tuples into a
  plain rowid table, what a store written straight on sqlite3 would do;
- raw compact: ``executemany`` into the outbox's own layout (integer series id, WITHOUT ROWID
  keyed by (stream, seq)) with the series ids already known: the floor SQLite itself sets.

"Ponton at quota" is the outbox under a 4 MB quota that fills half-way through the run, so
the second half pays for eviction and gap events.

Both baselines build their tuples from the same ``Reading`` objects inside the timed loop.
Every run starts on a new file with one untimed warm-up batch; figures are medians.
Run: .venv/bin/python bench/bench_outbox.py [--runs 7] [--dir /path/on/the/target/disk]
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from itertools import repeat
from pathlib import Path

from edge_agent.records import Quality, Reading
from edge_agent.store import Outbox

METERS = 200
QUANTITIES = 10
TS = 1_795_564_800_000
#: Readings written per run for each batch size (not counting the warm-up batch).
READINGS_PER_RUN = 200_000
#: About half of what a run writes, so the second half of the run evicts.
QUOTA_BYTES = 4 * 1024 * 1024

_PRAGMAS = (
    "PRAGMA auto_vacuum = INCREMENTAL",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA wal_autocheckpoint = 1000",
    "PRAGMA journal_size_limit = 4194304",
)


def make_batches(batch_size: int, count: int) -> list[list[Reading]]:
    """``count`` batches of poll-cycle readings, a new timestamp every cycle of the bus."""
    batches = []
    for b in range(count):
        batch = []
        for i in range(batch_size):
            cycle, slot = divmod(b * batch_size + i, METERS * QUANTITIES)
            meter, quantity = divmod(slot, QUANTITIES)
            batch.append(
                Reading(
                    f"meter-{meter:03d}",
                    f"quantity-{quantity}",
                    TS + cycle * 1000,
                    230.0 + (i % 97) * 0.125,
                    Quality.GOOD if i % 50 else Quality.SUSPECT,
                )
            )
        batches.append(batch)
    return batches


def _raw_connection(path: Path, schema: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    conn.execute(schema)
    return conn


def run_outbox(path: Path, batches: list[list[Reading]], quota_bytes: int | None = None) -> float:
    """Seconds to append every batch but the first (warm-up) through ``Outbox``."""
    with Outbox.open(path, quota_bytes=quota_bytes) as outbox:
        outbox.append_readings(batches[0])
        start = time.perf_counter()
        for batch in batches[1:]:
            outbox.append_readings(batch)
        return time.perf_counter() - start


def run_outbox_at_quota(path: Path, batches: list[list[Reading]]) -> float:
    """As ``run_outbox`` under a quota that fills half-way through: the eviction path."""
    return run_outbox(path, batches, quota_bytes=QUOTA_BYTES)


def run_raw_flat(path: Path, batches: list[list[Reading]]) -> float:
    """Seconds for the same appends as plain rows with text device and quantity."""
    conn = _raw_connection(
        path,
        "CREATE TABLE readings (seq INTEGER PRIMARY KEY, device TEXT, quantity TEXT,"
        " ts_ms INTEGER, value REAL, quality INTEGER)",
    )
    sql = "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)"
    try:
        seq = 0

        def append(batch: list[Reading]) -> None:
            nonlocal seq
            rows = [
                (s, r.device, r.quantity, r.ts_ms, r.value, int(r.quality))
                for s, r in enumerate(batch, seq + 1)
            ]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
            seq += len(batch)

        return _timed(append, batches)
    finally:
        conn.close()


def run_raw_compact(path: Path, batches: list[list[Reading]]) -> float:
    """Seconds for the same appends into the outbox layout, series ids known in advance."""
    conn = _raw_connection(
        path,
        "CREATE TABLE readings (stream_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
        " series_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL, value REAL,"
        " quality INTEGER NOT NULL, PRIMARY KEY (stream_id, seq)) STRICT, WITHOUT ROWID",
    )
    sql = "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)"
    series = {(r.device, r.quantity): i for i, r in enumerate(batches[0][: METERS * QUANTITIES])}
    try:
        seq = 0

        def append(batch: list[Reading]) -> None:
            nonlocal seq
            rows = zip(
                repeat(3),
                range(seq + 1, seq + 1 + len(batch)),
                [series[(r.device, r.quantity)] for r in batch],
                [r.ts_ms for r in batch],
                [r.value for r in batch],
                [int(r.quality) for r in batch],
            )
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
            seq += len(batch)

        return _timed(append, batches)
    finally:
        conn.close()


def _timed(append: Callable[[list[Reading]], None], batches: list[list[Reading]]) -> float:
    append(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        append(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per variant (median taken)")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (tmp)")
    args = parser.parse_args()
    # The quota variant evicts on purpose; its warnings would bury the table.
    logging.getLogger("edge_agent.store").setLevel(logging.ERROR)
    variants = {
        "outbox": run_outbox,
        "raw flat": run_raw_flat,
        "raw compact": run_raw_compact,
        "at quota": run_outbox_at_quota,
    }
    print(f"durable appends, median of {args.runs} runs, {READINGS_PER_RUN:,} readings a run")
    header = (
        f"{'batch':>7} {'Ponton r/s':>12} {'raw flat r/s':>13} {'ratio':>6}"
        f" {'raw compact r/s':>16} {'ratio':>6} {'Ponton at quota':>16}"
        f" {'bytes/reading Ponton':>21} {'flat':>5}"
    )
    print(header)
    for batch_size in (2000, 10_000):
        batches = make_batches(batch_size, READINGS_PER_RUN // batch_size + 1)
        timed = READINGS_PER_RUN
        rates: dict[str, list[float]] = {name: [] for name in variants}
        sizes: dict[str, int] = {}
        for _ in range(args.runs):
            for name, run in variants.items():
                with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                    path = Path(tmp) / "bench.db"
                    rates[name].append(timed / run(path, batches))
                    sizes[name] = path.stat().st_size
        median = {name: statistics.median(values) for name, values in rates.items()}
        print(
            f"{batch_size:>7,} {median['outbox']:>12,.0f} {median['raw flat']:>13,.0f}"
            f" {median['outbox'] / median['raw flat']:>6.2f} {median['raw compact']:>16,.0f}"
            f" {median['outbox'] / median['raw compact']:>6.2f} {median['at quota']:>16,.0f}"
            f" {sizes['outbox'] / (timed + batch_size):>21.1f}"
            f" {sizes['raw flat'] / (timed + batch_size):>5.1f}"
        )


if __name__ == "__main__":
    main()
