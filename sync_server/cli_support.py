"""What every ``sync-server`` command shares: its settings, the engine, durations, output.

The root callback of sync_server/cli.py fills ``SETTINGS`` from flags and ``PONTON_HUB_*``
variables; command modules (cli.py, cli_access.py) read them through these helpers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import require_head
from sync_server.errors import BadRequest
from sync_server.keys import SigningKey, load_signing_key
from sync_server.settings import HubSettings

__all__ = ["SETTINGS", "hub_engine", "hub_settings", "parse_duration", "print_table",
           "signing_key", "when"]

#: Filled by the root callback before any command runs.
SETTINGS: dict[str, Any] = {}
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def hub_settings() -> HubSettings:
    """The settings the command line gave, checked."""
    try:
        return HubSettings(**SETTINGS)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise BadRequest(f"invalid settings: {problems}") from None


def hub_engine(*, at_head: bool = True) -> Engine:
    """The hub's database, refused unless at the code's schema revision (unless told)."""
    engine = create_hub_engine(hub_settings().resolved_database_url)
    if at_head:
        require_head(engine)
    return engine


def signing_key() -> SigningKey:
    """The hub's signing key (created in demo mode only)."""
    settings = hub_settings()
    return load_signing_key(settings.resolved_signing_key_file, demo=settings.demo)


def parse_duration(text: str) -> int:
    """Seconds in ``30m``, ``24h``, ``7d`` or ``3600s``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise BadRequest(f"duration {text!r} is not like 30m, 24h, 7d or 3600s")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def when(ms: int | None) -> str:
    """A UTC timestamp in ms as operators read it, or ``never``."""
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def print_table(table: Table) -> None:
    """A table, as wide as the terminal, or 200 columns when piped."""
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(table)
