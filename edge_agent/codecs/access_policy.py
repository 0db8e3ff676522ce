"""The access policy a hub signs and a gateway obeys offline: rules plus a packed badge table.

Pure: the hub builds and checks payloads with it, the gateway parses verified bundles with
it (docs/access-control.md describes every field). A payload has two parts:

* the **rules** an operator writes: time zone, holder categories, zones, services, schedules,
  holidays, entitlements (category × zone or service × schedule) and gates;
* the **badges**: fixed 26-byte records sorted by pseudonym, base64 in one string, so a
  million badges cost 26 MB in memory, parse in milliseconds and are found by binary search
  without building any index.

Anything malformed raises PolicyError: a gateway that cannot read its policy denies.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import itertools
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.codecs.pseudonyms import PSEUDONYM_BYTES
from edge_agent.errors import PolicyError

__all__ = [
    "FORMAT",
    "NO_END",
    "AccessPolicy",
    "BadgeRecord",
    "BadgeTable",
    "Gate",
    "Schedule",
    "Window",
    "Zone",
    "pack_badges",
    "parse_policy",
    "parse_rules",
    "policy_payload",
]

#: Version of the payload layout; a gateway refuses a layout it does not know.
FORMAT = 1
#: ``valid_until_s`` of a badge that never expires.
NO_END = 0xFFFFFFFF
_RECORD = struct.Struct(f">{PSEUDONYM_BYTES}sBBII")
_REVOKED = 0x01
_MASTER = 0x02
_MAX_CATEGORIES = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE_FIELDS = frozenset({"format", "timezone", "categories", "zones", "services", "schedules",
                          "holidays", "entitlements", "gates"})
_BADGE_FIELDS = frozenset({"badges", "badge_count"})

GateMode = Literal["normal", "locked", "open"]
FailMode = Literal["secure", "open"]


@dataclass(frozen=True, slots=True)
class BadgeRecord:
    """One badge as the policy knows it: no name, no raw identifier."""

    pseudonym: bytes
    category: int
    valid_from_s: int = 0
    valid_until_s: int = NO_END
    revoked: bool = False
    master: bool = False

    def pack(self) -> bytes:
        """The record's 26 bytes."""
        flags = (_REVOKED if self.revoked else 0) | (_MASTER if self.master else 0)
        return _RECORD.pack(self.pseudonym, self.category, flags, self.valid_from_s,
                            self.valid_until_s)

    @classmethod
    def unpack(cls, data: bytes) -> BadgeRecord:
        """The record of 26 bytes."""
        pseudonym, category, flags, valid_from_s, valid_until_s = _RECORD.unpack(data)
        return cls(pseudonym, category, valid_from_s, valid_until_s,
                   bool(flags & _REVOKED), bool(flags & _MASTER))


def pack_badges(records: Iterable[BadgeRecord]) -> bytes:
    """The badge table of ``records``: sorted by pseudonym; ValueError on a duplicate."""
    packed = sorted(record.pack() for record in records)
    for before, after in itertools.pairwise(packed):
        if before[:PSEUDONYM_BYTES] == after[:PSEUDONYM_BYTES]:
            raise ValueError(f"badge {before[:PSEUDONYM_BYTES].hex()} appears twice")
    return b"".join(packed)


class BadgeTable:
    """Badges sorted by pseudonym in one bytes object, found by binary search: O(log n)."""

    __slots__ = ("_count", "_data")

    def __init__(self, data: bytes) -> None:
        if len(data) % _RECORD.size:
            raise PolicyError(f"badge table of {len(data)} bytes is not made of "
                              f"{_RECORD.size}-byte records")
        self._data = data
        self._count = len(data) // _RECORD.size

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[BadgeRecord]:
        for offset in range(0, len(self._data), _RECORD.size):
            yield BadgeRecord.unpack(self._data[offset:offset + _RECORD.size])

    def find(self, pseudonym: bytes) -> BadgeRecord | None:
        """The record of ``pseudonym``, or None."""
        data, size, width = self._data, _RECORD.size, PSEUDONYM_BYTES
        low, high = 0, self._count
        while low < high:
            middle = (low + high) // 2
            offset = middle * size
            key = data[offset:offset + width]
            if key < pseudonym:
                low = middle + 1
            elif key > pseudonym:
                high = middle
            else:
                return BadgeRecord.unpack(data[offset:offset + size])
        return None


