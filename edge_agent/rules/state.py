"""The rules' state file: which alarms are raised and which relays they hold, across restarts.

Relays are all off when the gateway starts, so a flood-road barrier closed by a raised alarm
would open at the next restart unless the alarm's state is remembered and its latch applied
again. The file is small and rewritten whole, atomically (mode 0600, fsync'd), each time an
alarm changes; a damaged file is logged and set aside, and the rules start from scratch
rather than keep the gateway from starting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from edge_agent.durable import load_saved_states, replace_durably
from edge_agent.rules.engine import SavedRule

__all__ = ["STATE_FILE", "load_state", "save_state"]

log = logging.getLogger("edge_agent.rules")

STATE_FILE = "rules-state.json"
_VERSION = 1


def load_state(path: Path) -> dict[str, SavedRule]:
    """The saved rule states; empty when there is no file or it is damaged (logged)."""
    return load_saved_states(path, _VERSION, "rules", SavedRule, log, "rule",
                             "every rule starts cleared and no latch is applied again")


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

