"""Side by side with the ThingsBoard IoT Gateway: CPU per value on the same Modbus TCP meters.

The peer (``thingsboard-gateway`` 3.8.5 from PyPI, or the nearest version the index has) is
installed once into its own virtualenv under ``.bench-cache/`` (gitignored), with the pymodbus
its Modbus connector pins (so it installs nothing at start) and its update check pointed at a
closed local port (it would otherwise post to its vendor at start and hourly). It publishes to
the local Mosquitto (127.0.0.1:1883); this script plays its server there: it answers the
``getSessionLimits`` RPC the peer sends before it publishes and counts the values that arrive
on ``v1/gateway/telemetry``.

One simulator process serves ``--devices`` SDM120 meters, one per TCP port, and both agents
poll all of them at once, six values each (voltage, current, active power, frequency, import
and total energy), every ``--period`` seconds. Ours runs ``edge-agent run`` without a hub and
stores into its SQLite outbox; the peer stores into its SQLite storage and publishes. After a
warm-up, each agent is measured over the same window from /proc: CPU as utime + stime, RSS
(largest sample) and PSS (smaps_rollup, last sample); values delivered are the outbox's growth
for ours and the values received on MQTT for the peer. CPU per value is CPU time / values.
Each repetition starts both agents afresh; the table gives medians over repetitions and the
ratio ours/peer per repetition as median and spread (min-max). Goal: ratio at most 0.20.

Run: .venv/bin/python bench/bench_peer.py [--runs 3] [--period 10 --period 1]
     [--devices 200] [--warmup 20] [--window 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.runtime import OUTBOX_FILE
from edge_agent.store import read_stats

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = ROOT / ".bench-cache" / "peer"
PEER_VERSION = "3.8.5"
#: The Modbus connector re-installs any other pymodbus at start, which needs the network.
PEER_PYMODBUS = "3.9.2"
#: Nothing listens on the discard port: the update check fails at once, with no traffic.
CLOSED_URL = "http://127.0.0.1:9"
BROKER = ("127.0.0.1", 1883)
PROFILE = "eastron-sdm120"
#: Six values with a 56-register hole between active power and frequency.
QUANTITIES = {"voltage": 0x0000, "current": 0x0006, "active_power": 0x000C,
              "frequency": 0x0046, "active_energy_import": 0x0048,
              "active_energy_total": 0x0156}
GOAL_RATIO = 0.20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB_KIB = 1024


@dataclass(frozen=True, slots=True)
class Measured:
    """One agent over one window."""

    cpu_s: float
    values: int
    wall_s: float
    rss_mib: float
    pss_mib: float

    @property
    def us_per_value(self) -> float:
        """CPU microseconds per value delivered (infinite when nothing came through)."""
        return 1e6 * self.cpu_s / self.values if self.values else float("inf")


def peer_installed_version() -> str | None:
    """The peer version ready in the cache, if any."""
    marker = PEER_DIR / "READY"
    return marker.read_text(encoding="utf-8").strip() if marker.exists() else None


def nearest_version(pip: Path) -> str:
    """PEER_VERSION when the index has it, else the version closest to it."""
    listing = subprocess.run([str(pip), "index", "versions", "thingsboard-gateway"],
                             capture_output=True, text=True, check=True).stdout
    found = re.search(r"Available versions: (.+)", listing)
    if found is None:
        raise SystemExit("the package index has no thingsboard-gateway")
    versions = [v.strip() for v in found.group(1).split(",")]
    if PEER_VERSION in versions:
        return PEER_VERSION

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", version)[:3])

    wanted = key(PEER_VERSION)
    return min(versions, key=lambda v: [abs(a - b) for a, b in zip(key(v), wanted,
                                                                    strict=False)])


def install_peer() -> str:
    """Install the peer into its own virtualenv once; its version."""
    ready = peer_installed_version()
    if ready:
        return ready
    subprocess.run([sys.executable, "-m", "venv", str(PEER_DIR)], check=True)
    pip = PEER_DIR / "bin" / "pip"
    version = nearest_version(pip)
    subprocess.run([str(pip), "install", "-q", f"pymodbus=={PEER_PYMODBUS}",
                    f"thingsboard-gateway=={version}"], check=True)
    updater = next(PEER_DIR.glob("lib/python*/site-packages/thingsboard_gateway/tb_utility/"
                                 "tb_updater.py"))
    source = updater.read_text(encoding="utf-8")
    patched = re.sub(r'UPDATE_SERVICE_BASE_URL = "[^"]*"',
                     f'UPDATE_SERVICE_BASE_URL = "{CLOSED_URL}"', source)
    if patched == source:
        raise SystemExit(f"{updater}: no UPDATE_SERVICE_BASE_URL to point at {CLOSED_URL}")
    updater.write_text(patched, encoding="utf-8")
    (PEER_DIR / "READY").write_text(version, encoding="utf-8")
    return version


class PeerServer:
    """The peer's MQTT server side: answers its session-limits RPC, counts its values."""

    def __init__(self) -> None:
        self.values = 0
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"bench-peer-{os.getpid()}")
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        client.subscribe([("v1/gateway/telemetry", 1), ("v1/devices/me/rpc/request/+", 1)])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
                    ) -> None:
        if message.topic.startswith("v1/devices/me/rpc/request/"):
            request_id = message.topic.rsplit("/", 1)[1]
            client.publish(f"v1/devices/me/rpc/response/{request_id}", json.dumps({
                "rateLimits": {}, "gatewayRateLimits": {}, "maxInflightMessages": 10000,
                "maxPayloadSize": 65536}), qos=1)
            return
        body = json.loads(message.payload)
        count = sum(len(entry.get("values", {})) for entries in body.values()
                    for entry in entries)
        with self._lock:
            self.values += count

    @contextlib.contextmanager
    def running(self) -> Iterator[PeerServer]:
        """Connected to the broker for the duration of the block."""
        self._client.connect(*BROKER)
        self._client.loop_start()
        try:
            yield self
        finally:
            self._client.loop_stop()
            self._client.disconnect()


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_kib(path: str, field: str) -> float:
    """A ``Field:  N kB`` line of a /proc file, in MiB."""
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / MIB_KIB
    raise RuntimeError(f"no {field} in {path}")


