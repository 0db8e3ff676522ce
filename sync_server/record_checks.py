"""What every reader of a stored record needs, checked in one place. Pure.

A record the hub stores is read back as JSON answers (no lone surrogate, no NaN), as
datetimes in a territory's time zone by the reports (a year between 1 and 9999), by alarm
pairing in SQL on both stores (valid JSON, no NUL), and printed by the CLI in an operator's
terminal (no control characters in the names it shows). Each reader breaks on something
else, so the hub refuses at the door what any of them cannot read (sync_server/ingest.py),
and readers skip what was stored before, with the same checks (sync_server/bad_records.py).

The rules, in docs/sync-protocol.md ("What a record may hold"): names of bounded length
without control characters; attributes of bounded size and depth holding only valid Unicode,
64-bit integers and finite numbers; any attribute named ``*_ms`` a UTC millisecond time
within the window, like the record's own timestamp; and typed attributes for the kinds the
hub reads (access decisions, pedestal sessions, alarms, car parks).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.codecs.batch import ReadingColumns
from edge_agent.records import Event, Reading

__all__ = [
    "AHEAD_MS",
    "EARLIEST_MS",
    "MAX_ATTRS",
    "MAX_ATTRS_CHARS",
    "MAX_DEPTH",
    "MAX_NAME",
    "MAX_TEXT",
    "PLAUSIBLE_FROM_MS",
    "READABLE",
    "Problem",
    "TimeWindow",
    "attrs_from_text",
    "event_problem",
    "first_problem",
    "first_reading_problem",
    "ingest_window",
    "name_problem",
    "reading_problem",
]

#: 1970-01-01: where a clock that was never set starts. Nothing earlier comes from a clock.
EARLIEST_MS = 0
#: 2020-01-01: stamps before it come from a clock that never synchronised (ingest flags them).
PLAUSIBLE_FROM_MS = 1_577_836_800_000
#: How far past the hub's clock a timestamp may be: a day of skew, then it is no clock's.
AHEAD_MS = 86_400_000
#: 9999-12-30 UTC: the last day a datetime holds in any time zone (reports convert).
_LAST_READABLE_MS = 253_402_128_000_000
#: Attributes an event may hold, their depth, a string's length, a list's items, and the
#: whole object's JSON text: far above what a gateway sends (docs/sync-protocol.md).
MAX_ATTRS = 64
MAX_DEPTH = 4
MAX_TEXT = 4096
_MAX_ITEMS = 256
MAX_ATTRS_CHARS = 16_384
#: The longest ``attrs`` column ingest can write from that: ``json.dumps`` spells a character
#: outside ASCII as 6 characters, or 12 (a surrogate pair) outside the Basic Multilingual Plane.
_MAX_STORED_CHARS = 12 * MAX_ATTRS_CHARS + 1024
#: Longest device name, and longest kind, quantity, attribute key or typed name.
_MAX_DEVICE, MAX_NAME = 128, 64
#: Vehicles or spaces in one car park: beyond this the count is garbage.
_MAX_PARKING_COUNT = 1_000_000
_MIN_INT, _MAX_INT = -(2**63), 2**63 - 1

_KIND = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
#: C0 and C1 controls and DEL: they rewrite an operator's terminal, and NUL ends PostgreSQL text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PARKING_QUANTITIES = ("parking_occupancy", "parking_capacity")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a record cannot be stored or read: the field (``attrs.service``) and the reason."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Timestamps a record may carry, both ends included (UTC ms)."""

    earliest_ms: int
    latest_ms: int

    def problem(self, field: str, value: object) -> Problem | None:
        """Why ``value`` is not a timestamp inside the window, or None."""
        if not _is_integer(value):
            return Problem(field, f"must be an integer (UTC ms), got {_shown(value)}")
        assert isinstance(value, int)
        if not self.earliest_ms <= value <= self.latest_ms:
            return Problem(field, f"{value} is outside {self.earliest_ms} to "
                                  f"{self.latest_ms} (UTC ms)")
        return None


