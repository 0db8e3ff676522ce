"""Turning validation problems into messages an installer can act on."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.schema import Invalid, Problem, fields_of
from edge_agent.yaml_source import LocatedYaml

__all__ = ["describe_validation_error", "known_field_names", "located", "validation_problems"]


def known_field_names(*models: type[msgspec.Struct]) -> set[str]:
    """Every field name of ``models`` and of the models nested in them."""
    names: set[str] = set()
    pending: list[Any] = list(models)
    seen: set[Any] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        if isinstance(model, type) and issubclass(model, msgspec.Struct):
            fields = fields_of(model)
            names.update(fields)
            pending += fields.values()
        else:
            pending += getattr(model, "__args__", ())
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


#: What to write instead, by the type a field expected: ``{key}`` is the field, ``{value}`` the
#: input.
_FIXES = {
    "int": "'{value}' is not a whole number; write one without quotes, e.g. {key} = 3",
    "float": "'{value}' is not a number; write one without quotes, e.g. {key} = 5",
    "bool": "'{value}' is not true or false; write {key} = true (no quotes)",
    "str": "{value} is not text; put it in quotes, e.g. {key} = \"{value}\"",
    "array": "{value} is not a list; write {key} = [...]",
    "object": "{value} is not a table; write it as [{key}] or {key} = {{ ... }}",
    "Path": "{value} is not a path; put it in quotes, e.g. {key} = \"/var/lib/ponton\"",
}


def _message(problem: Problem, fields: set[str]) -> str:
    """The problem in words with what to write instead, never the parser's jargon."""
    location = problem.location
    key = str(location[-1]) if location else "value"
    if problem.kind == "unknown" and location:
        close = difflib.get_close_matches(key, sorted(fields), n=1)
        return "unknown field" + (f"; did you mean '{close[0]}'?" if close
                                  else "; remove it (see docs/configuration.md)")
    if problem.kind == "missing":
        return f"Field required; add {key} = ..."
    if problem.kind in _FIXES:
        return _FIXES[problem.kind].format(key=key, value=problem.value)
    return problem.message


def validation_problems(
    error: Invalid, path: Path, source: LocatedYaml | None, *models: type[msgspec.Struct],
    data: Any = None,
) -> list[str]:
    """One ``file:line: field.path: message`` per problem, each saying what to write."""
    fields = known_field_names(*models)
    return [f"{located(path, source, problem.location, data)}: {_message(problem, fields)}"
            for problem in error.problems]


def describe_validation_error(
    error: Invalid, path: Path, source: LocatedYaml | None, *models: type[msgspec.Struct],
    data: Any = None,
) -> str:
    """One line per problem: ``file:line: field.path: message (did you mean …)``.

    ``source`` maps fields to lines; without it lines are left out. ``data`` is the parsed
    file, so list entries with a ``name`` are shown by that name.
    """
    problems = validation_problems(error, path, source, *models, data=data)
    return "\n".join([f"{path}: {len(problems)} problem(s):", *(f"  {p}" for p in problems)])
