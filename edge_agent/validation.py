"""Turning pydantic validation errors into messages an installer can act on."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge_agent.yaml_source import LocatedYaml

__all__ = ["describe_validation_error", "known_field_names", "located", "validation_problems"]


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


def located(path: Path, source: LocatedYaml | None, location: tuple[str | int, ...],
            data: Any = None) -> str:
    """``gateway.toml:12: devices[berth-a3].unit``: where a problem is, for every message."""
    line = source.line_of(location) if source else None
    where = f"{path.name}:{line}" if line else path.name
    return f"{where}: {_label(location, data if data is not None else source and source.data)}"


#: What to write instead, by pydantic error type: ``{key}`` is the field, ``{value}`` the input.
_FIXES = {
    "int_parsing": "'{value}' is not a whole number; write one without quotes, e.g. {key} = 3",
    "int_type": "'{value}' is not a whole number; write one without quotes, e.g. {key} = 3",
    "int_from_float": "{value} is not a whole number; e.g. {key} = 3",
    "float_parsing": "'{value}' is not a number; write one without quotes, e.g. {key} = 5",
    "float_type": "'{value}' is not a number; write one without quotes, e.g. {key} = 5",
    "bool_parsing": "'{value}' is not true or false; write {key} = true (no quotes)",
    "bool_type": "'{value}' is not true or false; write {key} = true (no quotes)",
    "string_type": "{value} is not text; put it in quotes, e.g. {key} = \"{value}\"",
    "list_type": "{value} is not a list; write {key} = [...]",
    "dict_type": "{value} is not a table; write it as [{key}] or {key} = {{ ... }}",
}


def _message(item: Any, location: tuple[str | int, ...], fields: set[str]) -> str:
    """The problem in words with what to write instead, never pydantic's parser jargon."""
    kind = item["type"]
    key = str(location[-1]) if location else "value"
    if kind == "extra_forbidden" and location:
        close = difflib.get_close_matches(key, sorted(fields), n=1)
        return "unknown field" + (f"; did you mean '{close[0]}'?" if close
                                  else "; remove it (see docs/configuration.md)")
    if kind == "missing":
        return f"Field required; add {key} = ..."
    if kind in _FIXES:
        return _FIXES[kind].format(key=key, value=item.get("input"))
    return str(item["msg"]).removeprefix("Value error, ")


def validation_problems(
    error: ValidationError, path: Path, source: LocatedYaml | None, *models: type[BaseModel],
    data: Any = None,
) -> list[str]:
    """One ``file:line: field.path: message`` per problem, each saying what to write."""
    fields = known_field_names(*models)
    problems = []
    for item in error.errors():
        location = tuple(part for part in item["loc"] if not str(part).startswith("function-"))
        problems.append(f"{located(path, source, location, data)}: "
                        f"{_message(item, location, fields)}")
    return problems


def describe_validation_error(
    error: ValidationError, path: Path, source: LocatedYaml | None, *models: type[BaseModel],
    data: Any = None,
) -> str:
    """One line per problem: ``file:line: field.path: message (did you mean …)``.

    ``source`` maps fields to lines; without it lines are left out. ``data`` is the parsed
    file, so list entries with a ``name`` are shown by that name.
    """
    problems = validation_problems(error, path, source, *models, data=data)
    return "\n".join([f"{path}: {len(problems)} problem(s):", *(f"  {p}" for p in problems)])
