"""Bus efficiency: Modbus RTU transactions per second against the RS-485 limit.

A simulator process serves meters on a pty with line-timing emulation at 9600 baud 8N1: each
frame costs its wire time plus the t3.5 gap, as on a real line. The agent's bus scheduler polls
them back to back (no device-imposed silence, so only the line's own timing limits it). The
limit is computed from reference/modbus.md §5.1: one read of N registers takes
(13 + 2N) characters plus two t3.5 gaps with a zero-latency device and host.

Run: .venv/bin/python bench/bench_bus.py [--runs 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys

from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.drivers.modbus.timing import ideal_transactions_per_s
from edge_agent.profiles import load_profile
from edge_agent.records import Event, Reading

BAUD = 9600
METERS = 4
#: Quantities whose read is one request of N registers on an SDM120.
WORKLOADS = {
    2: ["active_energy_import"],
    80: [q for q in load_profile("eastron-sdm120").points if not q.endswith("_total")],
}


class CountingSink:
    """Counts readings; the benchmark measures the bus, not the outbox."""

    def __init__(self) -> None:
        self.readings = 0

    def put_readings(self, readings: list[Reading]) -> None:
        self.readings += len(readings)

    def put_event(self, event: Event) -> None:
        raise RuntimeError(f"unexpected event during the benchmark: {event}")


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.modbus", "--profile", "eastron-sdm120", "--pty",
         "--baud", str(BAUD), "--line-timing", "--devices", str(METERS), "--update-interval",
         "3600"],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    ready = process.stdout.readline().split()
    if ready[:2] != ["READY", "rtu"]:
        process.kill()
        raise SystemExit(f"simulator did not start: {ready}")
    return process, ready[2]


async def measure(path: str, registers: int, seconds: float) -> float:
    """Transactions per second the bus sustains for ``seconds``."""
    profile = load_profile("eastron-sdm120")
    devices = [
        PolledDevice.from_profile(f"m{unit}", unit, profile, interval_s=0.0,
                                  quantities=WORKLOADS[registers], min_silence_ms=0)
        for unit in range(1, METERS + 1)
    ]
    assert all(len(d.requests) == 1 and d.requests[0].count == registers for d in devices)
    bus = ModbusBus(ModbusLink(LinkSettings("bench", "serial", path, baudrate=BAUD,
                                            timeout_s=1.0)), devices, CountingSink())
    task = asyncio.create_task(bus.run())
    await asyncio.sleep(1.0)  # warm-up: first connection, first polls
    before = sum(d.health.requests for d in devices)
    await asyncio.sleep(seconds)
    done = sum(d.health.requests for d in devices) - before
    bus.stop()
    await task
    failed = sum(d.health.failed_polls for d in devices)
    if failed:
        raise SystemExit(f"{failed} polls failed during the benchmark")
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    simulator, path = start_simulator()
    try:
        print(f"RTU at {BAUD} 8N1 with line-timing emulation, {METERS} meters, "
              f"median of {args.runs} runs of {args.seconds:g} s")
        print(f"{'registers/read':>14} {'limit tx/s':>11} {'achieved tx/s':>14} {'share':>7}"
              f"  runs")
        for registers in WORKLOADS:
            runs = [asyncio.run(measure(path, registers, args.seconds)) for _ in range(args.runs)]
            limit = ideal_transactions_per_s(registers, BAUD)
            achieved = statistics.median(runs)
            print(f"{registers:>14} {limit:>11.2f} {achieved:>14.2f} {achieved / limit:>7.1%}"
                  f"  {', '.join(f'{r:.2f}' for r in runs)}")
    finally:
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(10)


if __name__ == "__main__":
    main()
