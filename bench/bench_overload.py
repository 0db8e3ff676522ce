"""Overload: 200 SDM630s polled faster than the agent can take, before and after backpressure.

Each run starts the simulators in a separate process (``python -m simulators.modbus``, 200
SDM630 meters, one TCP port each, not measured), then an agent as a real process on a gateway
file with one bus and one device per meter (80 values a poll), every ``--periods`` seconds,
no device silence. Two agents, measured in the same run on the same simulators' code:

- before: the agent at ``--baseline-ref`` (default 827a86a, the last commit before graceful
  overload), exported with ``git archive`` into a temporary directory and run from there;
- now: this checkout's agent.

After a warm-up (``--warmup``) the agent is measured over a window (``--window``):

- delivered: growth of the outbox's readings stream per second (values/s);
- dropped: readings the memory buffer dropped in the window (its ``gap`` events' counts);
- log lines/s written in the window (the agent logs at INFO, its default), and events/s:
  ``gap`` and ``poll.late`` (what overload reports), other events (devices going offline
  and online when a starved simulator answers late);
- CPU of the agent in % of one core; late slots from ``status.json`` (the new agent only).

Goal (issue 13): past the knee, delivered stays at 90 % or more of the knee's, nothing is
dropped, log lines and events stay at one a second at most. The knee is taken as the best
delivered rate of each agent over the periods measured. Figures are medians of ``--runs``.

Run (from the repository's root, as a module: it shares bench_footprint's helpers):
     .venv/bin/python -m bench.bench_overload [--runs 2] [--warmup 10] [--window 20]
     [--periods 0.25 0.1] [--devices 200] [--baseline-ref 827a86a]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import psutil

from bench.bench_footprint import (
    _raise_on_sigterm,
    check_running,
    cpu_seconds,
    start_simulators,
    started,
    stop,
    stored_readings,
)
from edge_agent.records import Event, now_ms
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE
from edge_agent.store import Outbox

PROFILE = "eastron-sdm630"
VALUES = 80
ROOT = Path(__file__).resolve().parent.parent
LAUNCH = "import sys; from edge_agent.launcher import main; sys.argv[0] = 'edge-agent'; main()"
#: The memory buffer's drop reason, in the old agent and the new one.
BUFFER_GAP = "outbox not writable, memory buffer full"
STARTUP_LIMIT_S = 60.0
#: Events that report overload: dropped readings, late polls.
OVERLOAD_EVENTS = ("gap", "poll.late")


@dataclass(frozen=True, slots=True)
class Result:
    """One agent over one window."""

    delivered: float
    dropped: int
    log_lines_per_s: float
    events_per_s: float
    other_events_per_s: float
    cpu_percent: float
    late: int | None


def export(ref: str, directory: Path) -> Path:
    """The agent's packages at ``ref``, written under ``directory``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref,
                              "edge_agent", "device_profiles"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def write_gateway(directory: Path, endpoints: list[str], period_s: float) -> Path:
    """One TCP bus and one SDM630 per endpoint, every ``period_s``, no silence."""
    lines = ['[gateway]', 'id = "bench-overload"', f'data_dir = "{directory / "data"}"', '']
    for index, endpoint in enumerate(endpoints):
        lines += ['[[buses]]', f'name = "lan-{index:03d}"', f'tcp = "{endpoint}"', '',
                  '[[devices]]', f'name = "meter-{index:03d}"', f'bus = "lan-{index:03d}"',
                  f'profile = "{PROFILE}"', 'unit = 1', f'interval_s = {period_s}',
                  'min_silence_ms = 0', '']
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def line_count(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)


def events_in(outbox: Path, start_ms: int, end_ms: int) -> list[Event]:
    """The events the agent wrote between ``start_ms`` and ``end_ms``."""
    with Outbox.open(outbox) as box:
        batch = box.next_batch(stream="events", limit=10_000_000)
        records = [record for _seq, record in batch.records] if batch else []
    return [r for r in records if isinstance(r, Event) and start_ms <= r.ts_ms <= end_ms]


