"""How ``sync-server`` prints what it lists: tables that fit the console, JSON for scripts.

An installer's console is often 80 columns (a Pi's, or a pipe): a table must fit it, and a
name cut to ``capitainerie-b…`` is a name nobody can type back. Columns therefore never go
narrower than their longest word; other cells wrap at spaces; and when even that is too wide,
each row is printed as a block of ``field value`` lines instead. ``--json`` gives every field.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["JsonFlag", "minute", "print_json", "print_table", "when"]

#: ``--json`` of every listing command: every field, whole, for scripts.
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
#: Between two columns of the borderless table: one space of padding and one of rule.
_GAP = 2


def when(ms: int | None) -> str:
    """A UTC timestamp in ms as operators read it, or ``never``."""
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def minute(ms: int | None, *, year: bool = True) -> str:
    """A UTC timestamp in ms to the minute, for tables, or ``-``; without the year for what
    is recent by nature (alarms, counts), so seven columns of them fit 80."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(
        "%Y-%m-%d %H:%M" if year else "%m-%d %H:%M")


def print_json(rows: Any) -> None:
    """What ``--json`` prints: indented, non-ASCII names as they are."""
    typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """``rows`` under ``columns``, as wide as the console (``COLUMNS``, else the terminal's,
    else 80), names never cut: a table if one fits, else one block per row."""
    cells = [list(row) for row in rows]
    width = shutil.get_terminal_size().columns
    widths = _fit([[column, *(row[i] for row in cells)] for i, column in enumerate(columns)],
                  width)
    console = Console(width=width)
    if widths is None:
        _print_blocks(console, columns, cells)
        return
    table = Table(*columns, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                  collapse_padding=True)
    for column, column_width in zip(table.columns, widths, strict=True):
        column.width = column_width
        column.overflow = "fold"
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # plain: rich would read [x] as markup
    console.print(table)


def _fit(columns: list[list[str]], width: int) -> list[int] | None:
    """Column widths within ``width``, none under its longest word; None if impossible.

    Each column starts at its longest word and the room left goes, a character at a time, to
    the column furthest from its longest cell.
    """
    least = [max(len(word) for cell in column for word in cell.split() or [""])
             for column in columns]
    most = [max(len(cell) for cell in column) for column in columns]
    room = width - sum(least) - _GAP * (len(columns) - 1)
    if room < 0:
        return None
    widths = least[:]
    while room > 0:
        short = max(range(len(widths)), key=lambda i: most[i] - widths[i])
        if most[short] <= widths[short]:
            break
        widths[short] += 1
        room -= 1
    return widths


def _print_blocks(console: Console, columns: Sequence[str], rows: list[list[str]]) -> None:
    """One block per row, a ``field value`` line per column, a blank line between blocks."""
    label = max(len(column) for column in columns) + _GAP
    for index, row in enumerate(rows):
        if index:
            console.print()
        for column, cell in zip(columns, row, strict=True):
            console.print(Text(f"{column:<{label}}{cell}"), overflow="fold")
