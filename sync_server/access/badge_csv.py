"""Reading a badge import file: header, columns and limits, each line as typed. Pure.

UTF-8 (a byte-order mark is fine), comma- or semicolon-separated (a spreadsheet set to French
saves with semicolons), a header line naming the columns. ``number`` and ``category`` are
required; ``form``, ``valid_from``, ``valid_until``, ``master``, ``label`` and ``length``
(the card's bytes, for ``dec`` numbers) may be left out. Problems are ``(line, field,
reason)`` with the file's own line numbers; what each value must look like is badge_input's
business.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass

from sync_server.access.badge_input import BadgeText
from sync_server.errors import BadRequest

__all__ = ["COLUMNS", "MAX_ROWS", "Problem", "decode_csv", "read_badge_csv"]

COLUMNS = ("number", "form", "category", "valid_from", "valid_until", "master", "label",
           "length")
_REQUIRED = ("number", "category")
#: Badges in one file; a city card scheme of 16,000 holders fits many times over.
MAX_ROWS = 100_000
#: A cell longer than this is not a badge field (labels stop at 128 characters).
_MAX_CELL = 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong on one line; ``field`` is a column name, or ``-`` for the whole line."""

    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        """The problem as the API reports it."""
        return asdict(self)


def decode_csv(data: bytes) -> str:
    """The text of an import file; BadRequest unless UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the file is not UTF-8 (byte {exc.start}); save it as CSV UTF-8"
                         ) from None


def read_badge_csv(text: str) -> tuple[list[tuple[int, BadgeText]], list[Problem]]:
    """Each badge line with its line number, and the problems of the file's layout."""
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, BadgeText]] = []
    try:
        header = next(reader, None)
        if header is None:
            return [], [Problem(1, "-", "the file is empty: the first line names the columns, "
                                        f"e.g. {','.join(COLUMNS)}")]
        columns = [name.strip().lower() for name in header]
        problems = _header_problems(columns)
        if problems:
            return [], problems
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) == MAX_ROWS:
                return [], [Problem(line, "-", f"more than {MAX_ROWS} badges: split the file")]
            problem = _cells_problem(line, cells, len(columns))
            if problem is not None:
                problems.append(problem)
                continue
            values = dict(zip(columns, (cell.strip() for cell in cells), strict=False))
            rows.append((line, BadgeText(**values)))
    except csv.Error as exc:
        return rows, [*problems, Problem(reader.line_num, "-", f"not valid CSV: {exc}")]
    return rows, problems


def _header_problems(columns: list[str]) -> list[Problem]:
    problems = [Problem(1, name or "-", f"unknown column; the columns are {', '.join(COLUMNS)}")
                for name in columns if name not in COLUMNS]
    problems += [Problem(1, name, "column named twice")
                 for name in sorted({n for n in columns if columns.count(n) > 1})]
    problems += [Problem(1, name, "required column missing")
                 for name in _REQUIRED if name not in columns]
    return problems


def _cells_problem(line: int, cells: list[str], width: int) -> Problem | None:
    if len(cells) > width:
        return Problem(line, "-", f"{len(cells)} cells, the header names {width} columns")
    if any(len(cell) > _MAX_CELL for cell in cells):
        return Problem(line, "-", f"a cell longer than {_MAX_CELL} characters")
    return None
