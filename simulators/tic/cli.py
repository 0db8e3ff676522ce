"""Command line of the Linky simulator: ``python -m simulators.tic --help``.

For a demo or a manual test of ``edge-agent tic listen``: it prints one line when the pty is
ready, then sends frames until stopped::

    READY historic /dev/pts/7
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Sequence

from edge_agent.codecs.tic import TicMode
from simulators.tic.line import TicSimulator

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.tic",
        description="Simulate a Linky's TIC output on a pseudo-terminal: single-phase, "
                    "off-peak contract, frames at line pace.")
    parser.add_argument("--mode", choices=[mode.value for mode in TicMode], default="historic",
                        help="historic (1200 baud) or standard (9600 baud); default historic")
    parser.add_argument("--corrupt-every", type=int, default=0, metavar="N",
                        help="flip a bit in every Nth group (a bad checksum); 0: never")
    parser.add_argument("--interrupt-every", type=int, default=0, metavar="N",
                        help="cut every Nth frame with EOT; 0: never")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                        help="multiply line time by X (0.1: ten times faster); default 1")
    parser.add_argument("--tariff-every", type=float, default=0, metavar="S",
                        help="switch off-peak/peak every S seconds; 0: never")
    parser.add_argument("--overpower-every", type=float, default=0, metavar="S",
                        help="an overpower episode every S seconds; 0: never")
    parser.add_argument("--overpower-for", type=float, default=10, metavar="S",
                        help="how long an overpower episode lasts; default 10")
    parser.add_argument("--seed", type=int, default=0, help="seed of the load's random walk")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    simulator = TicSimulator(TicMode(args.mode), time_scale=args.time_scale,
                             corrupt_every=args.corrupt_every,
                             interrupt_every=args.interrupt_every, seed=args.seed)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    simulator.open()
    try:
        print("READY", args.mode, simulator.path, flush=True)  # noqa: T201
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(simulator.run())]
            if args.tariff_every > 0:
                tasks.append(group.create_task(_every(args.tariff_every,
                                                      simulator.meter.switch_tariff)))
            if args.overpower_every > 0:
                tasks.append(group.create_task(_overpower(simulator, args.overpower_every,
                                                          args.overpower_for)))
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        simulator.close()


async def _every(period_s: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(period_s)
        action()


async def _overpower(simulator: TicSimulator, every_s: float, for_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        simulator.start_overpower()
        try:
            await asyncio.sleep(for_s)
        finally:
            simulator.end_overpower()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until a signal; exit status 0 after a clean stop, 2 on bad options."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.time_scale <= 0:
        parser.error("--time-scale must be above 0")
    asyncio.run(_serve(args))
    return 0
