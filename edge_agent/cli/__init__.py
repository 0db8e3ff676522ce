"""``edge-agent``: the installer's command line.

Library code raises EdgeError; commands let it through and :func:`main` turns it into one
clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

# typer vendors click: these are the classes its parser raises (typer re-exports only some).
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from edge_agent import __version__
from edge_agent.cli import (
    access,
    gateway,
    lora,
    lora_live,
    modbus,
    profiles,
    readers,
    rules,
    sync,
    tic,
)
from edge_agent.daemon import fail
from edge_agent.errors import EdgeError
from edge_agent.logs import configure_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="edge-agent",
    help="Ponton edge agent: read field devices, keep every record in a durable outbox, "
    "push it to the hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.command("run")(gateway.run)
app.command("status")(gateway.status)
app.command("provision")(sync.provision)
app.command("sync")(sync.sync)
app.add_typer(gateway.config_app, name="config")
app.add_typer(profiles.app, name="profiles")
app.add_typer(modbus.devices_app, name="devices")
app.add_typer(modbus.modbus_app, name="modbus")
app.add_typer(readers.app, name="reader")
app.add_typer(access.badge_app, name="badge")
app.add_typer(access.gate_app, name="gate")
app.add_typer(access.policy_app, name="policy")
lora.app.command("listen")(lora_live.listen)
lora.app.command("send")(lora_live.send)
app.add_typer(lora.app, name="lora")
app.add_typer(rules.app, name="rules")
app.add_typer(tic.app, name="tic")


@app.command("version")
def version() -> None:
    """Print the agent's version."""
    typer.echo(__version__)


def main() -> None:
    """The installer's commands (``edge-agent run`` normally goes to edge_agent.daemon).

    A usage error is one ``error:`` line and a ``Try`` line, exit status 2, like any user
    error: no boxed panel, which a Pi's console or a log collector shows as noise.
    """
    configure_logging("WARNING")
    try:
        outcome = app(prog_name="edge-agent", standalone_mode=False)
    except EdgeError as exc:
        fail(exc)
    except NoArgsIsHelpError as exc:  # `edge-agent` or `edge-agent devices` alone: the help
        typer.echo(exc.format_message())
        sys.exit(0)
    except UsageError as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)  # noqa: T201
        if exc.ctx is not None:
            print(f"Try '{exc.ctx.command_path} --help' for help.", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    except ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)  # noqa: T201
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(outcome if isinstance(outcome, int) else 0)  # typer.Exit(code), --help: an int