@contextlib.contextmanager
def child(args: list[str], log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose output goes to ``log``, stopped (TERM, then KILL) when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def simulator(devices: int, log: Path) -> Iterator[list[str]]:
    """``devices`` SDM120s, one per TCP port; yields their ``host:port`` endpoints."""
    with log.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators.modbus", "--profile", PROFILE, "--tcp", "0",
             "--devices", str(devices), "--baud", "9600"],
            stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        if ready[:2] != ["READY", "tcp"] or len(ready) != 2 + devices:
            raise RuntimeError(f"the simulator did not start: {log.read_text()}")
        yield ready[2:]
    finally:
        process.terminate()
        process.wait(20)


def write_ours(directory: Path, endpoints: list[str], period_s: float) -> Path:
    """Our gateway file: one TCP bus and one device per meter, the six values."""
    quantities = ", ".join(f'"{q}"' for q in QUANTITIES)
    lines = ['[gateway]', 'id = "bench-peer"', 'data_dir = "data"', '']
    for index, endpoint in enumerate(endpoints):
        lines += ['[[buses]]', f'name = "lan-{index:03d}"', f'tcp = "{endpoint}"', '',
                  '[[devices]]', f'name = "meter-{index:03d}"', f'bus = "lan-{index:03d}"',
                  f'profile = "{PROFILE}"', 'unit = 1', f'interval_s = {period_s}',
                  f'quantities = [{quantities}]', '']
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_peer(directory: Path, endpoints: list[str], period_s: float) -> Path:
    """The peer's configuration directory: gateway, Modbus connector, logs at ERROR."""
    config = directory / "config"
    (config / "data").mkdir(parents=True)
    (config / "logs").mkdir()
    gateway = {
        "thingsboard": {
            "host": BROKER[0], "port": BROKER[1], "remoteShell": False,
            "remoteConfiguration": False, "statistics": {"enable": False},
            "deviceFiltering": {"enable": False}, "qos": 1,
            "security": {"type": "accessToken", "accessToken": "bench-peer"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {"type": "sqlite", "data_file_path": str(config / "data") + "/"},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }
    slaves = [{
        "host": endpoint.rsplit(":", 1)[0], "port": int(endpoint.rsplit(":", 1)[1]),
        "type": "tcp", "method": "socket", "unitId": 1, "deviceName": f"meter-{index:03d}",
        "deviceType": "sdm120", "timeout": 1, "retries": 1, "byteOrder": "BIG",
        "wordOrder": "BIG", "pollPeriod": int(period_s * 1000),
        "attributes": [], "attributeUpdates": [], "rpc": [],
        "timeseries": [{"tag": tag, "type": "32float", "functionCode": 4, "objectsCount": 2,
                        "address": address} for tag, address in QUANTITIES.items()],
    } for index, endpoint in enumerate(endpoints)]
    logs = {
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler", "level": "ERROR",
                                 "stream": "ext://sys.stdout"}},
        "root": {"level": "ERROR", "handlers": ["console"]},
        "loggers": {name: {"level": "ERROR"} for name in (
            "service", "connector", "converter", "tb_connection", "storage", "extension",
            "database", "pymodbus")},
    }
    for name, document in (("tb_gateway.json", gateway), ("modbus.json",
                                                          {"master": {"slaves": slaves}}),
                           ("logs.json", logs)):
        (config / name).write_text(json.dumps(document, indent=1), encoding="utf-8")
    return config


