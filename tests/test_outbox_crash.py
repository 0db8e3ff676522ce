"""Kill -9 a writing process at random moments: nothing acknowledged is lost, nothing corrupt.

A writer subprocess (tests/helpers/outbox_writer.py) appends and acks in a loop and prints
each seq right after the call returned. The test SIGKILLs it after a random delay, reopens
the same file and checks it against what the writer acknowledged. A SIGKILL leaves the OS
page cache intact, so this proves the transaction logic, not the disk's honesty about fsync.

PONTON_CRASH_ITERATIONS sets the number of kills (default 25); PONTON_CRASH_SEED replays a run.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.store import Outbox
from tests.helpers.outbox_writer import event_for, reading_for

WRITER = Path(__file__).parent / "helpers" / "outbox_writer.py"
ITERATIONS = int(os.environ.get("PONTON_CRASH_ITERATIONS", "25"))

pytestmark = pytest.mark.slow


@dataclass
class Acknowledged:
    """The highest seqs the writer reported as returned, over all runs so far."""

    readings: int = 0
    events: int = 0
    acked: int = 0


def _run_and_kill(path: Path, seed: int, delay_s: float) -> list[str]:
    """Start a writer, let it write for ``delay_s`` once ready, SIGKILL it; return its lines."""
    with subprocess.Popen(
        [sys.executable, str(WRITER), str(path), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            ready = proc.stdout.readline()
            if ready != "ready\n":
                proc.kill()  # a writer that hangs would hold stderr open for ever
                pytest.fail(f"writer did not start: {ready!r} {proc.stderr.read()}")
            time.sleep(delay_s)
        finally:
            proc.kill()
        # Through the reader that took "ready": it may already hold acknowledged lines.
        out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, f"writer stopped on its own: {err}"
    # A line cut by the kill was never complete: it does not count as acknowledged.
    return [line for line in out.splitlines(keepends=True) if line.endswith("\n")]


def _absorb(lines: list[str], seen: Acknowledged) -> None:
    for line in lines:
        tag, value = line.split()
        if tag == "R":
            seen.readings = int(value)
        elif tag == "E":
            seen.events = int(value)
        else:
            seen.acked = max(seen.acked, int(value))


def _check(path: Path, seen: Acknowledged) -> None:
    """The file is sound and holds exactly what the writer acknowledged, nothing else."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    with Outbox.open(path) as outbox:
        stats = {stat.name: stat for stat in outbox.stats()}
        readings, events = stats["readings"], stats["events"]
        # A kill between commit and print may leave one more batch than reported, never less.
        assert readings.last_seq >= seen.readings
        assert events.last_seq >= seen.events
        assert readings.acked_seq >= seen.acked
        assert readings.evicted_total == events.evicted_total == 0

        batch = outbox.next_batch(stream="readings", limit=10**7)
        seqs = [seq for seq, _ in batch.records] if batch else []
        assert seqs == list(range(readings.acked_seq + 1, readings.last_seq + 1))
        assert batch is None or all(record == reading_for(seq) for seq, record in batch.records)

        batch = outbox.next_batch(stream="events", limit=10**7)
        assert batch is not None or events.last_seq == 0
        seqs = [seq for seq, _ in batch.records] if batch else []
        assert seqs == list(range(1, events.last_seq + 1))
        assert batch is None or all(record == event_for(seq) for seq, record in batch.records)
    seen.readings, seen.events, seen.acked = (
        readings.last_seq,
        events.last_seq,
        readings.acked_seq,
    )


def test_sigkill_never_loses_acknowledged_records(tmp_path: Path) -> None:
    seed = int(os.environ.get("PONTON_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    path = tmp_path / "outbox.db"
    seen = Acknowledged()
    for iteration in range(ITERATIONS):
        lines = _run_and_kill(path, rng.randrange(2**32), rng.uniform(0.05, 0.5))
        _absorb(lines, seen)
        try:
            _check(path, seen)
        except AssertionError as exc:
            raise AssertionError(
                f"after kill {iteration + 1} (PONTON_CRASH_SEED={seed}): {exc}"
            ) from exc
    assert seen.readings > 0, "the writer never got to write: the kills came too early"
