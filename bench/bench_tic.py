"""A Linky TIC line: what decoding costs, and what a line costs the gateway at line pace.

1. Decoder throughput on standard frames of the simulated Linky (37 groups, 834 bytes),
   fed in 64-byte chunks as a port delivers them, against a baseline in the same run: a
   whole-frame parser of the kind most TIC libraries use (split on LF/CR, then on HT, one
   checksum method, no resynchronisation, no counters). The figure that matters is the
   share of a core a 9600-baud line (960 bytes/s) takes to decode.
2. A TicLine reading the simulator (a separate process, real pace, standard mode) for
   --seconds: CPU of this process per wall second, frames decoded, and readings kept with
   the default sampling against one reading per value per frame.

Run: .venv/bin/python bench/bench_tic.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

from edge_agent.codecs.tic import (
    TicDecoder,
    TicFrame,
    TicMode,
    checksum,
    encode_frame,
    encode_group,
)
from edge_agent.drivers.tic import TicLine, TicSettings, map_frame
from edge_agent.records import Event, Reading
from simulators.tic import LinkyMeter

_LINE_BYTES_PER_S = 960


def _frame() -> bytes:
    meter = LinkyMeter(TicMode.STANDARD)
    return encode_frame(encode_group(label, value, TicMode.STANDARD, horodate=horodate)
                        for label, value, horodate in meter.groups(1_704_646_690_000))


def _baseline(frame: bytes) -> dict[str, str]:
    groups: dict[str, str] = {}
    for raw in frame.strip(b"\x02\x03").split(b"\r\n"):
        body = raw.strip(b"\r\n")
        fields = body.split(b"\t")
        if body and checksum(body[:-1]) == body[-1]:
            groups[fields[0].decode()] = fields[-2].decode()
    return groups


def _rate(work: Callable[[bytes], object], data: bytes, minimum_s: float = 1.0) -> float:
    """Bytes per second ``work(data)`` sustains."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < minimum_s:
        work(data)
        done += len(data)
    return done / elapsed


def bench_decoder() -> None:
    frame = _frame()
    wire = frame * 20

    def decode(data: bytes) -> None:
        decoder = TicDecoder()
        for start in range(0, len(data), 64):
            decoder.feed(data[start:start + 64])

    def baseline(data: bytes) -> None:
        for _ in range(len(data) // len(frame)):
            _baseline(frame)

    ours, base = _rate(decode, wire), _rate(baseline, wire)
    print(f"decoder: {ours / 1000:,.0f} kB/s ({ours / len(frame):,.0f} frames/s), "
          f"{_LINE_BYTES_PER_S / ours * 100:.2f} % of a core at 9600 baud")
    print(f"baseline whole-frame split parser: {base / 1000:,.0f} kB/s; decoder costs "
          f"{base / ours:.1f}x the baseline")
    mapped = _rate(lambda data: map_frame(TicDecoder().feed(data)[0]), frame)
    print(f"decode + map one frame: {mapped / len(frame):,.0f} frames/s")


class _Counting:
    def __init__(self) -> None:
        self.readings = 0
        self.events = 0

    def put_readings(self, readings: list[Reading]) -> None:
        self.readings += len(readings)

    def put_event(self, event: Event) -> None:
        self.events += 1


async def bench_line(seconds: float) -> None:
    simulator = subprocess.Popen([sys.executable, "-m", "simulators.tic", "--mode", "standard"],
                                 stdout=subprocess.PIPE, text=True)
    try:
        assert simulator.stdout is not None
        path = simulator.stdout.readline().split()[2]
        sink = _Counting()
        values = 0

        def per_frame(frame: TicFrame) -> None:
            nonlocal values
            values += len(map_frame(frame).values)

        line = TicLine(TicSettings("linky", path, "standard"), sink, on_frame=per_frame)
        task = asyncio.create_task(line.run())
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        simulator.terminate()
        simulator.wait(10)
    frames = line.health.decoder.frames
    print(f"line at real pace, {wall:.0f} s: {frames} frames ({frames / wall:.2f}/s), "
          f"CPU {cpu / wall * 100:.2f} % of a core (decode, map, sample, event loop)")
    print(f"readings kept: {sink.readings} with the default sampling, against {values} "
          f"at one per value per frame ({values / max(sink.readings, 1):.0f}x fewer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    bench_decoder()
    asyncio.run(bench_line(args.seconds))


if __name__ == "__main__":
    main()
