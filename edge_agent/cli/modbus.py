"""``edge-agent devices read`` and ``edge-agent modbus scan``: the installer's first checks.

Both work without a configuration file, straight against a serial port or a TCP endpoint.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.errors import (
    ConfigError,
    DeviceException,
    DeviceTimeout,
    FrameError,
    TransportError,
)
from edge_agent.profiles import RegisterKind, load_profile
from edge_agent.quantities import rounded
from edge_agent.records import Event, Reading

__all__ = ["devices_app", "modbus_app"]

devices_app = typer.Typer(help="Talk to one device without a configuration file.",
                          no_args_is_help=True)
modbus_app = typer.Typer(help="Modbus line tools.", no_args_is_help=True)

Tcp = Annotated[str | None, typer.Option("--tcp", metavar="HOST:PORT", help="Modbus TCP endpoint.")]
Serial = Annotated[str | None, typer.Option("--serial", metavar="PORT",
                                            help="Serial port of the RS-485 line.")]
Baud = Annotated[int, typer.Option("--baud", help="Baud rate of the serial line.")]
Parity = Annotated[str, typer.Option("--parity", help="N, E or O.")]
Stopbits = Annotated[int, typer.Option("--stopbits", help="1 or 2.")]
TimeoutMs = Annotated[float, typer.Option("--timeout-ms", help="Wait per request.")]


def _link_settings(tcp: str | None, serial: str | None, baud: int, parity: str, stopbits: int,
                   timeout_ms: float) -> LinkSettings:
    if (tcp is None) == (serial is None):
        raise ConfigError("give exactly one of --tcp HOST:PORT or --serial PORT")
    parity = parity.upper()
    if parity not in ("N", "E", "O"):
        raise ConfigError(f"--parity must be N, E or O, not '{parity}'")
    if stopbits not in (1, 2):
        raise ConfigError(f"--stopbits must be 1 or 2, not {stopbits}")
    par: Literal["N", "E", "O"] = "E" if parity == "E" else "O" if parity == "O" else "N"
    stop: Literal[1, 2] = 2 if stopbits == 2 else 1
    return LinkSettings(name=tcp or serial or "", transport="tcp" if tcp else "serial",
                        target=tcp or serial or "", baudrate=baud, parity=par, stopbits=stop,
                        timeout_s=timeout_ms / 1000.0)


class _Discard:
    """A record sink for one-shot reads: records are printed, not stored."""

    def put_readings(self, readings: list[Reading]) -> None:
        """Drop the readings (the command prints them itself)."""

    def put_event(self, event: Event) -> None:
        """Drop the event."""


@devices_app.command("read")
def read(
    profile_id: Annotated[str, typer.Option("--profile", metavar="ID", help="Device profile.")],
    unit: Annotated[int, typer.Option(
        "--unit", min=1, max=247, help="Modbus unit id (1: every shipped meter's factory id).")
    ] = 1,
    tcp: Tcp = None,
    serial: Serial = None,
    baud: Baud = 9600,
    parity: Parity = "N",
    stopbits: Stopbits = 1,
    timeout_ms: TimeoutMs = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print {quantity: value}.")] = False,
) -> None:
    """Read every quantity of a device once and print it with its unit."""
    settings = _link_settings(tcp, serial, baud, parity, stopbits, timeout_ms)
    profile = load_profile(profile_id)
    device = PolledDevice.from_profile(f"unit {unit}", unit, profile, interval_s=1.0)

    async def read_once() -> list[Reading]:
        bus = ModbusBus(ModbusLink(settings), [device], _Discard())
        try:
            return await bus.read_device(device)
        finally:
            bus.link.close()

    readings = asyncio.run(read_once())
    if as_json:
        typer.echo(json.dumps({r.quantity: rounded(r.quantity, r.value) for r in readings}))
        return
    table = Table("quantity", "value", "unit", "quality", title=f"{profile.id} unit {unit}")
    for reading in readings:
        unit_name = profile.points[reading.quantity].unit
        shown = rounded(reading.quantity, reading.value)
        table.add_row(reading.quantity, "-" if shown is None else str(shown), unit_name,
                      reading.quality.name)
    Console().print(table)


@modbus_app.command("scan")
def scan(
    tcp: Tcp = None,
    serial: Serial = None,
    baud: Baud = 9600,
    parity: Parity = "N",
    stopbits: Stopbits = 1,
    timeout_ms: TimeoutMs = 200,
    first: Annotated[int, typer.Option("--first", min=1, max=247)] = 1,
    last: Annotated[int, typer.Option("--last", min=1, max=247)] = 247,
    as_json: Annotated[bool, typer.Option("--json", help="Print [{unit, answer}].")] = False,
) -> None:
    """Find which unit ids answer on a line (any answer, even an exception, counts).

    A silent unit is a normal answer: the scan goes on, and reconnects when a TCP gateway
    drops the link after a run of silent units. What was found is printed even when the
    link is lost for good (then exit 2, with the reason).
    """
    if first > last:
        raise ConfigError(f"--first {first} is after --last {last}")
    settings = _link_settings(tcp, serial, baud, parity, stopbits, timeout_ms)
    found, lost = asyncio.run(_scan(settings, range(first, last + 1)))
    if as_json:
        typer.echo(json.dumps([{"unit": unit, "answer": answer} for unit, answer in found]))
    else:
        table = Table("unit", "answer", title=f"{len(found)} device(s) on {settings.target}")
        for unit, answer in found:
            table.add_row(str(unit), answer)
        Console().print(table)
    if lost is not None:
        raise lost


async def _scan(settings: LinkSettings, units: range
                ) -> tuple[list[tuple[int, str]], TransportError | None]:
    """The units that answered, and the error that ended the scan early, if one did."""
    link = ModbusLink(settings)
    found: list[tuple[int, str]] = []
    try:
        await link.open()
        with Progress(transient=True) as progress:
            task = progress.add_task(f"scanning {settings.target}", total=len(units))
            for unit in units:
                try:
                    answer = await _probe_reconnecting(link, unit)
                except TransportError as exc:
                    return found, exc
                if answer:
                    found.append((unit, answer))
                progress.advance(task)
    finally:
        link.close()
    return found, None


async def _probe_reconnecting(link: ModbusLink, unit: int) -> str | None:
    """:func:`_probe`, reconnecting once when the link dropped (a TCP converter does that)."""
    try:
        return await _probe(link, unit)
    except TransportError:
        link.close()
        await link.open()
        return await _probe(link, unit)


async def _probe(link: ModbusLink, unit: int) -> str | None:
    """What ``unit`` answers to a one-register read, or None when it stays silent."""
    try:
        await link.read(RegisterKind.HOLDING, 0, 1, unit)
    except DeviceException as exc:
        return f"present (answered the probe with exception {exc.code}, normal for meters)"
    except FrameError:
        return "garbled reply: check baud rate and parity"
    except DeviceTimeout:
        return None
    return "present (answered the probe)"
