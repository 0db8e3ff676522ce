"""What every ``sync-server`` command shares: its settings, the engine, the key, durations.

The root callback of sync_server/cli.py fills ``SETTINGS`` from flags and ``PONTON_HUB_*``
variables; command modules (cli.py, cli_access.py …) read them through these helpers,
and print through sync_server/cli_output.py.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from sync_server.db.engine import open_hub_engine
from sync_server.db.migrate import require_head
from sync_server.errors import BadRequest
from sync_server.keys import (
    BadgeSeal,
    SigningKey,
    load_badge_seal,
    load_signing_key,
    with_badge_seal,
)
from sync_server.settings import HubSettings

__all__ = ["SETTINGS", "badge_seal", "hub_engine", "hub_settings", "parse_duration",
           "signing_key"]

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


def hub_engine() -> Engine:
    """The hub's existing database, refused unless there and at the code's schema revision.

    Only ``sync-server db upgrade`` creates a store; every other command that finds none says
    where it looked, and leaves no empty file behind to be mistaken for the hub.
    """
    engine = open_hub_engine(hub_settings().resolved_database_url)
    require_head(engine)
    return with_badge_seal(engine, badge_seal())


def badge_seal() -> BadgeSeal | None:
    """The hub's badge seal (created in demo mode); None while there is none, so commands
    that touch no badge key run before ``sync-server keys init``."""
    settings = hub_settings()
    if not settings.demo and not settings.badge_seal_file.exists():
        return None
    return load_badge_seal(settings.badge_seal_file, demo=settings.demo)


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
