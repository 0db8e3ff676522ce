"""``edge-agent tic``: check a Linky's TIC line on site before it goes in the gateway file."""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
from typing import Annotated, Any, cast

import typer

from edge_agent.codecs.tic import TicFrame, TicGroup
from edge_agent.drivers.tic import ModeSetting, TicLine, TicSettings, map_frame
from edge_agent.quantities import lookup_quantity, rounded
from edge_agent.records import Event, Reading

__all__ = ["app", "describe_counters", "describe_frame", "frame_as_json"]

app = typer.Typer(help="Linky TIC: read a meter's frames and check its line.",
                  no_args_is_help=True)

_WIDTH = 80
_SPEEDS = {"auto": "1200 then 9600 baud", "historic": "1200 baud", "standard": "9600 baud"}


def _group_line(group: TicGroup) -> str:
    value = group.value
    if value != value.strip() or not value:
        value = f'"{value}"'
    if group.horodate is not None:
        value = f"{value}  [{group.horodate.text}]"
    line = f"  {group.label:<10}{value}"
    return line if len(line) <= _WIDTH else line[:_WIDTH - 3] + "..."


def describe_frame(number: int, frame: TicFrame, *, readings: bool) -> list[str]:
    """A frame for people: its groups, or the readings they map to, within 80 columns."""
    lines = [f"frame {number}: {frame.mode}, {len(frame.groups)} groups"]
    if not readings:
        return lines + [_group_line(group) for group in frame.groups]
    for quantity, value in map_frame(frame).values.items():
        spec = lookup_quantity(quantity)
        unit = spec.unit if spec is not None and spec.unit != "1" else ""
        shown = rounded(quantity, value)
        if shown is not None and shown.is_integer():
            shown = int(shown)
        lines.append(f"  {quantity:<26}{shown} {unit}".rstrip())
    return lines


def frame_as_json(frame: TicFrame) -> str:
    """A frame as one JSON line: its groups and the values they map to."""
    return json.dumps({
        "mode": str(frame.mode),
        "groups": [{"label": group.label, "value": group.value,
                    "horodate": group.horodate.text if group.horodate else None,
                    "ts_ms": group.horodate.ts_ms if group.horodate else None}
                   for group in frame.groups],
        "values": map_frame(frame).values,
    })


def describe_counters(line: TicLine) -> str:
    """The counters an installer reads to judge the line, wrapped at 80 columns."""
    health, stats = line.health, line.health.decoder
    text = (f"mode {health.mode or 'not found'} at {health.baudrate or '?'} baud: "
            f"frames {stats.frames}, groups {stats.groups}, bad checksums "
            f"{stats.bad_checksums}, malformed groups {stats.malformed_groups}, interrupted "
            f"frames {stats.interrupted_frames}, rejected frames {stats.rejected_frames}, "
            f"garbage bytes {stats.garbage_bytes}, speed switches {health.speed_switches}, "
            f"port errors {health.port_errors}")
    return "\n".join(textwrap.wrap(text, _WIDTH))


class _EventPrinter:
    """The line's sink: events are shown (identity, tariff, overpower), readings are not."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def put_readings(self, readings: list[Reading]) -> None:
        """Sampled readings: the frames themselves are shown instead."""

    def put_event(self, event: Event) -> None:
        """Show an event on one line."""
        if self.as_json:
            typer.echo(json.dumps({"event": event.kind, **event.attrs}))
            return
        attrs = " ".join(f"{key}={value}" for key, value in event.attrs.items())
        typer.echo(textwrap.shorten(f"event {event.kind} {attrs}", _WIDTH, placeholder="..."))


@app.command("listen")
def listen(
    port: Annotated[str, typer.Option("--serial", "--port", metavar="PORT",
                                      help="serial port of the TIC adapter")],
    mode: Annotated[str, typer.Option(help="auto, historic (1200 baud) or standard (9600)")
                    ] = "auto",
    count: Annotated[int | None, typer.Option(min=1, help="stop after N frames")] = None,
    timeout: Annotated[float | None, typer.Option(min=0, metavar="S",
                                                  help="stop after S seconds")] = None,
    readings: Annotated[bool, typer.Option("--readings",
                                           help="show mapped values, not groups")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Print every frame a Linky sends (its groups, or --readings), then the line's counters.

    Exits with status 1 when --count frames did not come before --timeout.
    """
    if mode not in _SPEEDS:
        raise typer.BadParameter("use auto, historic or standard", param_hint="--mode")
    seen = 0
    done = asyncio.Event()

    def on_frame(frame: TicFrame) -> None:
        nonlocal seen
        seen += 1
        if as_json:
            typer.echo(frame_as_json(frame))
        else:
            typer.echo("\n".join(describe_frame(seen, frame, readings=readings)))
        if count is not None and seen >= count:
            done.set()

    line = TicLine(TicSettings("linky", port, cast(ModeSetting, mode)), _EventPrinter(as_json),
                   on_frame=on_frame)
    line.check()
    typer.echo(f"listening on {port} ({mode}: {_SPEEDS[mode]}); Ctrl-C to stop", err=True)
    asyncio.run(_listen(line, done, timeout))
    if as_json:
        typer.echo(json.dumps({"counters": _counters(line)}))
    else:
        typer.echo(describe_counters(line))
    if count is not None and seen < count:
        raise typer.Exit(1)


def _counters(line: TicLine) -> dict[str, Any]:
    report = line.report()
    return {key: report[key] for key in report if key not in ("name", "port")}


async def _listen(line: TicLine, done: asyncio.Event, timeout: float | None) -> None:
    """Run ``line`` until ``done``, ``timeout`` or a signal."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    task = loop.create_task(line.run(), name="tic")
    try:
        async with asyncio.timeout(timeout):
            await done.wait()
    except TimeoutError:
        pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
