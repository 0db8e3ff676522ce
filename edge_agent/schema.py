"""Parsed files (TOML, YAML, JSON) into frozen msgspec structs, with every problem located.

msgspec validates fast and imports light (4 MiB where pydantic took 19: docs/benchmarks.md),
but stops at the first problem. An installer fixing a gateway file wants all of them at once,
so on failure each field and each entry is converted on its own to find every problem; that
second pass only runs on a file that is wrong.
"""

from __future__ import annotations

import enum
import functools
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

__all__ = ["Invalid", "Problem", "Strict", "at_field", "field_names", "fields_of", "to_data",
           "validate"]

_T = TypeVar("_T")

#: Where a problem is: keys and list indexes from the top of the document.
Location = tuple[str | int, ...]


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The base of every model: immutable, and an unknown field is an error (a typo)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where, what kind (``missing``, ``unknown``, the type
    expected: ``int``, ``float``, ``bool``, ``str``, ``array``, ``object``, ``Path``, ...; or
    ``value`` for a broken limit or check), the words, the input."""

    location: Location
    kind: str
    message: str
    value: Any = None


class Invalid(ValueError):
    """A document that does not fit its model; ``problems`` lists every problem found.

    Raise it in ``__post_init__`` with locations relative to the struct to point at the
    offending field rather than at the struct as a whole.
    """

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(_plain(p) for p in problems))
        self.problems = problems


def at_field(name: str, message: str, value: Any = None) -> Invalid:
    """The error a ``__post_init__`` raises about one of its fields, shown at that field."""
    return Invalid([Problem((name,), "value", message, value)])


def _plain(problem: Problem) -> str:
    where = ".".join(str(part) for part in problem.location)
    return f"{where}: {problem.message}" if where else problem.message


def _decode(kind: type, value: Any) -> Any:
    """Paths are written as text (or given as paths); no path holds a NUL, which every
    system call refuses (a ValueError when the agent first opens it, long after loading)."""
    if kind is Path and isinstance(value, str | Path):
        if "\0" in str(value):
            raise ValueError("a path cannot hold a NUL character (\\u0000)")
        return Path(value)
    raise TypeError(f"Expected `{getattr(kind, '__name__', kind)}`, got `{type(value).__name__}`")


def _encode(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(type(value).__name__)


def validate(kind: type[_T], data: Any) -> _T:
    """``data`` as ``kind``; :class:`Invalid` listing every problem when it does not fit."""
    try:
        return msgspec.convert(data, kind, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise Invalid(_explain(kind, data, ()) or _leaf(exc, kind, data, ())) from None


def to_data(value: Any) -> Any:
    """A struct as plain JSON-ready data (paths as text, bytes as base64)."""
    return msgspec.to_builtins(value, enc_hook=_encode)


@functools.cache
def fields_of(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """The fields of a struct by their name in files, with their annotated types."""
    hints = typing.get_type_hints(kind, include_extras=True)
    return {field.encode_name: hints[field.name] for field in msgspec.structs.fields(kind)}


def field_names(kind: type[msgspec.Struct]) -> list[str]:
    """The names of a struct's fields as written in files."""
    return list(fields_of(kind))


def _required(kind: type[msgspec.Struct]) -> set[str]:
    return {field.encode_name for field in msgspec.structs.fields(kind) if field.required}


