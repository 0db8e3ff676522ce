"""One attribute of an event's JSON ``attrs``, comparable in SQL on both stores.

Events keep their attributes as JSON text (one schema for SQLite and PostgreSQL), yet an
alarm is paired with its clear by the ``rule`` inside them, and that must happen in SQL for
a page of open alarms to be cut right. One stored row that is not valid JSON, or holds a
lone surrogate or NUL escape, must not fail every page, and PostgreSQL 15 can neither test
JSON without casting it nor catch a failed cast inside a query. So SQLite reads the key with
``json_extract`` behind ``json_valid``, and PostgreSQL cuts the key's raw JSON text out of
the column: ingest writes attributes as ``json.dumps(..., sort_keys=True)`` and keeps an
alarm's attributes flat (sync_server/record_checks.py), so ``, "key": `` (or ``{"key": ``)
appears only where the top-level key starts, ``, "`` only where the next key starts (a quote
inside a string is escaped), and equal values have equal text. That is also three times
faster than casting to JSON. Each store's value is only ever compared with its own kind.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["attr_text"]

_KEY = re.compile(r"[a-z_][a-z0-9_]{0,63}")


class _AttrText(FunctionElement[str]):
    """The value of a top-level key, as text to compare; NULL where the key is missing,
    holds null, or the row is not JSON."""

    type = String()
    name = "attr_text"
    inherit_cache = True


def attr_text(column: ColumnElement[Any], key: str) -> ColumnElement[str]:
    """The value of ``key`` in the JSON object ``column`` holds (a constant key, not input)."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"attribute key {key!r} must be a plain identifier")
    return _AttrText(column, literal(key), literal(f', "{key}": '))


@compiles(_AttrText, "sqlite")
def _sqlite(element: _AttrText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses.clauses[:2])
    return f"CASE WHEN json_valid({column}) THEN json_extract({column}, '$.' || {key}) END"


@compiles(_AttrText, "postgresql")
def _postgresql(element: _AttrText, compiler: SQLCompiler, **kw: Any) -> str:
    column, opening = (compiler.process(element.clauses.clauses[i], **kw) for i in (0, 2))
    # The object's "{" read as ", " so that its first key is found like the others; the
    # value runs to the next key, or to the closing "}" of the last one.
    after = f"split_part(', ' || substr({column}, 2), {opening}, 2)"
    return f"nullif(nullif(rtrim(split_part({after}, ', \"', 1), '}}'), ''), 'null')"