def run_agent(code: Path | None, endpoints: list[str], period_s: float, warmup_s: float,
              window_s: float) -> Result:
    """One agent (``code``: an exported tree, None for this checkout) over one window."""
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        directory = Path(tmp)
        agent_log = directory / "agent.log"
        env = {"PYTHONPATH": str(code)} if code is not None else {}
        config = write_gateway(directory, endpoints, period_s)
        with agent_log.open("w", encoding="utf-8") as log, started(
            # -P: the current directory must not shadow the exported tree.
            ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-P", "-c", LAUNCH,
             "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
        ) as agent:
            data = directory / "data"
            deadline = time.monotonic() + STARTUP_LIMIT_S
            while not (data / OUTBOX_FILE).exists():  # the warm-up counts from the start
                check_running(agent, agent_log)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the agent did not start: {agent_log.read_text()}")
                time.sleep(0.2)
            time.sleep(warmup_s)
            check_running(agent, agent_log)
            process = psutil.Process(agent.pid)  # env execs the interpreter in place
            depth, lines, cpu = stored_readings(data), line_count(agent_log), \
                cpu_seconds(process)
            start_ms, wall = now_ms(), time.monotonic()
            time.sleep(window_s)
            check_running(agent, agent_log)
            elapsed = time.monotonic() - wall
            delivered = (stored_readings(data) - depth) / elapsed
            log_lines = (line_count(agent_log) - lines) / elapsed
            cpu_percent = 100.0 * (cpu_seconds(process) - cpu) / elapsed
            end_ms = now_ms()
            stop(agent, timeout_s=60)
        events = events_in(data / OUTBOX_FILE, start_ms, end_ms)
        dropped = sum(e.attrs.get("count", 0) for e in events
                      if e.kind == "gap" and e.attrs.get("reason") == BUFFER_GAP)
        late = None
        if code is None:
            status = json.loads((data / STATUS_FILE).read_text(encoding="utf-8"))
            late = sum(d.get("late", 0) for d in status["devices"])
        overload = sum(1 for e in events if e.kind in OVERLOAD_EVENTS)
        return Result(delivered, dropped, log_lines, overload / elapsed,
                      (len(events) - overload) / elapsed, cpu_percent, late)


@contextlib.contextmanager
def simulators(devices: int, directory: Path) -> Iterator[list[str]]:
    with start_simulators(PROFILE, devices, directory / "simulators.log") as endpoints:
        yield endpoints


def median(results: list[Result]) -> Result:
    lates = [r.late for r in results if r.late is not None]
    return Result(statistics.median(r.delivered for r in results),
                  int(statistics.median(r.dropped for r in results)),
                  statistics.median(r.log_lines_per_s for r in results),
                  statistics.median(r.events_per_s for r in results),
                  statistics.median(r.other_events_per_s for r in results),
                  statistics.median(r.cpu_percent for r in results),
                  int(statistics.median(lates)) if lates else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2, help="runs per agent and period")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--periods", type=float, nargs="+", default=[0.25, 0.1],
                        help="poll periods in seconds")
    parser.add_argument("--devices", type=int, default=200, help="simulated SDM630 meters")
    parser.add_argument("--baseline-ref", default="827a86a",
                        help="git commit of the agent measured as 'before'")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"{args.devices} x {PROFILE} over Modbus TCP, {VALUES} values a poll; warm-up "
          f"{args.warmup:g} s, window {args.window:g} s, median of {args.runs} runs")
    print(f"{'agent':<7} {'period':>6} {'asked/s':>8} {'delivered/s':>11} {'% knee':>6} "
          f"{'dropped':>9} {'logs/s':>6} {'gap+late/s':>10} {'other/s':>7} {'CPU %':>6} "
          f"{'late':>8}")
    with tempfile.TemporaryDirectory(prefix="bench-overload-base-") as tmp:
        agents = {"before": export(args.baseline_ref, Path(tmp)), "now": None}
        table: dict[tuple[str, float], Result] = {}
        for period in args.periods:
            runs: dict[str, list[Result]] = {name: [] for name in agents}
            for _ in range(args.runs):
                with simulators(args.devices, Path(tmp)) as endpoints:
                    for name, code in agents.items():
                        runs[name].append(run_agent(code, endpoints, period, args.warmup,
                                                    args.window))
            for name in agents:
                table[name, period] = median(runs[name])
    for name in agents:
        knee = max(table[name, period].delivered for period in args.periods)
        for period in args.periods:
            r = table[name, period]
            late = "-" if r.late is None else f"{r.late:,}"
            print(f"{name:<7} {period:>6g} {args.devices * VALUES / period:>8,.0f} "
                  f"{r.delivered:>11,.0f} {100 * r.delivered / knee:>5.0f}% {r.dropped:>9,} "
                  f"{r.log_lines_per_s:>6.1f} {r.events_per_s:>10.1f} "
                  f"{r.other_events_per_s:>7.1f} {r.cpu_percent:>6.1f} "
                  f"{late:>8}")
    print("% knee: delivered against the agent's best delivered rate over the periods")


if __name__ == "__main__":
    main()
