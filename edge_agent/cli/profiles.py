"""``edge-agent profiles``: what devices the agent knows, and the profile schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge_agent.cli.lora_profiles import lora_table, print_lora_details
from edge_agent.drivers.modbus.planner import plan_reads
from edge_agent.profiles import (
    DeviceProfile,
    LoraProfile,
    ReaderProfile,
    available_lora_profiles,
    available_profiles,
    available_reader_profiles,
    is_lora_profile,
    is_reader_profile,
    load_lora_profile,
    load_lora_profile_file,
    load_profile,
    load_profile_file,
    load_reader_profile,
    load_reader_profile_file,
    lora_profile_json_schema,
    profile_json_schema,
)

__all__ = ["app", "describe", "describe_lora", "describe_reader"]

app = typer.Typer(help="Device profiles shipped with the agent.", no_args_is_help=True)


@app.command("list")
def list_profiles() -> None:
    """List every device profile with its model and category, then badge readers, LoRa sensors."""
    table = Table()
    table.add_column("id", no_wrap=True)
    for header in ("manufacturer", "model", "category", "points"):
        table.add_column(header)
    for profile_id in available_profiles():
        profile = load_profile(profile_id)
        table.add_row(profile.id, profile.manufacturer, profile.model, profile.category,
                      str(len(profile.points)))
    readers = Table(title="badge readers")
    readers.add_column("id", no_wrap=True)
    for header in ("manufacturer", "model", "protocol", "cards"):
        readers.add_column(header)
    for profile_id in available_reader_profiles():
        reader = load_reader_profile(profile_id)
        readers.add_row(reader.id, reader.manufacturer, reader.model, reader.reader.protocol,
                        reader.reader.technology)
    console = Console()
    console.print(table)
    console.print(readers)
    console.print(lora_table([load_lora_profile(pid) for pid in available_lora_profiles()]))


@app.command("show")
def show(profile_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Show a profile's points, limits and read plan (a reader's line, a LoRa sensor's ports)."""
    if profile_id in available_reader_profiles():
        describe_reader(load_reader_profile(profile_id))
    elif profile_id in available_lora_profiles():
        describe_lora(load_lora_profile(profile_id))
    else:
        describe(load_profile(profile_id))


@app.command("check")
def check(path: Annotated[Path, typer.Argument(metavar="FILE")]) -> None:
    """Validate a profile file you are writing, then show it as `profiles show` does."""
    if is_reader_profile(path):
        describe_reader(load_reader_profile_file(path))
    elif is_lora_profile(path):
        describe_lora(load_lora_profile_file(path))
    else:
        describe(load_profile_file(path))


def _heading(profile: DeviceProfile | ReaderProfile | LoraProfile) -> Console:
    """Print a profile's id, model, category and description; the console to go on with."""
    console = Console()
    console.print(f"[bold]{profile.id}[/]: {profile.manufacturer} {profile.model} "
                  f"({profile.category})", highlight=False)
    if profile.description:
        console.print(profile.description.strip(), markup=False, highlight=False)
    return console


def describe_lora(profile: LoraProfile) -> None:
    """Print a LoRa sensor profile: identity, interval, battery, then each fPort's values."""
    print_lora_details(_heading(profile), profile)


def describe_reader(profile: ReaderProfile) -> None:
    """Print a badge reader profile: identity, protocol and line settings."""
    console = _heading(profile)
    console.print(f"reader: {profile.reader.model_dump(mode='json', exclude_unset=True)}",
                  markup=False)
    if profile.reader.protocol != "keyboard_wedge":
        serial = profile.serial
        console.print(f"serial: {serial.baudrate} baud 8{serial.parity}{serial.stopbits}")


def describe(profile: DeviceProfile) -> None:
    """Print a profile for an installer: identity, serial defaults, limits, points, plan."""
    console = _heading(profile)
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
def schema(
    lora: Annotated[bool, typer.Option("--lora", help="The schema of a LoRa sensor profile.")
                    ] = False,
) -> None:
    """Print the JSON Schema of a profile file (for editor completion)."""
    typer.echo(lora_profile_json_schema() if lora else profile_json_schema())
