"""The rules' state file: which alarms are raised and which relays they hold, across restarts.

Relays are all off when the gateway starts, so a flood-road barrier closed by a raised alarm
would open at the next restart unless the alarm's state is remembered and its latch applied
again. The file is small and rewritten whole, atomically (mode 0600, fsync'd), each time an
alarm changes; a damaged file is logged and set aside, and the rules start from scratch
rather than keep the gateway from starting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from edge_agent.durable import replace_durably
from edge_agent.rules.engine import SavedRule

__all__ = ["STATE_FILE", "load_state", "save_state"]

log = logging.getLogger("edge_agent.rules")

STATE_FILE = "rules-state.json"
_VERSION = 1
_SAVED = TypeAdapter(SavedRule)


def load_state(path: Path) -> dict[str, SavedRule]:
    """The saved rule states; empty when there is no file or it is damaged (logged)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        return _damaged(path, str(exc))
    if not isinstance(document, dict) or document.get("version") != _VERSION or \
            not isinstance(document.get("rules"), dict):
        return _damaged(path, f"expected {{\"version\": {_VERSION}, \"rules\": {{...}}}}")
    saved: dict[str, SavedRule] = {}
    for name, item in document["rules"].items():
        try:
            saved[name] = _SAVED.validate_python(item)
        except ValidationError as exc:
            log.error("%s: state of rule %s is unreadable (%d problem(s)); it starts afresh",
                      path, name, exc.error_count())
    return saved


def save_state(path: Path, rules: dict[str, SavedRule],
               latches: dict[tuple[str, int], bool]) -> None:
    """Replace the state file: a power cut leaves the old one or the new one, never half."""
    document: dict[str, Any] = {
        "version": _VERSION,
        "rules": {name: dataclasses.asdict(saved) for name, saved in rules.items()},
        "latches": [{"board": board, "channel": channel, "on": on}
                    for (board, channel), on in sorted(latches.items())],
    }
    replace_durably(path, json.dumps(document, indent=1).encode())


def _damaged(path: Path, why: str) -> dict[str, SavedRule]:
    aside = path.with_name(path.name + ".damaged")
    with contextlib.suppress(OSError):
        os.replace(path, aside)
    log.error("%s is damaged (%s): set aside as %s; every rule starts cleared and no latch "
              "is applied again", path, why, aside.name)
    return {}