def _fits(kind: Any, value: Any) -> msgspec.ValidationError | None:
    try:
        msgspec.convert(value, kind, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        return exc
    return None


def _explain(kind: Any, data: Any, location: Location) -> list[Problem]:
    """Every problem under ``location``, one level at a time; [] when the parts all fit."""
    kind = _unwrap(kind)
    struct = _struct_for(kind, data)
    if struct is not None and isinstance(data, dict):
        return _explain_struct(struct, data, location)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list and isinstance(data, list):
        return _explain_items(args[0], enumerate(data), location)
    if origin is dict and isinstance(data, dict):
        return _explain_items(args[1], data.items(), location)
    return []


def _explain_struct(struct: type[msgspec.Struct], data: dict[str, Any], location: Location
                    ) -> list[Problem]:
    fields = fields_of(struct)
    tag = struct.__struct_config__.tag_field
    problems = [Problem((*location, key), "unknown", "unknown field", value)
                for key, value in data.items() if key not in fields and key != tag]
    problems += [Problem((*location, name), "missing", "Field required")
                 for name in fields if name in _required(struct) and name not in data]
    for name, value in data.items():
        if name in fields:
            error = _fits(fields[name], value)
            if error is not None:
                where = (*location, name)
                problems += (_explain(fields[name], value, where)
                             or _leaf(error, fields[name], value, where))
    return problems


def _explain_items(kind: Any, items: Any, location: Location) -> list[Problem]:
    problems: list[Problem] = []
    for key, value in items:
        error = _fits(kind, value)
        if error is not None:
            where = (*location, key)
            problems += _explain(kind, value, where) or _leaf(error, kind, value, where)
    return problems


def _unwrap(kind: Any) -> Any:
    """The type under ``Annotated`` (``X | None`` is taken apart by ``_members``)."""
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    return kind


def _members(kind: Any) -> tuple[Any, ...]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return tuple(_unwrap(arg) for arg in typing.get_args(kind))
    return (kind,)


def _struct_for(kind: Any, data: Any) -> type[msgspec.Struct] | None:
    """The struct ``data`` is meant to be: the only one of a union, or the one its tag names."""
    structs = [m for m in _members(kind) if isinstance(m, type) and issubclass(m, msgspec.Struct)]
    if len(structs) == 1:
        return structs[0]
    if isinstance(data, dict):
        for struct in structs:
            config = struct.__struct_config__
            if config.tag_field is not None and data.get(config.tag_field) == config.tag:
                return struct
    return None


_PATH = re.compile(r" - at `\$([^`]*)`$")
_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")
_MISMATCH = re.compile(r"^Expected `([^`]*)`, got `([^`]*)`$")
_BOUND = re.compile(r"^Expected `(\w+)` (>=|<=|>|<) (\S+)$")
_LENGTH = re.compile(r"^Expected `(\w+)` of length (>=|<=) (\d+)$")
_PATTERN = re.compile(r"^Expected `str` matching regex '(.*)'$")
_FIELD = re.compile(r"^Object (missing required|contains unknown) field `([^`]*)`$")
_WORDS = {">=": "greater than or equal to", "<=": "less than or equal to", ">": "greater than",
          "<": "less than"}
_UNITS = {"str": "character", "array": "item", "object": "item", "bytes": "byte"}


def _leaf(error: msgspec.ValidationError, kind: Any, value: Any, location: Location
          ) -> list[Problem]:
    """The problem msgspec reported, in words, at its place under ``location`` (the problems
    of an :class:`Invalid` raised by a ``__post_init__``, each at its own place)."""
    text = str(error)
    path = _PATH.search(text)
    if path:
        text = text[:path.start()]
        location = (*location, *(name or int(index)
                                 for name, index in _STEP.findall(path.group(1))))
    cause = error.__cause__
    if isinstance(cause, Invalid):
        return [Problem((*location, *p.location), p.kind, p.message, p.value)
                for p in cause.problems]
    return [_worded(text, kind, value, location)]


def _worded(text: str, kind: Any, value: Any, location: Location) -> Problem:
    field = _FIELD.match(text)
    if field:
        missing = field.group(1) == "missing required"
        return Problem((*location, field.group(2)), "missing" if missing else "unknown",
                       "Field required" if missing else "unknown field")
    mismatch = _MISMATCH.match(text)
    if mismatch:
        return Problem(location, mismatch.group(1).split(" | ")[0], text, value)
    return Problem(location, "value", _constraint(text) or _refused(text, kind), value)


def _constraint(text: str) -> str | None:
    """A bound, a length or a pattern the value broke, in words; None for anything else."""
    bound = _BOUND.match(text)
    if bound:
        limit = float(bound.group(3))
        shown = str(int(limit)) if limit.is_integer() else bound.group(3)  # never 1.04858e+06
        return f"Input should be {_WORDS[bound.group(2)]} {shown}"
    length = _LENGTH.match(text)
    if length:
        count, unit = int(length.group(3)), _UNITS.get(length.group(1), "item")
        most = "at least" if length.group(2) == ">=" else "at most"
        noun = "List" if length.group(1) == "array" else "Value"
        return f"{noun} should have {most} {count} {unit}{'' if count == 1 else 's'}"
    pattern = _PATTERN.match(text)
    if pattern:  # without the value: it may be a secret (a token)
        return f"does not have the expected form: it should match {pattern.group(1)}"
    return None


def _refused(text: str, kind: Any) -> str:
    """A value outside a choice, or not base64, in words; msgspec's own words otherwise."""
    if text.startswith("Invalid base64"):
        return "not base64; copy the value as the hub gave it"
    choices = _choices(kind) if text.startswith(("Invalid enum value", "Invalid value")) else ""
    return f"Input should be {choices}" if choices else text


def _choices(kind: Any) -> str:
    """``'a', 'b' or 'c'``: the values a Literal or an enum allows, or the tags of a union."""
    values: list[Any] = []
    for member in _members(_unwrap(kind)):
        if typing.get_origin(member) is typing.Literal:
            values += typing.get_args(member)
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            values += [item.value for item in member]
        elif isinstance(member, type) and issubclass(member, msgspec.Struct):
            values += [member.__struct_config__.tag] if member.__struct_config__.tag else []
    shown = [repr(v) for v in values]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else "".join(shown)
