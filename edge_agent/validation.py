"""Turning pydantic validation errors into messages an installer can act on."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge_agent.yaml_source import LocatedYaml

__all__ = ["describe_validation_error", "known_field_names"]


def known_field_names(*models: type[BaseModel]) -> set[str]:
    """Every field name of ``models`` and of the models nested in them."""
    names: set[str] = set()
    pending = list(models)
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            names.add(name)
            annotation = field.annotation
            for candidate in (annotation, *getattr(annotation, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    pending.append(candidate)
    return names


def _label(location: tuple[str | int, ...], data: Any) -> str:
    """``devices[berth-a3].unit`` rather than ``devices.2.unit``: entries named by their name."""
    parts: list[str] = []
    node = data
    for part in location:
        entry = _child(node, part)
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(part, int) and isinstance(name, str) and parts:
            parts[-1] += f"[{name}]"
        else:
            parts.append(str(part))
        node = entry
    return ".".join(parts) or "(top level)"


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def describe_validation_error(
    error: ValidationError, path: Path, source: LocatedYaml | None, *models: type[BaseModel],
    data: Any = None,
) -> str:
    """One line per problem: ``file:line: field.path: message (did you mean …)``.

    ``source`` maps fields to lines; without it (TOML keeps no positions) lines are left out.
    ``data`` is the parsed file, so list entries with a ``name`` are shown by that name.
    """
    fields = known_field_names(*models)
    lines = [f"{path}: {error.error_count()} problem(s):"]
    for item in error.errors():
        location = tuple(part for part in item["loc"] if not str(part).startswith("function-"))
        line = source.line_of(location) if source else None
        where = f"{path.name}:{line}" if line else path.name
        dotted = _label(location, data if data is not None else source and source.data)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and location:
            close = difflib.get_close_matches(str(location[-1]), sorted(fields), n=1)
            message = "unknown field" + (f"; did you mean '{close[0]}'?" if close else "")
        lines.append(f"  {where}: {dotted}: {message}")
    return "\n".join(lines)
