"""``edge-agent profiles``: what devices the agent knows, and the profile schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.console import Console

from edge_agent.cli.lora_profiles import lora_table, print_lora_details
from edge_agent.drivers.modbus.cost import factory_cost, tcp_cost
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
from edge_agent.schema import to_data
from edge_agent.tables import fitting_table

__all__ = ["app", "describe", "describe_lora", "describe_reader"]

app = typer.Typer(help="Device profiles shipped with the agent.", no_args_is_help=True)


@app.command("list")
def list_profiles(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every device profile with its model and category, then badge readers, LoRa sensors."""
    devices = [load_profile(pid) for pid in available_profiles()]
    readers = [load_reader_profile(pid) for pid in available_reader_profiles()]
    loras = [load_lora_profile(pid) for pid in available_lora_profiles()]
    if as_json:
        typer.echo(json.dumps({
            "devices": [{"id": p.id, "manufacturer": p.manufacturer, "model": p.model,
                         "category": p.category, "points": len(p.points)} for p in devices],
            "readers": [{"id": r.id, "manufacturer": r.manufacturer, "model": r.model,
                         "protocol": r.reader.protocol, "cards": r.reader.technology}
                        for r in readers],
            "lora": [{"id": lp.id, "manufacturer": lp.manufacturer, "model": lp.model,
                      "fports": sorted(lp.ports), "interval_s": lp.uplink_interval_s}
                     for lp in loras]}, indent=1))
        return
    table = fitting_table("id", "manufacturer", "model", "category", "points", whole=("id",))
    for profile in devices:
        table.add_row(profile.id, profile.manufacturer, profile.model, profile.category,
                      str(len(profile.points)))
    reader_table = fitting_table("id", "manufacturer", "model", "protocol", "cards",
                                 whole=("id",), title="badge readers")
    for reader in readers:
        reader_table.add_row(reader.id, reader.manufacturer, reader.model,
                             reader.reader.protocol, reader.reader.technology)
    console = Console()
    console.print(table)
    console.print(reader_table)
    console.print(lora_table(loras))


@app.command("show")
def show(
    profile_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="The profile as JSON (with a Modbus device's read plan).")] = False,
) -> None:
    """Show a profile's points, limits and read plan (a reader's line, a LoRa sensor's ports)."""
    profile: DeviceProfile | ReaderProfile | LoraProfile
    if profile_id in available_reader_profiles():
        profile = load_reader_profile(profile_id)
    elif profile_id in available_lora_profiles():
        profile = load_lora_profile(profile_id)
    else:
        profile = load_profile(profile_id)
    if as_json:
        document = to_data(profile)
        if isinstance(profile, DeviceProfile):
            cost = factory_cost(profile)
            document["read_plan_line"] = cost.line
            document["read_plan"] = [
                {"table": r.kind.value, "address": r.address, "count": r.count}
                for r in plan_reads(profile.points.values(), profile.limits, cost)]
        typer.echo(json.dumps(document, indent=1))
    elif isinstance(profile, ReaderProfile):
        describe_reader(profile)
    elif isinstance(profile, LoraProfile):
        describe_lora(profile)
    else:
        describe(profile)


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
    settings = {name: value for name, value in to_data(profile.reader).items()
                if value is not None}
    console.print(f"reader: {settings}", markup=False)
    if profile.reader.protocol != "keyboard_wedge":
        serial = profile.line
        console.print(f"serial: {serial.baudrate} baud 8{serial.parity}{serial.stopbits}")


def describe(profile: DeviceProfile) -> None:
    """Print a profile for an installer: identity, serial defaults, limits, points, plan."""
    console = _heading(profile)
    serial = profile.serial
    console.print(f"serial defaults: {serial.baudrate} baud 8{serial.parity}{serial.stopbits}")
    console.print(f"limits: {to_data(profile.limits)}", markup=False)
    table = fitting_table("quantity", "unit", "table", "address", "type", "word order", "scale",
                          whole=("quantity", "type"), box=SIMPLE_HEAD, show_edge=False,
                          collapse_padding=True, pad_edge=False)
    for point in profile.points.values():
        table.add_row(point.quantity, point.unit, point.kind.value, f"0x{point.address:04X}",
                      point.type.value, point.word_order.value + (" +swap" if point.byte_swap
                                                                   else ""), f"{point.scale:g}")
    console.print(table)
    factory = factory_cost(profile)
    for line, cost in ((f"its factory line ({factory.line})", factory),
                       ("Modbus TCP", tcp_cost(profile.limits.min_silence_ms / 1000.0))):
        requests = plan_reads(profile.points.values(), profile.limits, cost)
        console.print(f"a full read on {line} takes {len(requests)} request(s): " + ", ".join(
            f"{r.kind.value} 0x{r.address:04X}+{r.count}" for r in requests), highlight=False)


@app.command("schema")
def schema(
    lora: Annotated[bool, typer.Option("--lora", help="The schema of a LoRa sensor profile.")
                    ] = False,
) -> None:
    """Print the JSON Schema of a profile file (for editor completion)."""
    typer.echo(lora_profile_json_schema() if lora else profile_json_schema())
