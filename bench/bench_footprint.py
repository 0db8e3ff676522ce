"""Footprint of the agent polling 200 simulated meters over Modbus TCP: memory and CPU.

Each run starts the simulators in a separate process (not measured): one meter per TCP port,
as with real Ethernet meters, and a real hub (``sync-server serve``, SQLite, not measured).
Then two agents run side by side as real processes (``edge-agent run``), each on its own
gateway file with one bus and one device per meter, each polled every 10 s, each
provisioned to the hub and pushing to it:

- before: the agent at ``--before`` (a git commit, default the one before the lean agent:
  every module imported eagerly), its source exported with ``git archive``;
- after: the agent of this checkout.

After a warm-up (every device polled, pushes acknowledged) both are sampled every second
for a measurement window, from ``/proc/PID/smaps_rollup``:

- RSS, PSS (shared pages divided among the processes that map them) and USS (private pages
  only: what stopping the process would free), the largest sample of each, in MiB;
- CPU in per cent of one core: (user + system) CPU time over the window / its wall time;
- readings/s stored: growth of the outbox's last readings seq over the window;
- synced: the share of the readings stored that the hub acknowledged by the end;
- failed polls out of all polls since the start, from the agent's ``status.json``.

Every run starts from new processes, outboxes and hub; the figures are medians over runs.
Goals: RSS and PSS at most 40 MiB, CPU at most 5 % of one core.

``--lora N`` adds the field reach to the after agent only (a Linky's pty has one reader):
N LoRaWAN sensors through a simulated ChirpStack (each sending every 10 min, spread
evenly; on Mosquitto at 127.0.0.1:1883 where it runs, else on an embedded broker in the
field's process) and a Linky on a TIC line (bench/field_lora_tic.py). Goal then: RSS at
most 60 MiB.

Run: .venv/bin/python bench/bench_footprint.py [--runs 3] [--warmup 20] [--window 60]
     [--devices 200] [--profile eastron-sdm120 [eastron-sdm630]] [--before COMMIT]
     [--lora 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import psutil
from sqlalchemy import Engine

from edge_agent.drivers.modbus.cost import tcp_cost
from edge_agent.drivers.modbus.planner import plan_reads
from edge_agent.profiles import load_profile
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE
from edge_agent.store import read_stats
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from simulators.lora.fleet import fleet
from simulators.mqtt_broker import broker_answers
from sync_server import admin
from sync_server.db.migrate import upgrade

INTERVAL_S = 10
SAMPLE_PERIOD_S = 1.0
GOAL_MIB = 40.0
GOAL_RSS_FIELD_REACH_MIB = 60.0
#: The last commit before the lean agent (features imported lazily, no cryptography).
BEFORE_LEAN = "827a86a"
#: Each LoRa sensor's uplink period, as a territory's sensors commonly send.
LORA_PERIOD_S = 600.0
APPLICATION = "bench-footprint"
TERRITORY = "bench"
GOAL_CPU_PERCENT = 5.0
KIB_PER_MIB = 1024
ROOT = Path(__file__).resolve().parent.parent
#: ``edge-agent ARGS`` from the ``edge_agent`` found first on PYTHONPATH.
LAUNCH = "import sys; from edge_agent.launcher import main; main()"


@dataclass(frozen=True, slots=True)
class Footprint:
    """What one process cost over a measurement window (memory: largest sample, MiB)."""

    rss_mib: float
    pss_mib: float
    uss_mib: float
    cpu_percent: float


@dataclass(frozen=True, slots=True)
class AgentResult:
    """One agent over one run: its footprint and what it stored and synced."""

    footprint: Footprint
    readings_per_s: float
    synced: float
    polls: int
    failed_polls: int


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so the processes this script started are stopped."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def started(args: list[str], stdout: int | IO[str] | None = None,
            stderr: int | IO[str] | None = None,
            env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """A child process that is stopped (SIGTERM, then SIGKILL) however the block ends."""
    process = subprocess.Popen(args, stdout=stdout, stderr=stderr, text=True, env=env, cwd=cwd)
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


def export_source(commit: str, directory: Path) -> Path:
    """The agent's packages at ``commit`` (``git archive``), to put first on PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "edge_agent",
                              "device_profiles"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


