"""Where the store is, on every ``sync-server`` command: before or after the subcommand.

The root callback takes ``--data-dir``, ``--database-url`` and ``--signing-key`` (and their
``PONTON_HUB_*`` variables); an operator naturally types them after the command too
(``sync-server gateway list --data-dir /srv/hub``), so every command accepts them there
as well, and the later one wins, as on any command line.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sync_server.cli_support import SETTINGS

__all__ = ["accept_store_options"]

#: The options of the root callback that every command accepts, by parameter and setting name.
_STORE_OPTIONS = {"data_dir": "data_dir", "database_url": "database_url",
                 "signing_key": "signing_key_file"}

_HELP = " (also accepted before the command)"
_PARAMETERS = [
    inspect.Parameter("data_dir", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[Path | None, typer.Option(
                          help="Where the SQLite store and the key live" + _HELP + ".")]),
    inspect.Parameter("database_url", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          help="postgresql://USER@HOST/DB" + _HELP + ".")]),
    inspect.Parameter("signing_key", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[Path | None, typer.Option(
                          help="The signing key's PEM file" + _HELP + ".")]),
]


def accept_store_options(group: typer.Typer) -> None:
    """Give every command of ``group`` (and of its subgroups) the store options."""
    for command in group.registered_commands:
        if command.callback is not None:
            command.callback = _with_store_options(command.callback)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            accept_store_options(sub.typer_instance)


def _with_store_options(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` taking the store options too; given ones override the root's settings."""

    @functools.wraps(callback)
    def command(*args: Any, **kwargs: Any) -> Any:
        for parameter, setting in _STORE_OPTIONS.items():
            value = kwargs.pop(parameter)
            if value is not None:
                SETTINGS[setting] = value
        return callback(*args, **kwargs)

    signature = inspect.signature(callback, eval_str=True)
    command.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *_PARAMETERS])
    return command
