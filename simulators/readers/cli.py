"""Command line of the reader simulator: ``python -m simulators.readers --help``.

For an installer's demo or a manual test of ``edge-agent reader listen``: it prints one line
when the pty is ready, then presents the card on Enter (or every N seconds) until stopped::

    READY rdm6300 /dev/pts/7
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from simulators.readers.cards import CardReaderSimulator, Pn532Simulator

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.readers",
        description="Simulate a badge reader on a pseudo-terminal and present a card on "
                    "Enter or every --every seconds.")
    parser.add_argument("--protocol", required=True, choices=["rdm6300", "em18", "pn532"])
    parser.add_argument("--card", required=True, metavar="HEX",
                        help="the card: 5 bytes for rdm6300/em18 (62E3086CED), a 4, 7 or "
                             "10-byte UID for pn532 (DEADBEEF)")
    parser.add_argument("--every", type=float, metavar="S",
                        help="present the card every S seconds instead of on Enter")
    parser.add_argument("--repeats", type=int, default=5, metavar="N",
                        help="rdm6300/em18: frames sent while the card is held (default 5)")
    parser.add_argument("--hold", type=float, default=1.0, metavar="S",
                        help="pn532: seconds the card stays in the field (default 1)")
    return parser


async def _serve(args: argparse.Namespace, card: bytes) -> None:
    simulator: CardReaderSimulator | Pn532Simulator = (
        Pn532Simulator() if args.protocol == "pn532" else CardReaderSimulator(args.protocol))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    wanted = asyncio.Queue[None]()

    def stop_now() -> None:
        stop.set()
        wanted.put_nowait(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_now)
    if args.every is None:
        loop.add_reader(sys.stdin, _on_enter, wanted, loop)
    simulator.open()
    try:
        print("READY", args.protocol, simulator.path, flush=True)  # noqa: T201
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.every):  # None: wait for Enter
                    await wanted.get()
            if stop.is_set():
                break
            if isinstance(simulator, Pn532Simulator):
                await simulator.present(card, args.hold)
            else:
                await simulator.present(card, args.repeats)
    finally:
        if args.every is None:
            loop.remove_reader(sys.stdin)
        simulator.close()


def _on_enter(wanted: asyncio.Queue[None], loop: asyncio.AbstractEventLoop) -> None:
    if sys.stdin.readline():
        wanted.put_nowait(None)
    else:
        loop.remove_reader(sys.stdin)  # end of input: only a signal stops the simulator now


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until a signal; exit status 0 after a clean stop, 2 on bad options."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        card = bytes.fromhex(args.card)
    except ValueError:
        parser.error(f"--card must be hexadecimal, not '{args.card}'")
    lengths = (4, 7, 10) if args.protocol == "pn532" else (5,)
    if len(card) not in lengths:
        parser.error(f"a {args.protocol} card is {' or '.join(map(str, lengths))} bytes, "
                     f"not {len(card)}")
    asyncio.run(_serve(args, card))
    return 0
