"""LoRa sensor profiles shown to an installer: the list row and ``profiles show``."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from edge_agent.profiles import LoraProfile
from edge_agent.profiles.lora_layouts import FieldSpec, LayoutSpec
from edge_agent.quantities import lookup_quantity
from edge_agent.tables import fitting_table

__all__ = ["lora_table", "print_lora_details"]


def _interval(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def lora_table(profiles: list[LoraProfile]) -> Table:
    """One row per LoRa sensor: identity, fPorts, expected interval."""
    table = fitting_table("id", "manufacturer", "model", "fPorts", "interval", whole=("id",),
                          title="LoRa sensors")
    for profile in profiles:
        ports = ", ".join(str(port) for port in sorted(profile.ports)) or "object"
        table.add_row(profile.id, profile.manufacturer, profile.model, ports,
                      _interval(profile.uplink_interval_s))
    return table


def _how(field: FieldSpec) -> str:
    """The field's decoding in a few words: type, bits, mapping, scale."""
    parts = [field.type.value]
    if field.byte_order is not None:
        parts.append(field.byte_order.value)
    if field.mask is not None:
        parts.append(f"&0x{field.mask:X}" + (f">>{field.shift}" if field.shift else ""))
    if field.enum is not None:
        parts.append("enum")
    if field.segments:
        parts.append("segments")
    if field.scale != 1:
        parts.append(f"×{field.scale:g}")
    if field.add:
        parts.append(f"{field.add:+g}")
    if field.when is not None:
        parts.append(f"if byte {field.when.offset} in {field.when.values}")
    return " ".join(parts)


def _rows(layout: LayoutSpec) -> Iterator[tuple[str, FieldSpec | None]]:
    """(where, field) for each field; a record with no value kept gives (where, None)."""
    for field in layout.fields.values():
        yield f"byte {field.offset}", field
    for channel in layout.channels:
        key = f"{channel.type:02X}" if channel.channel is None else (
            f"{channel.channel:02X} {channel.type:02X}")
        if not channel.values:
            yield key, None
        for field in channel.values.values():
            yield f"{key} +{field.offset}", field


def print_lora_details(console: Console, profile: LoraProfile) -> None:
    """Print what a LoRa sensor profile adds to its heading: interval, battery, fPorts."""
    interval = profile.uplink_interval_s
    console.print(f"uplink every {_interval(interval)}; offline after "
                  f"{_interval(int(2.5 * interval))} of silence", highlight=False)
    low = profile.battery_low
    if low is None:
        console.print("battery: not reported")
    else:
        unit = "%" if low.quantity == "battery" else " V"
        console.print(f"battery low at or below {low.level:g}{unit} ({low.quantity})",
                      highlight=False)
    table = fitting_table("fPort", "at", "quantity", "unit", "decoding", whole=("quantity",))
    for port in sorted(profile.ports):
        layout = profile.ports[port]
        table.add_row(str(port), layout.layout, "", "", layout.description, style="bold")
        for where, field in _rows(layout):
            if field is None:
                table.add_row("", where, "-", "", "read past, not kept")
                continue
            table.add_row("", where, field.quantity, field.unit, _how(field))
    for name, entry in profile.object_map.items():
        spec = lookup_quantity(name)
        table.add_row("object", entry.path, name, spec.unit if spec else "",
                      f"×{entry.scale:g}" + (" enum" if entry.enum else ""))
    console.print(table)
    console.print("quantities: " + ", ".join(profile.quantities()), highlight=False)