def stored(data_dir: Path) -> int:
    """Readings in our outbox (nothing acknowledges them: there is no hub)."""
    return next(s.depth for s in read_stats(data_dir / OUTBOX_FILE) if s.name == "readings")


def measure_pair(ours: subprocess.Popen[bytes], peer: subprocess.Popen[bytes],
                 data_dir: Path, server: PeerServer, window_s: float
                 ) -> tuple[Measured, Measured]:
    """Both agents over the same window, sampled every second."""
    for name, process in (("ours", ours), ("the peer", peer)):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early ({process.returncode})")
    pids = (ours.pid, peer.pid)
    values_start = (stored(data_dir), server.values)
    cpu_start = [proc_cpu_s(pid) for pid in pids]
    start = time.monotonic()
    rss: list[list[float]] = [[], []]
    while time.monotonic() - start < window_s:
        for samples, pid in zip(rss, pids, strict=True):
            samples.append(proc_kib(f"/proc/{pid}/status", "VmRSS"))
        time.sleep(1.0)
    cpu_end = [proc_cpu_s(pid) for pid in pids]
    values_end = (stored(data_dir), server.values)
    wall = time.monotonic() - start
    return tuple(  # type: ignore[return-value]
        Measured(end - begin, v_end - v_begin, wall, max(samples),
                 proc_kib(f"/proc/{pid}/smaps_rollup", "Pss"))
        for begin, end, v_begin, v_end, samples, pid in zip(
            cpu_start, cpu_end, values_start, values_end, rss, pids, strict=True))


