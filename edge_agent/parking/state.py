"""The car parks' state file: occupancy, counters, lane values and spot states across restarts.

A car park counted up to 180 vehicles must not read 0 after a restart, and the "COMPLET"
sign of a full one must light again. Rewritten whole and durably (0600) after each change;
a damaged file is set aside and the car parks start empty rather than keep the gateway down.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from edge_agent.durable import load_saved_states, replace_durably
from edge_agent.parking.model import Saved

__all__ = ["STATE_FILE", "load_state", "save_state"]

log = logging.getLogger("edge_agent.parking")

STATE_FILE = "car-parks-state.json"
_VERSION = 1


def load_state(path: Path) -> dict[str, Saved]:
    """The saved car parks by name; empty when there is no file or it is damaged (logged)."""
    return load_saved_states(path, _VERSION, "car_parks", Saved, log, "car park",
                             "every car park starts empty")


def save_state(path: Path, parks: dict[str, Saved]) -> None:
    """Replace the state file: a power cut leaves the old one or the new one, never half."""
    document = {"version": _VERSION,
                "car_parks": {name: dataclasses.asdict(saved) for name, saved in parks.items()}}
    replace_durably(path, json.dumps(document, indent=1).encode())
