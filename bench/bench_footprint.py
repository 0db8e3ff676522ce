"""Footprint of the agent polling 200 simulated meters over Modbus TCP: RSS and CPU.

Each run starts the simulators in a separate process (not measured): one meter per TCP port,
as with real Ethernet meters, then the agent as a real process (``edge-agent run``) on a
gateway file with one bus and one device per meter, each polled every 10 s. After a warm-up
(every device polled, the outbox growing) the agent is sampled with psutil every second for
a measurement window:

- RSS, the largest sample and the last one, in MiB;
- CPU in per cent of one core: (user + system) CPU time over the window / its wall time;
- readings/s stored: growth of the outbox's readings stream (``read_stats``) over the window;
- failed polls out of all polls since the start, from the agent's ``status.json``.

Baseline, sampled over the same window: an idle interpreter that only imports the agent's
modules (``edge_agent.launcher``, ``edge_agent.daemon``: what ``edge-agent run`` loads), so
the gap between the two is what the connections, the configuration and the polling cost.
Every run starts from new processes and a new outbox; the figures are medians over the runs.
Goals: RSS at most 50 MiB, CPU at most 5 % of one core.

``--lora N`` adds the field reach: N LoRaWAN sensors through a simulated ChirpStack (each
sending every 10 min, spread evenly; on Mosquitto at 127.0.0.1:1883 where it runs, else on an
embedded broker in the field's process) and a Linky on a TIC line (bench/field_lora_tic.py),
all read by the same agent. Goals then: RSS at most 60 MiB, CPU at most 5 %.

Run: .venv/bin/python bench/bench_footprint.py [--runs 3] [--warmup 20] [--window 60]
     [--devices 200] [--profile eastron-sdm120 [eastron-sdm630]] [--lora 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import psutil

from edge_agent.drivers.modbus.planner import plan_reads
from edge_agent.profiles import load_profile
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE
from edge_agent.store import read_stats
from simulators.lora.fleet import fleet
from simulators.mqtt_broker import broker_answers

INTERVAL_S = 10
SAMPLE_PERIOD_S = 1.0
GOAL_RSS_MIB = 50.0
GOAL_RSS_FIELD_REACH_MIB = 60.0
#: Each LoRa sensor's uplink period, as a territory's sensors commonly send.
LORA_PERIOD_S = 600.0
APPLICATION = "bench-footprint"
GOAL_CPU_PERCENT = 5.0
MIB = 2**20
BASELINE_CODE = "import edge_agent.launcher, edge_agent.daemon; import time; time.sleep(86400)"


@dataclass(frozen=True, slots=True)
class Footprint:
    """What one process cost over a measurement window."""

    rss_max_mib: float
    rss_final_mib: float
    cpu_percent: float


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run: the agent, the idle baseline beside it, and what the agent stored."""

    agent: Footprint
    baseline: Footprint
    readings_per_s: float
    polls: int
    failed_polls: int


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so the processes this script started are stopped."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def started(args: list[str], stdout: int | IO[str] | None = None,
            stderr: int | IO[str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A child process that is stopped (SIGTERM, then SIGKILL) however the block ends."""
    process = subprocess.Popen(args, stdout=stdout, stderr=stderr, text=True)
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[str], timeout_s: float = 20.0) -> int:
    """SIGTERM, wait, SIGKILL if it does not exit; its exit status."""
    process.terminate()
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@contextlib.contextmanager
def start_simulators(profile: str, devices: int, log: Path) -> Iterator[list[str]]:
    """Serve ``devices`` meters, one per TCP port; yields their ``host:port`` endpoints."""
    with log.open("w", encoding="utf-8") as stderr, started(
        [sys.executable, "-m", "simulators.modbus", "--profile", profile, "--tcp", "0",
         "--devices", str(devices), "--baud", "9600"],
        stdout=subprocess.PIPE, stderr=stderr,
    ) as simulator:
        assert simulator.stdout is not None
        ready = simulator.stdout.readline().split()
        if ready[:2] != ["READY", "tcp"] or len(ready) != 2 + devices:
            raise RuntimeError(f"simulators did not start: {ready[:3]} {log.read_text()}")
        yield ready[2:]


@contextlib.contextmanager
def start_field_reach(sensors: int, log: Path) -> Iterator[tuple[str, str]]:
    """LoRa sensors and a Linky (bench/field_lora_tic.py); yields (broker URL, Linky's pty)."""
    broker = "mqtt://127.0.0.1:1883" if broker_answers() else "embedded"
    script = Path(__file__).with_name("field_lora_tic.py")
    with log.open("w", encoding="utf-8") as stderr, started(
        [sys.executable, str(script), broker, APPLICATION, str(sensors), str(LORA_PERIOD_S)],
        stdout=subprocess.PIPE, stderr=stderr,
    ) as field:
        assert field.stdout is not None
        ready = field.stdout.readline().split()
        if len(ready) != 3 or ready[0] != "READY":
            raise RuntimeError(f"the LoRa/TIC field did not start: {log.read_text()}")
        yield ready[1], ready[2]


def field_reach_sections(sensors: int, broker: str, linky: str) -> list[str]:
    """The ``[[lora]]`` and ``[[tic]]`` sections of the field reach."""
    lines = ['[[tic]]', 'name = "linky"', f'serial = "{linky}"', '', '[[lora]]',
             f'broker = "{broker}"', f'application_ids = ["{APPLICATION}"]',
             f'client_id = "bench-footprint-{time.time_ns()}"', 'session_expiry_s = 60', '']
    for sensor in fleet(sensors):
        lines += ['[[lora.devices]]', f'name = "{sensor.name}"', f'dev_eui = "{sensor.dev_eui}"',
                  f'profile = "{sensor.profile}"', '']
    return lines


def write_gateway(directory: Path, profile: str, endpoints: list[str],
                  extra: list[str] | None = None) -> Path:
    """A gateway file with one TCP bus and one device per endpoint, polled every 10 s."""
    lines = ['[gateway]', 'id = "bench-footprint"', 'data_dir = "data"', '']
    for index, endpoint in enumerate(endpoints):
        lines += ['[[buses]]', f'name = "lan-{index:03d}"', f'tcp = "{endpoint}"', '']
    for index in range(len(endpoints)):
        lines += ['[[devices]]', f'name = "meter-{index:03d}"', f'bus = "lan-{index:03d}"',
                  f'profile = "{profile}"', 'unit = 1', f'interval_s = {INTERVAL_S}', '']
    lines += extra or []
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def stored_readings(data_dir: Path) -> int:
    """Readings waiting in the outbox (nothing acknowledges or evicts them here)."""
    return next(s.depth for s in read_stats(data_dir / OUTBOX_FILE) if s.name == "readings")


def poll_counts(data_dir: Path) -> tuple[int, int]:
    """(polls, failed polls) of every device since the agent started, from its status file."""
    status = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
    devices = status["devices"]
    return sum(d["polls"] for d in devices), sum(d["failed_polls"] for d in devices)


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU time the process has used."""
    times = process.cpu_times()
    return times.user + times.system


def check_running(agent: subprocess.Popen[str], agent_log: Path) -> None:
    """RuntimeError with the agent's log when it has exited."""
    if agent.poll() is not None:
        raise RuntimeError(f"the agent exited ({agent.returncode}): {agent_log.read_text()}")


def measure(agent: subprocess.Popen[str], baseline: subprocess.Popen[str], data_dir: Path,
            window_s: float, agent_log: Path) -> RunResult:
    """Sample both processes every second over the window; what the agent stored meanwhile."""
    watched = [psutil.Process(agent.pid), psutil.Process(baseline.pid)]
    rss: list[list[float]] = [[], []]
    check_running(agent, agent_log)
    depth_start = stored_readings(data_dir)
    cpu_start = [cpu_seconds(p) for p in watched]
    wall_start = time.monotonic()
    while True:
        check_running(agent, agent_log)
        for samples, process in zip(rss, watched, strict=True):
            samples.append(process.memory_info().rss / MIB)
        if time.monotonic() - wall_start >= window_s:
            break
        time.sleep(SAMPLE_PERIOD_S)
    wall = time.monotonic() - wall_start
    cpu = [100.0 * (cpu_seconds(p) - start) / wall for p, start in zip(watched, cpu_start,
                                                                        strict=True)]
    depth_end = stored_readings(data_dir)
    polls, failed = poll_counts(data_dir)
    agent_fp, baseline_fp = (Footprint(max(s), s[-1], c) for s, c in zip(rss, cpu, strict=True))
    return RunResult(agent_fp, baseline_fp, (depth_end - depth_start) / wall, polls, failed)


def run_once(profile: str, devices: int, warmup_s: float, window_s: float,
             lora: int) -> RunResult:
    """Simulators, agent and baseline from scratch; every process stopped on the way out."""
    edge_agent = Path(sys.executable).with_name("edge-agent")
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp, \
            contextlib.ExitStack() as stack:
        directory = Path(tmp)
        agent_log = directory / "agent.log"
        extra = []
        if lora:
            broker, linky = stack.enter_context(
                start_field_reach(lora, directory / "field.log"))
            extra = field_reach_sections(lora, broker, linky)
        with (
            start_simulators(profile, devices, directory / "simulators.log") as endpoints,
            agent_log.open("w", encoding="utf-8") as log,
            started([str(edge_agent), "run", "--config",
                     str(write_gateway(directory, profile, endpoints, extra)),
                     "--log-level", "WARNING"],
                    stdout=log, stderr=subprocess.STDOUT) as agent,
            started([sys.executable, "-c", BASELINE_CODE]) as baseline,
        ):
            time.sleep(warmup_s)
            result = measure(agent, baseline, directory / "data", window_s, agent_log)
            if stop(agent) != 0:
                raise RuntimeError(f"the agent did not stop cleanly: {agent_log.read_text()}")
        return result


def print_row(label: str, fp: Footprint, stored: str = "") -> None:
    """One table line; the agent's lines add what it stored and its failed polls."""
    print(f"{label:<16} {fp.rss_max_mib:>12.1f} {fp.rss_final_mib:>14.1f} {fp.cpu_percent:>6.2f}"
          f"{stored}")


def stored_columns(readings_per_s: float, failed: int, polls: int) -> str:
    """The readings/s and failed/polls columns."""
    return f" {readings_per_s:>10.1f} {f'{failed:,}/{polls:,}':>14}"


def median_footprint(footprints: list[Footprint]) -> Footprint:
    """Each figure's median over the runs."""
    return Footprint(
        statistics.median(f.rss_max_mib for f in footprints),
        statistics.median(f.rss_final_mib for f in footprints),
        statistics.median(f.cpu_percent for f in footprints),
    )


def report(profile: str, args: argparse.Namespace) -> None:
    """Run the benchmark ``args.runs`` times for one profile and print its table."""
    meter = load_profile(profile)
    requests = len(plan_reads(list(meter.points.values()), meter.limits))
    expected = args.devices * len(meter.points) / INTERVAL_S
    print(f"\n{args.devices} x {profile} over Modbus TCP, one port each, every {INTERVAL_S} s: "
          f"{len(meter.points)} quantities, {requests} requests per poll, "
          f"{expected:g} readings/s expected")
    if args.lora:
        print(f"and {args.lora} LoRa sensors through ChirpStack, one uplink each every "
              f"{LORA_PERIOD_S:g} s ({args.lora / LORA_PERIOD_S:.1f} uplinks/s), and a Linky "
              "on a TIC line (historic mode)")
    print(f"warm-up {args.warmup:g} s, window {args.window:g} s, median of {args.runs} runs")
    print(f"{'process':<16} {'RSS max MiB':>12} {'RSS final MiB':>14} {'CPU %':>6}"
          f" {'readings/s':>10} {'failed/polls':>14}")
    results = []
    for run in range(1, args.runs + 1):
        result = run_once(profile, args.devices, args.warmup, args.window, args.lora)
        results.append(result)
        print_row(f"agent, run {run}", result.agent,
                  stored_columns(result.readings_per_s, result.failed_polls, result.polls))
    agent = median_footprint([r.agent for r in results])
    baseline = median_footprint([r.baseline for r in results])
    print_row("agent, median", agent,
              stored_columns(statistics.median(r.readings_per_s for r in results),
                             sum(r.failed_polls for r in results), sum(r.polls for r in results)))
    print_row("baseline, median", baseline)
    goal_rss = GOAL_RSS_FIELD_REACH_MIB if args.lora else GOAL_RSS_MIB
    rss_goal = "met" if agent.rss_max_mib <= goal_rss else "MISSED"
    cpu_goal = "met" if agent.cpu_percent <= GOAL_CPU_PERCENT else "MISSED"
    print(f"(failed/polls of the median line: all runs together)\n"
          f"agent - baseline: {agent.rss_max_mib - baseline.rss_max_mib:.1f} MiB RSS, "
          f"{agent.cpu_percent - baseline.cpu_percent:.2f} % CPU; goals: "
          f"RSS <= {goal_rss:g} MiB {rss_goal}, CPU <= {GOAL_CPU_PERCENT:g} % {cpu_goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per profile (median taken)")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds of polling before the window opens")
    parser.add_argument("--window", type=float, default=60.0, help="seconds sampled")
    parser.add_argument("--devices", type=int, default=200, help="simulated meters")
    parser.add_argument("--lora", type=int, default=0, metavar="N",
                        help="also N LoRa sensors and a Linky (the field reach)")
    parser.add_argument("--profile", nargs="+", default=["eastron-sdm120"],
                        choices=["eastron-sdm120", "eastron-sdm630"],
                        help="meter profile(s), each measured in turn")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Ctrl-C as KeyboardInterrupt even when started in the background, where SIGINT is ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for profile in args.profile:
        report(profile, args)


if __name__ == "__main__":
    main()