def wait_started(ours: subprocess.Popen[bytes], peer: subprocess.Popen[bytes],
                 data_dir: Path, server: PeerServer, published_before: int,
                 within_s: float = 120.0) -> None:
    """Until our outbox holds readings and the peer has published: the warm-up starts then
    (on a loaded machine, start-up alone can take longer than the warm-up)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for name, process in (("ours", ours), ("the peer", peer)):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited at start ({process.returncode})")
        if ((data_dir / OUTBOX_FILE).exists() and stored(data_dir)
                and server.values > published_before):
            return
        time.sleep(0.5)
    raise RuntimeError(f"no values from both agents within {within_s:g} s")


def run_once(endpoints: list[str], period_s: float, warmup_s: float, window_s: float,
             server: PeerServer) -> tuple[Measured, Measured]:
    """Both agents started afresh on the same simulator, measured together."""
    edge_agent = Path(sys.executable).with_name("edge-agent")
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        directory = Path(tmp)
        ours_config = write_ours(directory, endpoints, period_s)
        peer_config = write_peer(directory, endpoints, period_s)
        env = {**os.environ, "TB_GW_CONFIG_DIR": str(peer_config) + "/"}
        published_before = server.values
        with (
            child([str(edge_agent), "run", "--config", str(ours_config), "--log-level",
                   "WARNING"], directory / "ours.log") as ours,
            child([str(PEER_DIR / "bin" / "thingsboard-gateway")], directory / "peer.log",
                  env=env, cwd=directory) as peer,
        ):
            try:
                wait_started(ours, peer, directory / "data", server, published_before)
                time.sleep(warmup_s)
                return measure_pair(ours, peer, directory / "data", server, window_s)
            except RuntimeError as exc:
                logs = {name: (directory / f"{name}.log").read_text(errors="replace")[-2000:]
                        for name in ("ours", "peer")}
                raise RuntimeError(f"{exc}: {logs}") from exc


def spread(values: list[float]) -> str:
    """Median and min-max of a figure over the repetitions."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def report(period_s: float, runs: list[tuple[Measured, Measured]], devices: int) -> None:
    """The table for one period, and the ratio against the goal."""
    expected = devices * len(QUANTITIES) / period_s
    print(f"\n{devices} SDM120 x {len(QUANTITIES)} values over Modbus TCP every {period_s:g} s "
          f"({expected:g} values/s asked), {len(runs)} repetition(s), medians:")
    print(f"{'agent':<6} {'CPU us/value':>13} {'CPU % core':>11} {'values/s':>9} "
          f"{'RSS MiB':>8} {'PSS MiB':>8}")
    for index, label in enumerate(("peer", "ours")):
        side = [run[1 - index] for run in runs]
        print(f"{label:<6} {statistics.median(m.us_per_value for m in side):>13.1f} "
              f"{statistics.median(100 * m.cpu_s / m.wall_s for m in side):>11.2f} "
              f"{statistics.median(m.values / m.wall_s for m in side):>9.1f} "
              f"{statistics.median(m.rss_mib for m in side):>8.1f} "
              f"{statistics.median(m.pss_mib for m in side):>8.1f}")
    ratios = [ours.us_per_value / peer.us_per_value for ours, peer in runs]
    memory = [ours.rss_mib / peer.rss_mib for ours, peer in runs]
    verdict = "met" if statistics.median(ratios) <= GOAL_RATIO else "not met"
    print(f"CPU per value ours/peer: {spread(ratios)}, goal <= {GOAL_RATIO} {verdict}; "
          f"RSS ours/peer: {spread(memory)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--period", type=float, action="append",
                        help="poll period in seconds (repeatable; default 10 and 1)")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds after both agents delivered their first values")
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    version = install_peer()
    print(f"peer: thingsboard-gateway {version} in {PEER_DIR}; ours: edge-agent "
          f"(Python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory(prefix="bench-peer-sim-") as tmp, \
            simulator(args.devices, Path(tmp) / "simulator.log") as endpoints, \
            PeerServer().running() as server:
        for period in args.period or [10.0, 1.0]:
            runs = [run_once(endpoints, period, args.warmup, args.window, server)
                    for _ in range(args.runs)]
            report(period, runs, args.devices)


if __name__ == "__main__":
    main()