#: What a reader can turn into a date, whatever the hub's clock said when it was stored.
READABLE = TimeWindow(EARLIEST_MS, _LAST_READABLE_MS)


def ingest_window(now_ms: int) -> TimeWindow:
    """The timestamps a push may carry when the hub's clock reads ``now_ms``."""
    return TimeWindow(EARLIEST_MS, now_ms + AHEAD_MS)


def first_problem(records: Sequence[Reading | Event], window: TimeWindow
                  ) -> tuple[int, Problem] | None:
    """The index of the first record that cannot be stored or read back, and why; None if
    every one can. Each name is checked once a batch: a batch repeats a few hundred."""
    names: set[tuple[str, str]] = set()
    for index, record in enumerate(records):
        known = (record.kind, record.device) if isinstance(record, Event) else (
            record.device, record.quantity)
        fresh = known not in names
        problem = (_event_problem(record, window, names=fresh) if isinstance(record, Event)
                   else _reading_problem(record, window, names=fresh))
        if problem is not None:
            return index, problem
        names.add(known)
    return None


def first_reading_problem(columns: ReadingColumns, window: TimeWindow
                          ) -> tuple[int, Problem] | None:
    """``first_problem`` for a batch of readings as columns, a column at a time: names once
    a series, timestamps by their extremes, counts only in the series that hold them. The
    first position any of them flags is then checked whole, as ``first_problem`` would."""
    order, stamps = columns.order, columns.ts_ms
    flagged: list[int] = []
    for index, (device, quantity) in enumerate(columns.series):
        if _names_problem(device, quantity):
            flagged.append(order.index(index))
    if min(stamps) < window.earliest_ms or max(stamps) > window.latest_ms:
        flagged.append(next(p for p, ts in enumerate(stamps)
                            if not window.earliest_ms <= ts <= window.latest_ms))
    counts = {i for i, (_, quantity) in enumerate(columns.series)
              if quantity in _PARKING_QUANTITIES}
    if counts:
        wrong = next((p for p, index in enumerate(order) if index in counts
                      and _reading_problem(columns.reading(p), window, names=False)), None)
        flagged += [] if wrong is None else [wrong]
    if not flagged:
        return None
    position = min(flagged)
    problem = _reading_problem(columns.reading(position), window, names=True)
    assert problem is not None
    return position, problem


@functools.lru_cache(maxsize=65_536)
def _names_problem(device: str, quantity: str) -> bool:
    """Whether a series' names break a rule: a gateway sends the same few hundred in every
    batch, so each is checked once a process (while it stays among the most recent)."""
    return bool(name_problem("device", device, _MAX_DEVICE)
                or name_problem("quantity", quantity, MAX_NAME))


def reading_problem(reading: Reading, window: TimeWindow) -> Problem | None:
    """Why a reading cannot be stored or read back, or None."""
    return _reading_problem(reading, window, names=True)


def event_problem(event: Event, window: TimeWindow) -> Problem | None:
    """Why an event cannot be stored or read back, or None."""
    return _event_problem(event, window, names=True)


def _reading_problem(reading: Reading, window: TimeWindow, *, names: bool) -> Problem | None:
    problem = (name_problem("device", reading.device, _MAX_DEVICE)
               or name_problem("quantity", reading.quantity, MAX_NAME)) if names else None
    if problem is None and not window.earliest_ms <= reading.ts_ms <= window.latest_ms:
        problem = window.problem("ts_ms", reading.ts_ms)
    if problem is None and reading.quantity in _PARKING_QUANTITIES and math.isfinite(
            reading.value) and not (reading.value.is_integer()
                                    and 0 <= reading.value <= _MAX_PARKING_COUNT):
        problem = Problem("value", f"a {reading.quantity} is a whole count from 0 to "
                                   f"{_MAX_PARKING_COUNT}, got {reading.value!r}")
    return problem