@contextlib.contextmanager
def start_hub(directory: Path) -> Iterator[tuple[str, Engine]]:
    """A real hub on SQLite with territory ``bench``; yields (URL, engine)."""
    engine = demo_engine(directory)
    upgrade(engine)
    admin.add_territory(engine, TERRITORY)
    admin.add_site(engine, TERRITORY, f"{TERRITORY}-site")
    url, process = spawn_hub(directory)
    try:
        yield url, engine
    finally:
        stop_process(process)
        engine.dispose()


def provision(config: Path, hub_url: str, engine: Engine, name: str) -> None:
    """``edge-agent provision`` of this checkout, as an installer runs it."""
    code = admin.add_gateway(engine, TERRITORY, f"{TERRITORY}-site", name).code
    subprocess.run([str(Path(sys.executable).with_name("edge-agent")), "provision", "--config",
                    str(config), "--hub", hub_url, "--code", code, "--insecure-http"],
                   capture_output=True, text=True, check=True)


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


def write_gateway(directory: Path, name: str, profile: str, endpoints: list[str],
                  extra: list[str] | None = None) -> Path:
    """A gateway file with one TCP bus and one device per endpoint, polled every 10 s."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ['[gateway]', f'id = "{name}"', 'data_dir = "data"', '']
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
    """Readings waiting in the outbox (bench/bench_overload.py: nothing acknowledges them)."""
    return next(s.depth for s in read_stats(data_dir / OUTBOX_FILE) if s.name == "readings")


def readings_seqs(data_dir: Path) -> tuple[int, int]:
    """(last seq, seq the hub acknowledged) of the outbox's readings stream."""
    stats = next(s for s in read_stats(data_dir / OUTBOX_FILE) if s.name == "readings")
    return stats.last_seq, stats.acked_seq


def poll_counts(data_dir: Path) -> tuple[int, int]:
    """(polls, failed polls) of every device since the agent started, from its status file."""
    status = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
    devices = status["devices"]
    return sum(d["polls"] for d in devices), sum(d["failed_polls"] for d in devices)


def memory_mib(pid: int) -> tuple[float, float, float]:
    """(RSS, PSS, USS) of ``pid`` in MiB, from its ``smaps_rollup``."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
                fields[parts[0]] = int(parts[1])
    private = fields["Private_Clean:"] + fields["Private_Dirty:"]
    return (fields["Rss:"] / KIB_PER_MIB, fields["Pss:"] / KIB_PER_MIB,
            private / KIB_PER_MIB)


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU time the process has used."""
    times = process.cpu_times()
    return times.user + times.system


def check_running(agent: subprocess.Popen[str], agent_log: Path, label: str = "") -> None:
    """RuntimeError with the agent's log when it has exited."""
    if agent.poll() is not None:
        which = f"the {label} agent" if label else "the agent"
        raise RuntimeError(f"{which} exited ({agent.returncode}): "
                           f"{agent_log.read_text(encoding='utf-8')}")


@dataclass
class Agent:
    """One agent process under measurement, with its data directory and log."""

    label: str
    process: subprocess.Popen[str]
    data_dir: Path
    log: Path

    def check_running(self) -> None:
        """RuntimeError with the agent's log when it has exited."""
        check_running(self.process, self.log, self.label)


