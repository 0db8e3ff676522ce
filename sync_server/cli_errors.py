"""How ``sync-server`` ends on a refusal: one ``error:`` line on stderr, exit status 2.

The hub's own refusals (HubError) and the command line's usage errors (a missing option, a
bad value, no such option) read the same, with at most a hint of where the help is: no
boxed panel, no usage block, never a traceback. Running without a subcommand still prints
the help.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

# Typer vendors Click and names its usage errors only there.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from sync_server.errors import HubError

__all__ = ["fail", "run_cli"]


def fail(message: str, hint: str = "") -> NoReturn:
    """Print ``error: MESSAGE`` (one line, and ``hint`` on a second if given) and exit 2."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)  # noqa: T201
    if hint:
        print(hint, file=sys.stderr)  # noqa: T201
    sys.exit(2)


def run_cli(app: typer.Typer) -> NoReturn:
    """Run ``app`` on ``sys.argv`` and exit with its status, refusals as ``fail`` prints them."""
    try:
        status = app(prog_name="sync-server", standalone_mode=False)
    except HubError as exc:
        fail(exc.detail)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "sync-server"
        fail(_sentence(exc.format_message()), f"Try '{command} --help' for help.")
    except typer.TyperException as exc:  # a file Click could not open, and the like
        fail(exc.format_message())
    sys.exit(status if isinstance(status, int) else 0)


def _sentence(message: str) -> str:
    """Click's messages start with a capital; ours, after ``error:``, do not."""
    return message[:1].lower() + message[1:] if message[1:2].islower() else message
