"""Command line of the Modbus simulator: ``python -m simulators.modbus --help``.

It prints one line when it serves, for scripts to parse, then runs until SIGTERM or SIGINT::

    READY rtu /dev/pts/7
    READY tcp 127.0.0.1:5020 127.0.0.1:5021 …
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from edge_agent.errors import ProfileError
from edge_agent.profiles import DeviceProfile, available_profiles, load_profile
from simulators.modbus.faults import Fault, parse_fault
from simulators.modbus.meter import SimulatedMeter
from simulators.modbus.relay_board import PROFILE_ID as RELAY_BOARD_PROFILE
from simulators.modbus.relay_board import SimulatedRelayBoard
from simulators.modbus.server import ModbusSimulator, SimulatorGroup
from simulators.modbus.timing import LineSettings

__all__ = ["build_parser", "main"]

_EPILOG = """\
--devices N:
  with --pty, N meters on the one bus, unit ids counting up from --unit (default 1);
  with --tcp, N endpoints, one per meter as with real Ethernet meters: ports PORT..PORT+N-1,
  or N free ports when PORT is 0. Each endpoint serves the --unit ids (default 1). This is
  the layout for a benchmark of many meters polled over TCP.

--profile waveshare-relay-8ch serves relay boards with the board's own commands (toggle,
  all relays at 0x00FF, timed flash on/off at 0x0200/0x0400 + channel) instead of plain coils.

faults (repeat --fault): unit=3:no-reply  unit=2:exception=4  unit=1:corrupt-crc=0.5 (rtu)
  unit=1:slow=800ms

output: one line once serving, then nothing until stopped by SIGTERM or SIGINT:
  READY rtu /dev/pts/7
  READY tcp 127.0.0.1:5020 [127.0.0.1:5021 ...]
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with the profiles that exist listed in the help."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.modbus",
        description="Simulate Modbus meters and relay boards from device profiles, over "
                    "Modbus TCP or Modbus RTU on a pseudo-terminal.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", required=True,
                        help=f"device profile id ({', '.join(available_profiles())})")
    parser.add_argument("--unit", type=int, nargs="+", action="extend", metavar="N",
                        help="unit id(s) served, repeatable (default: 1)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT",
                       help="serve Modbus TCP on PORT of --host (0: a free port)")
    where.add_argument("--pty", action="store_true",
                       help="serve Modbus RTU on a pseudo-terminal; the client path is printed")
    parser.add_argument("--host", default="127.0.0.1", help="TCP address to bind")
    parser.add_argument("--baud", type=int,
                        help="RTU baud rate (default: the profile's factory setting, e.g. 2400 "
                             "for an SDM120)")
    parser.add_argument("--parity", choices=["N", "E", "O"], help="RTU parity")
    parser.add_argument("--stopbits", type=int, choices=[1, 2], help="RTU stop bits")
    parser.add_argument("--line-timing", action="store_true",
                        help="RTU: deliver each frame after its wire time plus t3.5")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="start with a fault, e.g. unit=3:no-reply (repeatable)")
    parser.add_argument("--devices", type=int, default=1, metavar="N",
                        help="number of meters (see below)")
    parser.add_argument("--seed", type=int, help="make the simulated values reproducible")
    parser.add_argument("--update-interval", type=float, default=1.0, metavar="S",
                        help="seconds between two measurements of a meter (default: 1)")
    return parser


def _line(args: argparse.Namespace, profile: DeviceProfile) -> LineSettings:
    factory = LineSettings.from_profile(profile)
    return LineSettings(
        baudrate=args.baud or factory.baudrate,
        parity=args.parity or factory.parity,
        stopbits=args.stopbits or factory.stopbits,
    )


def _units(args: argparse.Namespace) -> list[int]:
    requested: list[int] = args.unit or [1]
    if args.pty and args.devices > 1:
        if len(requested) > 1:
            raise ValueError("with --pty, give --devices N or several --unit ids, not both")
        return list(range(requested[0], requested[0] + args.devices))
    return requested


def _simulators(args: argparse.Namespace) -> list[ModbusSimulator]:
    profile = load_profile(args.profile)
    units = _units(args)
    faults: dict[int, Fault] = dict(parse_fault(spec) for spec in args.fault)
    unknown = sorted(set(faults) - set(units))
    if unknown:
        raise ValueError(f"--fault names unit(s) {unknown}, which are not served ({units})")
    endpoints = 1 if args.pty else args.devices
    if endpoints < 1:
        raise ValueError("--devices must be at least 1")
    simulators = []
    for index in range(endpoints):
        meters = [
            SimulatedRelayBoard(unit, fault=faults.get(unit))
            if profile.id == RELAY_BOARD_PROFILE else
            SimulatedMeter(
                unit, profile, fault=faults.get(unit), update_interval=args.update_interval,
                seed=None if args.seed is None else args.seed + 256 * index + unit,
            )
            for unit in units
        ]
        if args.pty:
            simulators.append(ModbusSimulator(meters, transport="rtu",
                                              line=_line(args, profile),
                                              line_timing=args.line_timing))
        else:
            port = args.tcp + index if args.tcp else 0
            simulators.append(ModbusSimulator(meters, transport="tcp", host=args.host,
                                              port=port))
    return simulators


async def _serve(simulators: list[ModbusSimulator], transport: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with SimulatorGroup(simulators) as group:
            print("READY", transport, *group.endpoints, flush=True)  # noqa: T201
            await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until a signal; the exit status is 0 after a clean stop."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.line_timing and not args.pty:
        parser.error("--line-timing needs --pty: only an RS-485 line has a wire time")
    try:
        simulators = _simulators(args)
    except (ProfileError, ValueError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(simulators, "rtu" if args.pty else "tcp"))
    except OSError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return 0