def measure(agents: list[Agent], window_s: float) -> list[AgentResult]:
    """Sample the agents every second over the window; what each stored and synced."""
    watched = [psutil.Process(agent.process.pid) for agent in agents]
    samples: list[list[tuple[float, float, float]]] = [[] for _ in agents]
    for agent in agents:
        agent.check_running()
    seq_start = [readings_seqs(agent.data_dir)[0] for agent in agents]
    cpu_start = [cpu_seconds(p) for p in watched]
    wall_start = time.monotonic()
    while True:
        for agent, memory in zip(agents, samples, strict=True):
            agent.check_running()
            memory.append(memory_mib(agent.process.pid))
        if time.monotonic() - wall_start >= window_s:
            break
        time.sleep(SAMPLE_PERIOD_S)
    wall = time.monotonic() - wall_start
    results = []
    for agent, process, memory, seq0, cpu0 in zip(agents, watched, samples, seq_start,
                                                   cpu_start, strict=True):
        cpu = 100.0 * (cpu_seconds(process) - cpu0) / wall
        last, acked = readings_seqs(agent.data_dir)
        polls, failed = poll_counts(agent.data_dir)
        rss, pss, uss = (max(m[i] for m in memory) for i in range(3))
        footprint = Footprint(rss, pss, uss, cpu)
        results.append(AgentResult(footprint, (last - seq0) / wall, acked / max(last, 1),
                                   polls, failed))
    return results


@contextlib.contextmanager
def start_agent(label: str, config: Path, source: Path) -> Iterator[Agent]:
    """``edge-agent run`` of the code in ``source``, its log beside its gateway file (also
    its working directory: ``python -c`` puts that first on the path)."""
    log = config.parent / "agent.log"
    env = {**os.environ, "PYTHONPATH": str(source)}
    with log.open("w", encoding="utf-8") as output, started(
            [sys.executable, "-c", LAUNCH, "run", "--config", str(config), "--log-level",
             "WARNING"], stdout=output, stderr=subprocess.STDOUT, env=env,
            cwd=config.parent) as process:
        yield Agent(label, process, config.parent / "data", log)
        if stop(process) != 0:
            raise RuntimeError(f"the {label} agent did not stop cleanly: "
                               f"{log.read_text(encoding='utf-8')}")


def run_once(args: argparse.Namespace, profile: str, before: Path) -> list[AgentResult]:
    """Simulators, hub and agents from scratch; every process stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp, \
            contextlib.ExitStack() as stack:
        directory = Path(tmp)
        extra = []
        if args.lora:
            broker, linky = stack.enter_context(
                start_field_reach(args.lora, directory / "field.log"))
            extra = field_reach_sections(args.lora, broker, linky)
        endpoints = stack.enter_context(
            start_simulators(profile, args.devices, directory / "simulators.log"))
        hub_url, engine = stack.enter_context(start_hub(directory / "hub"))
        sources = [("after", ROOT, extra)] if args.lora else [
            ("before", before, []), ("after", ROOT, [])]
        agents = []
        for label, source, sections in sources:
            config = write_gateway(directory / label, f"footprint-{label}", profile, endpoints,
                                   sections)
            provision(config, hub_url, engine, f"footprint-{label}")
            agents.append(stack.enter_context(start_agent(label, config, source)))
        time.sleep(args.warmup)
        return measure(agents, args.window)


def print_row(label: str, result: AgentResult) -> None:
    """One table line."""
    fp = result.footprint
    polls = f"{result.failed_polls:,}/{result.polls:,}"
    print(f"{label:<16} {fp.rss_mib:>7.1f} {fp.pss_mib:>7.1f} {fp.uss_mib:>7.1f} "
          f"{fp.cpu_percent:>6.2f} {result.readings_per_s:>10.1f} {result.synced:>7.1%} "
          f"{polls:>14}")


def median_result(results: list[AgentResult]) -> AgentResult:
    """Each figure's median over the runs; polls summed."""
    footprints = [r.footprint for r in results]
    return AgentResult(
        Footprint(statistics.median(f.rss_mib for f in footprints),
                  statistics.median(f.pss_mib for f in footprints),
                  statistics.median(f.uss_mib for f in footprints),
                  statistics.median(f.cpu_percent for f in footprints)),
        statistics.median(r.readings_per_s for r in results),
        statistics.median(r.synced for r in results),
        sum(r.polls for r in results), sum(r.failed_polls for r in results))


