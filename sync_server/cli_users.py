"""``sync-server user``: the dashboard's accounts (staff, operators, admins).

Passwords never go on the command line (it shows in ``ps`` and shell history): they are
typed twice at a prompt, or read from standard input with ``--password-stdin`` for scripts.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sync_server.cli_output import JsonFlag, minute, print_json, print_table
from sync_server.cli_support import hub_engine, parse_duration
from sync_server.errors import BadRequest
from sync_server.ui.accounts import (
    ROLES,
    add_user,
    new_signin_link,
    remove_user,
    user_list,
)

__all__ = ["user_app"]

user_app = typer.Typer(help="Dashboard accounts (sign in at /ui).", no_args_is_help=True)

_Name = Annotated[str, typer.Argument(metavar="NAME", help="The name they sign in with.")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def user_add(
    name: _Name,
    territory: Annotated[str | None, typer.Option(help="The territory they work in.")] = None,
    role: Annotated[str | None, typer.Option(
        help="staff (marina desk: badges, sessions, gates, alarms) or operator (the whole "
             "territory).")] = None,
    admin_user: Annotated[bool, typer.Option("--admin", help="Every territory.")] = False,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input (one line).")]
    = False,
) -> None:
    """Create a dashboard account with a password (at least 10 characters)."""
    if admin_user in (territory is not None, role is not None):
        raise BadRequest("give --territory T --role staff|operator, or --admin alone")
    chosen = "admin" if admin_user else str(role)
    if chosen not in ROLES or (chosen == "admin") != admin_user:
        raise BadRequest(f"--role must be staff or operator, got {role!r}")
    add_user(hub_engine(), name, chosen, territory, _password(password_stdin))
    where = "every territory" if territory is None else territory
    typer.echo(f"user {name} added ({chosen}, {where}); sign in at /ui")


@user_app.command("list")
def user_list_command(as_json: JsonFlag = False) -> None:
    """Accounts: name, role, territory, created (never the password)."""
    rows = user_list(hub_engine())
    if as_json:
        print_json(rows)
        return
    print_table(("name", "role", "territory", "created"),
                ((row["name"], row["role"], row["territory"] or "(all)",
                  minute(row["created_ms"])) for row in rows))


@user_app.command("remove")
def user_remove(name: _Name) -> None:
    """Delete an account; its sessions end at once."""
    remove_user(hub_engine(), name)
    typer.echo(f"user {name} removed")


@user_app.command("link")
def user_link(
    name: _Name,
    url: Annotated[str, typer.Option(help="The hub as the browser reaches it.")]
    = "http://127.0.0.1:8600",
    expires_in: Annotated[str, typer.Option(help="Lifetime: 15m, 1h.")] = "15m",
) -> None:
    """Print a one-time sign-in link for an account (say, for a first sign-in)."""
    code = new_signin_link(hub_engine(), name, parse_duration(expires_in))
    typer.echo(f"{url.rstrip('/')}/ui/signin/link/{code}")
