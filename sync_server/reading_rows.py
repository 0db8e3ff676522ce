"""A batch of readings, as columns, into the readings table in one statement.

On PostgreSQL that is one ``COPY ... FROM STDIN`` in text format, its lines formatted
straight from the columns: no object per reading, no per-row call into the driver (its
``write_row`` costs more than formatting the line). Text keeps every value exact: a float's
``repr`` is the shortest text that reads back as the same double. NaN and infinities are
stored as NULL (quality INVALID says why), as SQL cannot compare them. SQLite takes the
same rows through ``executemany``.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection

from edge_agent.codecs.batch import ReadingColumns

__all__ = ["copy_readings"]

#: Columns in the order the lines give them: the series first, so that each line starts
#: with its series' prefix, formatted once a batch.
_COLUMNS = "series_id, stream_id, seq, ts_ms, value, quality"


def copy_readings(
    conn: Connection, stream_id: int, columns: ReadingColumns, series_ids: list[int],
    positions: list[int], timestamps: list[int],
) -> None:
    """Insert the readings at ``positions`` of ``columns`` with ``timestamps``;
    ``series_ids[i]`` is the id of ``columns.series[i]``."""
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(f"INSERT INTO readings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                             _rows(stream_id, columns, series_ids, positions, timestamps))
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY readings ({_COLUMNS}) FROM STDIN") as copy:
        copy.write(_text(stream_id, columns, series_ids, positions, timestamps))


def _text(stream_id: int, columns: ReadingColumns, series_ids: list[int],
          positions: list[int], timestamps: list[int]) -> str:
    """The COPY text of the readings: a line each, tab-separated, ``\\N`` for NULL."""
    prefixes = [f"{sid}\t{stream_id}\t" for sid in series_ids]
    order, values, first = columns.order, columns.values, columns.first_seq
    if columns.qualities or not all(map(math.isfinite, values)):
        qualities = columns.qualities
        return "".join([
            f"{prefixes[order[p]]}{first + p}\t{ts}\t{_value(values[p])}"
            f"\t{int(qualities.get(p, 0))}\n"
            for p, ts in zip(positions, timestamps, strict=True)])
    return "".join([f"{prefixes[order[p]]}{first + p}\t{ts}\t{values[p]!r}\t0\n"
                    for p, ts in zip(positions, timestamps, strict=True)])


def _value(value: float) -> str:
    return repr(value) if math.isfinite(value) else r"\N"


def _rows(stream_id: int, columns: ReadingColumns, series_ids: list[int],
          positions: list[int], timestamps: list[int]) -> list[tuple[Any, ...]]:
    order, values, qualities = columns.order, columns.values, columns.qualities
    return [(series_ids[order[p]], stream_id, columns.first_seq + p, ts,
             values[p] if math.isfinite(values[p]) else None, int(qualities.get(p, 0)))
            for p, ts in zip(positions, timestamps, strict=True)]
