"""YAML loading that remembers where each value came from, for errors users can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["LocatedYaml", "load_located_yaml"]

Location = tuple[str | int, ...]


class LocatedYaml:
    """Parsed YAML data plus the line of every key path in it."""

    def __init__(self, data: Any, lines: dict[Location, int]) -> None:
        self.data = data
        self._lines = lines

    def line_of(self, path: Location) -> int | None:
        """Line (1-based) of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


class _DuplicateKeyError(ValueError):
    pass


def _walk(node: yaml.Node, path: Location, lines: dict[Location, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str | int, int] = {}
        for key_node, value_node in node.value:
            # An integer key (an fPort) is looked up as the int the parsed data holds.
            key = (yaml.safe_load(key_node.value) if key_node.tag == "tag:yaml.org,2002:int"
                   else key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise _DuplicateKeyError(
                    f"line {line}: key '{key}' appears twice (first at line {first_line[key]}); "
                    "keep one"
                )
            first_line[key] = line
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def load_located_yaml(path: Path) -> LocatedYaml:
    """Parse ``path``; ValueError (with the line) on bad syntax or duplicated keys."""
    try:
        with path.open(encoding="utf-8") as stream:
            node = yaml.compose(stream, Loader=yaml.SafeLoader)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc
    lines: dict[Location, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml(data, lines)