@dataclass(frozen=True, slots=True)
class Window:
    """Open from ``start_min`` to ``end_min`` (minutes of the local day) on ``days`` (1 = Monday).

    An end at or before the start crosses midnight: the window opens on one of its days and
    closes the next morning. ``end_min`` 1440 is 24:00.
    """

    days: frozenset[int]
    start_min: int
    end_min: int

    def contains(self, weekday: int, minute: int) -> bool:
        """Whether the window is open at ``minute`` of a local day with ISO ``weekday``."""
        if self.start_min < self.end_min:
            return weekday in self.days and self.start_min <= minute < self.end_min
        yesterday = 7 if weekday == 1 else weekday - 1
        return ((weekday in self.days and minute >= self.start_min)
                or (yesterday in self.days and minute < self.end_min))


@dataclass(frozen=True, slots=True)
class Schedule:
    """Weekly windows; closed on the policy's holidays unless told to ignore them."""

    name: str
    windows: tuple[Window, ...]
    observe_holidays: bool = True

    def is_open(self, local: datetime, holidays: frozenset[date]) -> bool:
        """Whether the schedule is open at the local time ``local``."""
        if self.observe_holidays and local.date() in holidays:
            return False
        weekday, minute = local.isoweekday(), local.hour * 60 + local.minute
        return any(window.contains(weekday, minute) for window in self.windows)


@dataclass(frozen=True, slots=True)
class Zone:
    """A place badges enter and leave; anti-passback holds a badge inside for ``antipassback_s``."""

    name: str
    antipassback_s: int = 0


@dataclass(frozen=True, slots=True)
class Gate:
    """An access point: it admits to a zone or gives a service."""

    name: str
    zone: str | None
    service: str | None
    mode: GateMode = "normal"
    fail_mode: FailMode = "secure"
    #: ``in`` and ``out`` gates of an anti-passback zone track who is inside.
    direction: Literal["in", "out"] | None = None

    @property
    def target(self) -> str:
        """What an entitlement must name to let a badge through this gate."""
        return f"zone:{self.zone}" if self.zone is not None else f"service:{self.service}"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """A parsed policy: the rules, indexed for decisions, and the badge table."""

    version: int
    expires_at_ms: int
    timezone: ZoneInfo
    categories: tuple[str, ...]
    zones: Mapping[str, Zone]
    services: frozenset[str]
    schedules: Mapping[str, Schedule]
    holidays: frozenset[date]
    #: (category index, gate target) → schedule names, None meaning always.
    entitlements: Mapping[tuple[int, str], tuple[str | None, ...]]
    gates: Mapping[str, Gate]
    badges: BadgeTable = field(default_factory=lambda: BadgeTable(b""))

    def expired(self, now_ms: int) -> bool:
        """Whether the policy is past its expiry (gates then go to their fail mode)."""
        return now_ms >= self.expires_at_ms

    def category_name(self, index: int) -> str:
        """The name of category ``index`` (``#n`` for an index the rules do not list)."""
        return self.categories[index] if index < len(self.categories) else f"#{index}"