def _event_problem(event: Event, window: TimeWindow, *, names: bool) -> Problem | None:
    if names and (len(event.kind) > MAX_NAME or not _KIND.fullmatch(event.kind)):
        return Problem("kind", f"must be lower-case words joined by dots (access.granted), "
                               f"at most {MAX_NAME} characters, got {_shown(event.kind)}")
    return ((name_problem("device", event.device, _MAX_DEVICE, empty_ok=True)
             if names else None)
            or window.problem("ts_ms", event.ts_ms)
            or _attrs_problem(event.attrs, window)
            or _typed_problem(event.kind, event.attrs))


def attrs_from_text(text: str) -> dict[str, Any]:
    """A stored ``attrs`` column as an object; ValueError unless it is a JSON object.

    NaN and infinities are refused here already: JSON has no such numbers.
    """
    if len(text) > _MAX_STORED_CHARS:
        raise ValueError(f"attrs of {len(text)} characters, more than {_MAX_STORED_CHARS}")
    attrs = json.loads(text, parse_constant=_no_constant)
    if not isinstance(attrs, dict):
        raise ValueError(f"attrs must be a JSON object, got {type(attrs).__name__}")
    return attrs


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _attrs_problem(attrs: object, window: TimeWindow) -> Problem | None:
    if not isinstance(attrs, dict):
        return Problem("attrs", "must be an object")
    if len(attrs) > MAX_ATTRS:
        return Problem("attrs", f"{len(attrs)} attributes, more than {MAX_ATTRS}")
    walk = _Walk(window)
    problem = walk.container("attrs", attrs, 0)
    if problem is None and walk.left < 0:
        problem = Problem("attrs", f"more than {MAX_ATTRS_CHARS} characters as JSON")
    return problem


class _Walk:
    """One event's attributes, walked once: the window for ``*_ms`` values, and the JSON
    characters left (counted roughly, without ``json.dumps``: ingest checks every event).

    Field names are only spelt out for the problem found: building them for every value
    cost more than the checks.
    """

    __slots__ = ("left", "window")

    def __init__(self, window: TimeWindow) -> None:
        self.window = window
        self.left = MAX_ATTRS_CHARS

    def container(self, field: str, value: list[Any] | dict[Any, Any], depth: int
                  ) -> Problem | None:
        if depth >= MAX_DEPTH:
            return Problem(field, f"nested more than {MAX_DEPTH} deep")
        if len(value) > _MAX_ITEMS:
            return Problem(field, f"{len(value)} items, more than {_MAX_ITEMS}")
        self.left -= 2
        if isinstance(value, list):
            return self.items(field, value, depth)
        return self.members(field, value, depth)

    def items(self, field: str, value: list[Any], depth: int) -> Problem | None:
        for index, item in enumerate(value):
            problem = self.item(field, index, item, depth)
            if problem is not None:
                return problem
        return None

    def members(self, field: str, value: dict[Any, Any], depth: int) -> Problem | None:
        """Each key and its value; a ``*_ms`` key holds a time in the window."""
        for key, item in value.items():
            problem = None if _PLAIN_KEY.fullmatch(key) else name_problem(
                f"{_member(field, key)} key", key, MAX_NAME)
            if problem is None and key.endswith("_ms") and item is not None:
                problem = self.window.problem(_member(field, key), item)
            self.left -= len(key) + 4
            problem = problem or self.item(field, key, item, depth)
            if problem is not None:
                return problem
        return None

    def item(self, parent: str, key: str | int, value: object, depth: int) -> Problem | None:
        """Why the value at ``parent``'s ``key`` is not JSON every reader takes, or None."""
        kind = type(value)
        if kind is str:
            assert isinstance(value, str)
            self.left -= len(value) + 2
            ok = len(value) <= MAX_TEXT and "\x00" not in value and (
                value.isascii() or not _SURROGATE.search(value))
            return None if ok else _text_problem(_member(parent, key), value, MAX_TEXT)
        if isinstance(value, list | dict):
            return self.container(_member(parent, key), value, depth + 1)
        self.left -= 8
        if kind is float:
            assert isinstance(value, float)
            ok, reason = math.isfinite(value), "not a number JSON can carry (NaN, infinity)"
        elif kind is int:
            assert isinstance(value, int)
            ok, reason = _MIN_INT <= value <= _MAX_INT, "integer out of range (signed 64 bits)"
        else:
            ok, reason = value is None or kind is bool, "not a JSON value"
        return None if ok else Problem(_member(parent, key), reason)