def report(profile: str, args: argparse.Namespace, before: Path) -> None:
    """Run the benchmark ``args.runs`` times for one profile and print its table."""
    meter = load_profile(profile)
    requests = len(plan_reads(list(meter.points.values()), meter.limits, tcp_cost()))
    expected = args.devices * len(meter.points) / INTERVAL_S
    print(f"\n{args.devices} x {profile} over Modbus TCP, one port each, every {INTERVAL_S} s: "
          f"{len(meter.points)} quantities, {requests} requests per poll, "
          f"{expected:g} readings/s expected; provisioned, pushing to a hub on SQLite")
    if args.lora:
        print(f"and {args.lora} LoRa sensors through ChirpStack, one uplink each every "
              f"{LORA_PERIOD_S:g} s ({args.lora / LORA_PERIOD_S:.1f} uplinks/s), and a Linky "
              "on a TIC line (historic mode); the after agent only")
    else:
        print(f"before: {args.before}, after: this checkout, both running at once")
    print(f"warm-up {args.warmup:g} s, window {args.window:g} s, median of {args.runs} runs; "
          "memory: largest sample, MiB")
    print(f"{'agent':<16} {'RSS':>7} {'PSS':>7} {'USS':>7} {'CPU %':>6} {'readings/s':>10} "
          f"{'synced':>7} {'failed/polls':>14}")
    runs: dict[str, list[AgentResult]] = {}
    labels = ["after"] if args.lora else ["before", "after"]
    for run in range(1, args.runs + 1):
        for label, result in zip(labels, run_once(args, profile, before), strict=True):
            runs.setdefault(label, []).append(result)
            print_row(f"{label}, run {run}", result)
    medians = {label: median_result(results) for label, results in runs.items()}
    for label, result in medians.items():
        print_row(f"{label}, median", result)
    after = medians["after"].footprint
    goal = GOAL_RSS_FIELD_REACH_MIB if args.lora else GOAL_MIB
    verdict = {True: "met", False: "MISSED"}
    print(f"(failed/polls of the median lines: all runs together)\ngoals: RSS <= {goal:g} MiB "
          f"{verdict[after.rss_mib <= goal]}, PSS <= {goal:g} MiB "
          f"{verdict[after.pss_mib <= goal]}, CPU <= {GOAL_CPU_PERCENT:g} % "
          f"{verdict[after.cpu_percent <= GOAL_CPU_PERCENT]}")
    if "before" in medians:
        old = medians["before"].footprint
        print(f"after / before: RSS {after.rss_mib / old.rss_mib:.2f}, PSS "
              f"{after.pss_mib / old.pss_mib:.2f}, USS {after.uss_mib / old.uss_mib:.2f}, "
              f"CPU {after.cpu_percent / old.cpu_percent:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per profile (median taken)")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds of polling before the window opens")
    parser.add_argument("--window", type=float, default=60.0, help="seconds sampled")
    parser.add_argument("--devices", type=int, default=200, help="simulated meters")
    parser.add_argument("--before", default=BEFORE_LEAN, metavar="COMMIT",
                        help="the agent to compare with (a git commit of this repository)")
    parser.add_argument("--lora", type=int, default=0, metavar="N",
                        help="also N LoRa sensors and a Linky (the field reach), after only")
    parser.add_argument("--profile", nargs="+", default=["eastron-sdm120"],
                        choices=["eastron-sdm120", "eastron-sdm630"],
                        help="meter profile(s), each measured in turn")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Ctrl-C as KeyboardInterrupt even when started in the background, where SIGINT is ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="bench-footprint-before-") as before:
        source = export_source(args.before, Path(before))
        for profile in args.profile:
            report(profile, args, source)


if __name__ == "__main__":
    main()