def policy_payload(rules: Mapping[str, Any], badges: bytes) -> dict[str, Any]:
    """The payload a hub signs: checked ``rules`` and a packed badge table."""
    parse_rules(rules)
    if len(badges) % _RECORD.size:
        raise ValueError(f"badge table of {len(badges)} bytes is not whole records")
    return {**rules, "format": FORMAT, "badges": base64.b64encode(badges).decode("ascii"),
            "badge_count": len(badges) // _RECORD.size}


def parse_policy(payload: Any, *, version: int, expires_at_ms: int) -> AccessPolicy:
    """The policy of a verified bundle's payload; PolicyError says what is wrong."""
    if not isinstance(payload, Mapping):
        raise PolicyError("policy payload is not an object")
    _only(payload, _RULE_FIELDS | _BADGE_FIELDS, "policy")
    rules = {key: value for key, value in payload.items() if key not in _BADGE_FIELDS}
    policy = parse_rules(rules, version=version, expires_at_ms=expires_at_ms)
    text = payload.get("badges", "")
    count = payload.get("badge_count", 0)
    if not isinstance(text, str) or not _is_int(count):
        raise PolicyError("badges must be a base64 string and badge_count an integer")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PolicyError(f"badges are not valid base64: {exc}") from None
    table = BadgeTable(data)
    if len(table) != count:
        raise PolicyError(f"badge_count says {count}, the table holds {len(table)}")
    return dataclasses.replace(policy, badges=table)


def parse_rules(rules: Mapping[str, Any], *, version: int = 0,
                expires_at_ms: int = 0) -> AccessPolicy:
    """The rules of a policy, checked for consistency, with an empty badge table.

    The hub calls it on what an operator uploads, so a policy every gateway would refuse
    is refused at the hub, with the same message.
    """
    _only(rules, _RULE_FIELDS, "policy rules")
    if rules.get("format", FORMAT) != FORMAT:
        raise PolicyError(f"policy format {rules.get('format')!r} is not supported "
                          f"(this gateway reads format {FORMAT})")
    timezone = _timezone(rules.get("timezone", "Europe/Paris"))
    categories = tuple(_names(rules.get("categories", []), "categories"))
    if len(categories) > _MAX_CATEGORIES:
        raise PolicyError(f"at most {_MAX_CATEGORIES} categories, got {len(categories)}")
    services = frozenset(_names(rules.get("services", []), "services"))
    zones = {name: _zone(name, spec) for name, spec in _table(rules, "zones").items()}
    schedules = {name: _schedule(name, spec) for name, spec in _table(rules, "schedules").items()}
    holidays = frozenset(_date(text) for text in _list(rules.get("holidays", []), "holidays"))
    gates = {name: _gate(name, spec, zones, services)
             for name, spec in _table(rules, "gates").items()}
    entitlements = _entitlements(rules.get("entitlements", []), categories, zones, services,
                                 schedules)
    return AccessPolicy(version, expires_at_ms, timezone, categories, zones, services,
                        schedules, holidays, entitlements, gates)


def _only(document: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise PolicyError(f"{what}: unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(sorted(allowed))}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError(f"{what} must be a list")
    return value


def _table(rules: Mapping[str, Any], what: str) -> dict[str, Any]:
    value = rules.get(what, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"{what} must be a table of named entries")
    for name in value:
        _name(name, what)
    return dict(value)


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise PolicyError(f"{what}: {value!r} is not a name (letters, digits, . _ -; at most "
                          "64 characters)")
    return value


def _names(value: object, what: str) -> list[str]:
    names = [_name(item, what) for item in _list(value, what)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PolicyError(f"{what}: {', '.join(repeated)} listed twice")
    return names


def _timezone(value: object) -> ZoneInfo:
    if not isinstance(value, str):
        raise PolicyError("timezone must be an IANA name such as Europe/Paris")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(f"unknown time zone {value!r}; use an IANA name such as "
                          "Europe/Paris") from None


def _date(value: object) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PolicyError(f"holidays: {value!r} is not a date like 2026-12-25") from None


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{what} must be a table")
    return value


def _zone(name: str, spec: object) -> Zone:
    fields = _mapping(spec, f"zone {name}")
    _only(fields, frozenset({"antipassback_s"}), f"zone {name}")
    seconds = fields.get("antipassback_s", 0)
    if not _is_int(seconds) or not 0 <= seconds <= 7 * 86_400:
        raise PolicyError(f"zone {name}: antipassback_s must be 0 (off) to 604800 seconds")
    return Zone(name, seconds)


def _schedule(name: str, spec: object) -> Schedule:
    fields = _mapping(spec, f"schedule {name}")
    _only(fields, frozenset({"windows", "observe_holidays"}), f"schedule {name}")
    observe = fields.get("observe_holidays", True)
    if not isinstance(observe, bool):
        raise PolicyError(f"schedule {name}: observe_holidays must be true or false")
    windows = tuple(_window(name, item) for item in _list(fields.get("windows", []),
                                                         f"schedule {name}: windows"))
    return Schedule(name, windows, observe)


def _window(schedule: str, spec: object) -> Window:
    where = f"schedule {schedule}"
    fields = _mapping(spec, f"{where}: window")
    _only(fields, frozenset({"days", "start", "end"}), f"{where}: window")
    start, end = _minute(fields.get("start"), where), _minute(fields.get("end"), where)
    if start == 1440:
        raise PolicyError(f"{where}: a window cannot start at 24:00")
    return Window(_days(fields.get("days", "mon-sun"), where), start, end)


def _minute(value: object, where: str) -> int:
    match = re.fullmatch(r"(\d{2}):(\d{2})", value) if isinstance(value, str) else None
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (99, 99)
    if not ((hours < 24 and minutes < 60) or (hours, minutes) == (24, 0)):
        raise PolicyError(f"{where}: {value!r} is not a time from 00:00 to 24:00")
    return hours * 60 + minutes


def _days(value: object, where: str) -> frozenset[int]:
    items = value.split(",") if isinstance(value, str) else value
    days: set[int] = set()
    for item in _list(items, f"{where}: days"):
        first, _, last = str(item).strip().lower().partition("-")
        if first not in _DAY_NAMES or (last and last not in _DAY_NAMES):
            raise PolicyError(f"{where}: days {item!r}: use mon..sun, ranges like mon-fri, "
                              "or a list")
        low, high = _DAY_NAMES.index(first) + 1, _DAY_NAMES.index(last or first) + 1
        days.update(range(low, high + 1) if low <= high else [*range(low, 8), *range(1, high + 1)])
    return frozenset(days)


def _gate(name: str, spec: object, zones: Mapping[str, Zone], services: frozenset[str]) -> Gate:
    where = f"gate {name}"
    fields = _mapping(spec, where)
    _only(fields, frozenset({"zone", "service", "mode", "fail_mode", "direction"}), where)
    zone, service = fields.get("zone"), fields.get("service")
    if (zone is None) == (service is None):
        raise PolicyError(f"{where}: give exactly one of zone or service")
    if zone is not None and zone not in zones:
        raise PolicyError(f"{where}: zone {zone!r} is not in zones")
    if service is not None and service not in services:
        raise PolicyError(f"{where}: service {service!r} is not in services")
    mode = fields.get("mode", "normal")
    fail_mode = fields.get("fail_mode", "secure")
    direction = fields.get("direction")
    if mode not in ("normal", "locked", "open"):
        raise PolicyError(f"{where}: mode must be normal, locked or open, not {mode!r}")
    if fail_mode not in ("secure", "open"):
        raise PolicyError(f"{where}: fail_mode must be secure or open, not {fail_mode!r}")
    if direction not in (None, "in", "out"):
        raise PolicyError(f"{where}: direction must be in or out, not {direction!r}")
    return Gate(name, zone, service, mode, fail_mode, direction)


def _entitlements(
    value: object,
    categories: tuple[str, ...],
    zones: Mapping[str, Zone],
    services: frozenset[str],
    schedules: Mapping[str, Schedule],
) -> dict[tuple[int, str], tuple[str | None, ...]]:
    granted: dict[tuple[int, str], tuple[str | None, ...]] = {}
    for number, spec in enumerate(_list(value, "entitlements"), start=1):
        where = f"entitlement {number}"
        fields = _mapping(spec, where)
        _only(fields, frozenset({"category", "zone", "service", "schedule"}), where)
        category = fields.get("category")
        if category not in categories:
            raise PolicyError(f"{where}: category {category!r} is not in categories")
        zone, service = fields.get("zone"), fields.get("service")
        if (zone is None) == (service is None):
            raise PolicyError(f"{where}: give exactly one of zone or service")
        if zone is not None and zone not in zones:
            raise PolicyError(f"{where}: zone {zone!r} is not in zones")
        if service is not None and service not in services:
            raise PolicyError(f"{where}: service {service!r} is not in services")
        schedule = fields.get("schedule")
        if schedule is not None and schedule not in schedules:
            raise PolicyError(f"{where}: schedule {schedule!r} is not in schedules")
        key = (categories.index(category), f"zone:{zone}" if zone is not None
               else f"service:{service}")
        granted[key] = (*granted.get(key, ()), schedule)
    return granted
