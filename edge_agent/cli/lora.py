"""``edge-agent lora``: LoRaWAN sensors through ChirpStack, from the installer's side."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge_agent.codecs.lora_payload import DecodedValue
from edge_agent.errors import CodecError
from edge_agent.profiles import load_lora_profile
from edge_agent.quantities import lookup_quantity, rounded

__all__ = ["app", "decode", "parse_hex", "values_table"]

app = typer.Typer(
    help="LoRaWAN sensors through ChirpStack: decode payloads, watch live uplinks, send "
    "downlinks.",
    no_args_is_help=True,
)


def parse_hex(text: str) -> bytes:
    """Payload bytes from hex as people paste it: ``0D0A07E9``, ``0d 0a 07 e9``, ``0D:0A``."""
    cleaned = "".join(text.split()).replace(":", "").replace("-", "")
    cleaned = cleaned.removeprefix("0x").removeprefix("0X")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise CodecError(f"'{text}' is not a hex payload; give bytes as hex digits, "
                         "e.g. 0D0A07E900000001") from None


def values_table(values: list[DecodedValue], title: str) -> Table:
    """Quantity, value (to its resolution) and unit, one row per decoded value."""
    table = Table("quantity", "value", "unit", title=title)
    for item in values:
        spec = lookup_quantity(item.quantity)
        shown = rounded(item.quantity, item.value)
        table.add_row(item.quantity, "-" if shown is None else f"{shown:g}",
                      spec.unit if spec else "")
    return table


@app.command("decode")
def decode(
    payload: Annotated[str, typer.Argument(metavar="HEX", help="the uplink's bytes in hex")],
    profile_id: Annotated[str, typer.Option("--profile", metavar="ID",
                                            help="LoRa sensor profile: dragino-ldds75 ...")],
    fport: Annotated[int, typer.Option("--fport", metavar="N", help="the uplink's fPort")],
    as_json: Annotated[bool, typer.Option("--json", help="Print {quantity: value}.")] = False,
) -> None:
    """Decode one uplink payload with a profile and print its values with their units."""
    profile = load_lora_profile(profile_id)
    values = profile.decode(fport, parse_hex(payload))
    if as_json:
        typer.echo(json.dumps({v.quantity: rounded(v.quantity, v.value) for v in values}))
        return
    Console().print(values_table(values, f"{profile.id} fPort {fport}"))
