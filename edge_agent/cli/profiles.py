"""``edge-agent profiles``: what devices the agent knows, and the profile schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge_agent.drivers.modbus.planner import plan_reads
from edge_agent.profiles import (
    DeviceProfile,
    available_profiles,
    load_profile,
    load_profile_file,
    profile_json_schema,
)

__all__ = ["app"]

app = typer.Typer(help="Device profiles shipped with the agent.", no_args_is_help=True)


@app.command("list")
def list_profiles() -> None:
    """List every device profile with its model and category."""
    table = Table()
    table.add_column("id", no_wrap=True)
    for header in ("manufacturer", "model", "category", "points"):
        table.add_column(header)
    for profile_id in available_profiles():
        profile = load_profile(profile_id)
        table.add_row(profile.id, profile.manufacturer, profile.model, profile.category,
                      str(len(profile.points)))
    Console().print(table)


@app.command("show")
def show(profile_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Show a profile's points, limits and how a full read is planned."""
    describe(load_profile(profile_id))


@app.command("check")
def check(path: Annotated[Path, typer.Argument(metavar="FILE")]) -> None:
    """Validate a profile file you are writing, then show it as `profiles show` does."""
    describe(load_profile_file(path))


def describe(profile: DeviceProfile) -> None:
    """Print a profile for an installer: identity, serial defaults, limits, points, plan."""
    console = Console()
    console.print(f"[bold]{profile.id}[/]: {profile.manufacturer} {profile.model} "
                  f"({profile.category})", highlight=False)
    if profile.description:
        console.print(profile.description.strip(), markup=False, highlight=False)
    serial = profile.serial
    console.print(f"serial defaults: {serial.baudrate} baud 8{serial.parity}{serial.stopbits}")
    console.print(f"limits: {profile.limits.model_dump()}", markup=False)
    table = Table("quantity", "unit", "table", "address", "type", "word order", "scale")
    for point in profile.points.values():
        table.add_row(point.quantity, point.unit, point.kind.value, f"0x{point.address:04X}",
                      point.type.value, point.word_order.value + (" +swap" if point.byte_swap
                                                                   else ""), f"{point.scale:g}")
    console.print(table)
    requests = plan_reads(profile.points.values(), profile.limits)
    console.print(f"a full read takes {len(requests)} request(s): " + ", ".join(
        f"{r.kind.value} 0x{r.address:04X}+{r.count}" for r in requests))


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of a profile file (for editor completion)."""
    typer.echo(profile_json_schema())
