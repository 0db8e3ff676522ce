"""One attribute of an event's JSON ``attrs``, as text, in SQL on both stores.

Events keep their attributes as JSON text (one schema for SQLite and PostgreSQL), yet an
alarm is paired with its clear by the ``rule`` inside them, and that must happen in SQL for
a page of open alarms to be cut right. SQLite reads it with ``json_extract``, PostgreSQL
with ``->>`` over a cast: the two spellings are chosen when the statement is compiled.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["attr_text"]

_KEY = re.compile(r"[a-z_][a-z0-9_]{0,63}")


class _AttrText(FunctionElement[str]):
    """``attrs ->> key``; NULL where the key is missing."""

    type = String()
    name = "attr_text"
    inherit_cache = True


def attr_text(column: ColumnElement[Any], key: str) -> ColumnElement[str]:
    """The text of ``key`` in the JSON object ``column`` holds (a constant key, not input)."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"attribute key {key!r} must be a plain identifier")
    return _AttrText(column, key)


def _parts(element: _AttrText, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, key = element.clauses
    return compiler.process(column, **kw), compiler.process(key, **kw)


@compiles(_AttrText, "sqlite")
def _sqlite(element: _AttrText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _parts(element, compiler, **kw)
    return f"json_extract({column}, '$.' || {key})"


@compiles(_AttrText, "postgresql")
def _postgresql(element: _AttrText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _parts(element, compiler, **kw)
    return f"(CAST({column} AS JSON) ->> {key})"
