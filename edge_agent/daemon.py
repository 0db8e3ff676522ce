"""``edge-agent run``: the gateway process, as a service manager starts it.

This path imports neither typer nor rich: a gateway runs for months on a Raspberry Pi, and the
installer's table and prompt libraries would cost it about 4 MiB of memory for nothing. The
launcher (edge_agent/launcher.py) sends ``run`` here and every other command to the CLI.
Under systemd (packaging/systemd/ponton-agent.service) it reports readiness and pings the
watchdog from the gateway's event loop (edge_agent/notify.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from edge_agent.codecs.log_lines import LOG_FORMATS, LogFormat
from edge_agent.config import load_config
from edge_agent.errors import ConfigError, EdgeError, first_edge_error
from edge_agent.logs import configure_logging
from edge_agent.memory import single_arena
from edge_agent.notify import ServiceNotifier, keep_watchdog, watchdog_interval_s
from edge_agent.runtime import Gateway

__all__ = ["LOG_LEVELS", "fail", "main", "report_to_service_manager", "run_gateway"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def run_gateway(config: Path, log_level: str = "INFO", log_format: LogFormat = "plain") -> None:
    """Run the gateway until SIGTERM or Ctrl-C; it flushes the outbox and closes ports."""
    if log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be DEBUG, INFO, WARNING or ERROR, not '{log_level}'")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"--log-format must be plain or json, not '{log_format}'")
    configure_logging(log_level, log_format)
    single_arena()
    gateway_config = load_config(config)

    notifier = ServiceNotifier.from_environment()

    async def run_until_signalled() -> None:
        gateway = Gateway(gateway_config, config)  # RTU buses' pymodbus clients need the loop
        stop = asyncio.Event()

        def request_stop() -> None:
            notifier.notify("STOPPING=1")
            stop.set()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, request_stop)
        metrics = None
        if gateway_config.metrics is not None:
            # prometheus-client is imported only by a gateway that serves metrics.
            from edge_agent.metrics import MetricsServer  # noqa: PLC0415

            metrics = MetricsServer(gateway_config.metrics.address, lambda: gateway.last_status)
        supervision = asyncio.create_task(report_to_service_manager(gateway, notifier))
        try:
            await gateway.run(stop)
        finally:
            supervision.cancel()
            if metrics is not None:
                metrics.close()

    try:
        asyncio.run(run_until_signalled())
    except ExceptionGroup as group:  # raised out of the gateway's task group
        first = first_edge_error(group)
        if first is None:
            raise
        raise first from group


async def report_to_service_manager(gateway: Gateway, notifier: ServiceNotifier) -> None:
    """``READY=1`` once the gateway runs, then ``WATCHDOG=1`` from its loop until cancelled.

    Ready means the outbox is open and every task started: systemd holds units ordered
    after this one until then, and a gateway that never gets there is restarted.
    """
    await gateway.started.wait()
    notifier.notify("READY=1", f"STATUS=gateway {gateway.config.gateway.id} running")
    interval = watchdog_interval_s()
    if interval is not None:
        await keep_watchdog(notifier, interval)


def fail(exc: EdgeError) -> NoReturn:
    """One ``error:`` line on stderr and exit status 2: what every user error gets.

    Plain text on purpose: the same line for `run` and for the installer's commands, and
    one line a log collector or grep reads whole.
    """
    print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the one line a user error gets
    sys.exit(2)


def main(argv: Sequence[str]) -> None:
    """``edge-agent run [--config FILE] [--log-level LEVEL]`` (``PONTON_CONFIG`` for the file)."""
    parser = argparse.ArgumentParser(prog="edge-agent run", description=run_gateway.__doc__)
    parser.add_argument("--config", "-c", type=Path, default=os.environ.get("PONTON_CONFIG"),
                        help="gateway TOML file (or PONTON_CONFIG)")
    parser.add_argument("--log-level", default="INFO", help=", ".join(LOG_LEVELS))
    parser.add_argument("--log-format", choices=LOG_FORMATS,
                        default=os.environ.get("PONTON_LOG_FORMAT", "plain"),
                        help="plain lines, or one JSON object per line (or PONTON_LOG_FORMAT)")
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("give the gateway file: --config FILE (or set PONTON_CONFIG)")
    try:
        run_gateway(Path(args.config), args.log_level, args.log_format)
    except EdgeError as exc:
        fail(exc)
