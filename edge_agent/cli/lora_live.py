"""``edge-agent lora listen`` and ``lora send``: the live side of the LoRa commands.

``listen`` runs the agent's own LoRa source against the broker, as a spectator with a short
session of its own (the agent's persistent session and its messages are left alone), and
prints what the agent would store. ``send`` queues a downlink through ChirpStack.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.lora import parse_hex
from edge_agent.config import GatewayConfig, LoraConfig, load_config
from edge_agent.drivers.lora.source import LoraSource
from edge_agent.errors import ConfigError, TransportError
from edge_agent.quantities import lookup_quantity, rounded
from edge_agent.records import Event, Reading

__all__ = ["listen", "send"]

ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", envvar="PONTON_CONFIG", help="Gateway TOML file.")
]
SourceName = Annotated[str | None, typer.Option(
    "--source", metavar="NAME", help="The [[lora]] section, when the file has several.")]


class _PrintingSink:
    """Prints records instead of storing them; acknowledges each message at once."""

    def __init__(self, as_json: bool, on_message: Callable[[], None]) -> None:
        self.as_json = as_json
        self.on_message = on_message

    def put_readings(self, readings: list[Reading]) -> None:
        for reading in readings:
            spec = lookup_quantity(reading.quantity)
            value = rounded(reading.quantity, reading.value)
            if self.as_json:
                typer.echo(json.dumps({"ts_ms": reading.ts_ms, "device": reading.device,
                                       "quantity": reading.quantity, "value": value}))
            else:
                unit = spec.unit if spec else ""
                typer.echo(f"{_clock(reading.ts_ms)}  {reading.device:<16} "
                           f"{reading.quantity:<24} {value:g} {unit}")

    def put_event(self, event: Event) -> None:
        if self.as_json:
            typer.echo(json.dumps({"ts_ms": event.ts_ms, "device": event.device,
                                   "event": event.kind, "attrs": event.attrs}))
        else:
            attrs = " ".join(f"{key}={value}" for key, value in event.attrs.items())
            typer.echo(f"{_clock(event.ts_ms)}  {event.device:<16} {event.kind} {attrs}"[:200])

    def put_delivered(self, _keys: list[str], on_durable: Callable[[], object]) -> None:
        on_durable()
        self.on_message()


def _clock(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000).strftime("%H:%M:%S")


def _section(config: GatewayConfig, name: str | None) -> LoraConfig:
    sections = {section.name: section for section in config.lora}
    if not sections:
        raise ConfigError("the gateway file has no [[lora]] section")
    if name is None and len(sections) == 1:
        return next(iter(sections.values()))
    if name not in sections:
        raise ConfigError(f"give --source: one of {', '.join(sorted(sections))}")
    return sections[name]


def listen(
    config_path: ConfigPath,
    source_name: SourceName = None,
    count: Annotated[int | None, typer.Option(min=1, help="stop after N messages")] = None,
    timeout: Annotated[float | None, typer.Option(min=0, metavar="S",
                                                  help="stop after S seconds")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Print live uplinks decoded as the agent would store them, then the counters.

    Exits with status 1 when --count messages did not come before --timeout.
    """
    config = load_config(config_path)
    section = _section(config, source_name)
    seen = asyncio.run(_listen(config, section, count, timeout, as_json))
    if count is not None and seen < count:
        raise typer.Exit(1)


async def _listen(config: GatewayConfig, section: LoraConfig, count: int | None,
                  timeout: float | None, as_json: bool) -> int:
    done = asyncio.Event()
    seen = 0

    def on_message() -> None:
        nonlocal seen
        seen += 1
        if count is not None and seen >= count:
            done.set()

    profiles = config.lora_profiles()
    source = LoraSource(section, {d.profile: profiles[d.profile] for d in section.devices},
                        _PrintingSink(as_json, on_message), gateway_id=config.gateway.id,
                        spectator=True)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    async def say_listening() -> None:
        # Once the broker acknowledged the subscription: an uplink published from then on is
        # shown, one published before may not be.
        await source.session.subscribed.wait()
        typer.echo(f"listening to {section.broker} for {len(section.application_ids)} "
                   "application(s); Ctrl-C to stop", err=True)

    source.session.start()
    typer.echo(f"connecting to {section.broker} ...", err=True)
    announcer = asyncio.create_task(say_listening())
    try:
        async with asyncio.timeout(timeout):
            await done.wait()  # Ctrl-C stops it while still connecting too
    except TimeoutError:
        pass
    finally:
        announcer.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await source.session.close()
    report = source.report()
    typer.echo(f"messages {report['messages']}, unknown devices {report['unknown_devices']}, "
               f"malformed {report['malformed']}, decode errors {report['decode_errors']}, "
               f"duplicates {report['duplicates']}", err=True)
    return seen


def send(
    payload: Annotated[str, typer.Argument(metavar="HEX", help="the downlink's bytes in hex")],
    device: Annotated[str, typer.Option("--device", "-d", help="A [[lora.devices]] name.")],
    fport: Annotated[int, typer.Option("--fport", min=1, max=223, metavar="N")],
    config_path: ConfigPath,
    confirmed: Annotated[bool, typer.Option(help="Ask the device to confirm it.")] = False,
    source_name: SourceName = None,
) -> None:
    """Queue a downlink for a sensor through ChirpStack (sent at its next uplink)."""
    config = load_config(config_path)
    section = _section(config, source_name)
    data = parse_hex(payload)
    ident = asyncio.run(_send(config, section, device, fport, data, confirmed))
    typer.echo(f"queued downlink {ident} for {device} (fPort {fport}, {len(data)} bytes); "
               "ChirpStack sends it at the device's next uplink")


async def _send(config: GatewayConfig, section: LoraConfig, device: str, fport: int,
                data: bytes, confirmed: bool) -> str:
    profiles = config.lora_profiles()
    source = LoraSource(section, {d.profile: profiles[d.profile] for d in section.devices},
                        _PrintingSink(False, lambda: None), gateway_id=config.gateway.id,
                        spectator=True)
    if device not in source.device_names:
        names = ", ".join(sorted(source.device_names)) or "none"
        raise ConfigError(f"no LoRa device named {device!r} in [[lora]] {section.name}; "
                          f"its devices: {names}")
    source.session.start()
    try:
        try:
            await asyncio.wait_for(source.session.connected.wait(), 10)
        except TimeoutError:
            why = source.session.last_error or "not connected"
            raise TransportError(f"no answer in 10 s ({why}); is the broker running?",
                                 bus=section.broker) from None
        return await source.send_downlink(device, fport, data, confirmed, wait=True)
    finally:
        await source.session.close()
