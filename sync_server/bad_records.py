"""Records refused at ingest and stored rows readers skip: counted, and logged sparingly.

Ingest refuses what a reader could not read back (sync_server/record_checks.py), but rows
stored before that check, or written straight into the database, are still there. A reader
skips such a row rather than fail the page with it, and says so here: a process-wide count
per reader and field (for a future ``/metrics``), and a warning at most once a minute per
reader, so that a poisoned table cannot flood the log.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from typing import Any

from edge_agent.records import Event, Reading
from sync_server.record_checks import (
    READABLE,
    Problem,
    attrs_from_text,
    event_problem,
    reading_problem,
)

__all__ = [
    "WARN_EVERY_S",
    "count_refused",
    "counts",
    "readable_attrs",
    "readable_event",
    "readable_reading",
    "skip_row",
]

log = logging.getLogger("sync_server.bad_records")

#: At most one warning per reader in this many seconds; the count says the rest.
WARN_EVERY_S = 60.0

_lock = threading.Lock()
_refused: Counter[str] = Counter()
_skipped: Counter[tuple[str, str]] = Counter()
_last_warning: dict[str, float] = {}
_unwarned: Counter[str] = Counter()


def count_refused(problem: Problem) -> None:
    """Count a pushed record refused for ``problem`` (its field names the rule)."""
    with _lock:
        _refused[_rule(problem.field)] += 1


def skip_row(reader: str, row: str, problem: Problem, *, rows: int = 1) -> None:
    """Count ``rows`` stored rows ``reader`` skipped (``row`` names the last one); warn
    unless it warned within the minute."""
    now = time.monotonic()
    with _lock:
        _skipped[reader, _rule(problem.field)] += rows
        _unwarned[reader] += rows
        last = _last_warning.get(reader)
        if last is not None and now - last < WARN_EVERY_S:
            return
        _last_warning[reader] = now
        skipped, _unwarned[reader] = _unwarned[reader], 0
    log.warning("%s skipped %d unreadable stored row(s) since its last warning; latest: %s "
                "(%s). Rows stored before ingest checked records, or written to the database "
                "directly; see docs/sync-protocol.md", reader, skipped, row, problem)


def counts() -> dict[str, dict[str, int]]:
    """``{"refused": {rule: n}, "skipped": {"reader rule": n}}`` since the process started."""
    with _lock:
        return {"refused": dict(_refused),
                "skipped": {f"{reader} {rule}": n for (reader, rule), n in _skipped.items()}}


def readable_attrs(text: object) -> dict[str, Any] | Problem:
    """A stored ``attrs`` column as an object, or the problem that makes it unreadable."""
    if not isinstance(text, str):
        return Problem("attrs", f"stored as {type(text).__name__}, not text")
    try:
        return attrs_from_text(text)
    except (ValueError, RecursionError) as exc:
        return Problem("attrs", f"not a JSON object: {exc}")


def readable_event(reader: str, row: str, kind: object, device: object, ts_ms: object,
                   attrs_text: object) -> dict[str, Any] | None:
    """A stored event's attributes if every reader can read the event; None (counted,
    maybe logged) if not."""
    attrs = readable_attrs(attrs_text)
    problem = attrs if isinstance(attrs, Problem) else READABLE.problem("ts_ms", ts_ms)
    if problem is None:
        assert isinstance(attrs, dict)
        if not isinstance(kind, str) or not isinstance(device, str):
            problem = Problem("kind", "stored kind and device must be text")
        else:
            assert isinstance(ts_ms, int)
            problem = event_problem(Event(kind, device, ts_ms, attrs), READABLE)
    if problem is not None:
        skip_row(reader, row, problem)
        return None
    assert isinstance(attrs, dict)
    return attrs


def readable_reading(reader: str, row: str, device: object, quantity: object, ts_ms: object,
                     value: object) -> bool:
    """Whether every reader can read a stored reading; if not, it is counted (maybe logged).

    A stored value is NULL (not a number) or finite: ingest stores NaN and infinities as
    NULL, and JSON has no infinity to answer with.
    """
    problem: Problem | None
    number = float(value) if isinstance(value, float | int) else math.nan
    if not (isinstance(device, str) and isinstance(quantity, str) and isinstance(ts_ms, int)):
        problem = Problem("device", "stored device and quantity must be text, time a number")
    elif value is not None and not math.isfinite(number):
        problem = Problem("value", f"{value!r} is not a finite number")
    else:
        problem = reading_problem(Reading(device, quantity, ts_ms, number), READABLE)
    if problem is not None:
        skip_row(reader, row, problem)
        return False
    return True


def _rule(field: str) -> str:
    """``attrs.service`` counts under ``attrs``: a gateway chooses attribute names, and the
    counters must not grow with them."""
    return re.split(r"[.\[ ]", field, maxsplit=1)[0]
