"""The line of each key in a gateway TOML file (tomllib keeps no positions).

Enough of TOML for the files an installer writes: ``[table]`` and ``[[array]]`` headers
(nested arrays such as ``[[lora.devices]]`` belong to the last ``[[lora]]``), and ``key =``
lines, dotted keys included. A value's line is the line of its key; an error inside an inline
table or a multi-line list points at the key that opens it.
"""

from __future__ import annotations

import re
from typing import Any

from edge_agent.yaml_source import LocatedYaml

__all__ = ["locate_toml"]

Location = tuple[str | int, ...]

_KEY = re.compile(r'^((?:[A-Za-z0-9_-]+|"[^"]*")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"))*)\s*=')


def _keys(dotted: str) -> list[str]:
    return [part.strip().strip('"') for part in dotted.split(".")]


def _resolve(keys: list[str], arrays: dict[Location, int]) -> Location:
    """A table's key path with the index of the current entry of each array of tables."""
    location: Location = ()
    for key in keys:
        location = (*location, key)
        if location in arrays:
            location = (*location, arrays[location])
    return location


def locate_toml(text: str, data: Any) -> LocatedYaml:
    """``data`` (parsed from ``text``) with the line of every table, entry and key."""
    lines: dict[Location, int] = {}
    arrays: dict[Location, int] = {}
    current: Location = ()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("[[") and "]]" in line:
            keys = _keys(line[2:line.index("]]")])
            base = (*_resolve(keys[:-1], arrays), keys[-1])
            arrays[base] = arrays.get(base, -1) + 1
            lines.setdefault(base, number)
            current = (*base, arrays[base])
            lines[current] = number
        elif line.startswith("[") and "]" in line:
            current = _resolve(_keys(line[1:line.index("]")]), arrays)
            lines[current] = number
        elif match := _KEY.match(line):
            lines[(*current, *_keys(match.group(1)))] = number
    return LocatedYaml(data, lines)
