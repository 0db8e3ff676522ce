"""``edge-agent run``, ``status`` and ``config validate``: the gateway's lifecycle."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from edge_agent.config import GatewayConfig, load_config
from edge_agent.daemon import LOG_LEVELS, run_gateway
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.errors import ConfigError
from edge_agent.status import gateway_report, report_view
from edge_agent.tables import fitting_table

__all__ = ["config_app", "run", "status"]

config_app = typer.Typer(help="Gateway configuration files.", no_args_is_help=True)

ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", envvar="PONTON_CONFIG", help="Gateway TOML file.")
]

def run(
    config: ConfigPath,
    log_level: Annotated[str, typer.Option("--log-level", help=", ".join(LOG_LEVELS))] = "INFO",
) -> None:
    """Run the gateway until SIGTERM or Ctrl-C; it flushes the outbox and closes ports."""
    run_gateway(config, log_level)


def status(
    config: ConfigPath,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Outbox depth and oldest record per stream, and the health of every device.

    Exits 1 when the agent has never run with this data directory: there is nothing to show.
    """
    gateway = load_config(config).gateway
    report = gateway_report(gateway.data_dir, config)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
    elif report["agent_has_run"]:
        Console().print(report_view(report))
    else:
        Console(highlight=False, soft_wrap=True).print(
            f"the agent has not run yet with {gateway.data_dir}: no outbox, no status; start "
            f"it with `edge-agent run --config {shlex.quote(str(config))}`\n"
            f"{report['sync']['note']}", markup=False)
    if not report["agent_has_run"]:
        raise typer.Exit(1)


@config_app.command("validate")
def validate(
    path: Annotated[Path | None, typer.Argument(metavar="[FILE]", show_default=False)] = None,
    config_option: Annotated[Path | None, typer.Option(
        "--config", "-c", envvar="PONTON_CONFIG", help="Gateway TOML file.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="The devices and warnings as JSON.")] = False,
) -> None:
    """Check a gateway file: fields, buses, devices, profiles and quantities (all at once)."""
    chosen = path or config_option
    if chosen is None:
        raise ConfigError("give the gateway file: edge-agent config validate FILE")
    config = load_config(chosen)
    devices: list[dict[str, Any]] = []
    lines = {bus.name: bus.link_settings() for bus in config.buses}
    for device in config.devices:
        polled = PolledDevice.from_profile(
            device.name, device.unit, config.profile_of(device), interval_s=device.interval_s,
            quantities=device.quantities, min_silence_ms=device.min_silence_ms,
            line=lines[device.bus])
        devices.append({"device": device.name, "bus": device.bus, "unit": device.unit,
                        "profile": polled.profile.id, "interval_s": device.interval_s,
                        "requests_per_poll": len(polled.requests)})
    warnings = factory_setting_warnings(config)
    if as_json:
        typer.echo(json.dumps({"gateway": config.gateway.id, "buses": len(config.buses),
                               "tic": len(config.tic), "devices": devices,
                               "warnings": warnings}, indent=1))
        return
    console = Console()
    console.print(f"[green]ok[/]: gateway {config.gateway.id}, {len(config.buses)} bus(es), "
                  f"{len(config.devices)} device(s), {len(config.tic)} TIC line(s), data in "
                  f"{config.gateway.data_dir}")
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
    table = fitting_table("device", "bus", "unit", "profile", "every", "requests per poll")
    for row in devices:
        table.add_row(str(row["device"]), str(row["bus"]), str(row["unit"]), str(row["profile"]),
                      f"{row['interval_s']:g} s", str(row["requests_per_poll"]))
    console.print(table)


def factory_setting_warnings(config: GatewayConfig) -> list[str]:
    """Devices whose factory serial settings differ from their bus: reconfigure them first."""
    buses = {bus.name: bus for bus in config.buses}
    warnings = []
    for device in config.devices:
        bus = buses[device.bus]
        factory = config.profile_of(device).serial
        if bus.serial is None:
            continue
        if (factory.baudrate, factory.parity, factory.stopbits) != (
                bus.baudrate, bus.parity, bus.stopbits):
            warnings.append(
                f"{device.name}: {device.profile} ships at {factory.baudrate} "
                f"8{factory.parity}{factory.stopbits} but bus {bus.name} runs "
                f"at {bus.baudrate} 8{bus.parity}{bus.stopbits}; set the device to the bus's "
                "settings before connecting it")
    return warnings