def _member(field: str, key: object) -> str:
    """``attrs.note``, ``attrs.list[2]``, or ``attrs['n\\udc00']`` where the key is the
    trouble."""
    if isinstance(key, int):
        return f"{field}[{key}]"
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{field}.{key}"
    return f"{field}[{_shown(key)}]"


def _typed_problem(kind: str, attrs: dict[str, Any]) -> Problem | None:
    """The attributes the hub's readers depend on, for the kinds they read."""
    names: tuple[str, ...] = ()
    if kind.startswith("access.") or kind == "session.closed":
        # A badge that is no pseudonym is read as none (reports); it must still be text.
        names = ("badge", "category", "service", "zone", "reason")
    elif kind in ("alarm.raised", "alarm.cleared"):
        nested = [key for key, value in attrs.items() if isinstance(value, list | dict)]
        if nested:  # pairing reads ``rule`` in SQL: flat objects keep that exact
            return Problem(f"attrs.{nested[0]}", "alarm attributes are plain values")
        names = ("rule", "kind", "severity", "quantity")
    elif kind.startswith("car_park."):
        for key in ("occupancy", "capacity", "free"):
            value = attrs.get(key)
            if value is not None and not _is_integer(value):
                return Problem(f"attrs.{key}", f"must be a whole number, got {_shown(value)}")
    for key in names:
        value = attrs.get(key)
        if value is not None:
            if not isinstance(value, str):
                return Problem(f"attrs.{key}", f"must be text, got {_shown(value)}")
            problem = name_problem(f"attrs.{key}", value, MAX_NAME)
            if problem is not None:
                return problem
    return None


def name_problem(field: str, text: object, limit: int, *, empty_ok: bool = False
                 ) -> Problem | None:
    """A name shown as it is (device, quantity, key, service): printable, bounded text."""
    if not isinstance(text, str):
        return Problem(field, f"must be text, got {_shown(text)}")
    if len(text) > limit:  # before the cache, which must not keep long strings
        return Problem(field, f"{len(text)} characters, more than {limit}")
    if not text:
        return None if empty_ok else Problem(field, "must not be empty")
    reason = _name_reason(text)
    return None if reason is None else Problem(field, reason)


@functools.lru_cache(maxsize=4096)
def _name_reason(text: str) -> str | None:
    """Why short ``text`` is no name, or None. Cached: a batch repeats names and keys."""
    problem = _text_problem("", text, len(text))
    if problem is not None:
        return problem.reason
    return f"holds control characters: {_shown(text)}" if _CONTROL.search(text) else None


def _text_problem(field: str, text: str, limit: int) -> Problem | None:
    if len(text) > limit:
        return Problem(field, f"{len(text)} characters, more than {limit}")
    if "\x00" in text:
        return Problem(field, "holds NUL, which PostgreSQL cannot store")
    if not text.isascii() and _SURROGATE.search(text):
        return Problem(field, "holds a lone surrogate, which is not Unicode text")
    return None


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: object) -> str:
    """``value`` for an error detail: short, and ASCII so that any answer can carry it."""
    text = ascii(value)
    return text if len(text) <= 40 else f"{text[:40]}..."
