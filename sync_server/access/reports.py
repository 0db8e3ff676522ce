"""Reports from the events gateways push: consumption per badge, pedestal or month, and
service use by holder category and hour, safe to publish.

The attributes read are those of docs/access-hub.md: ``session.closed`` {badge, started_ms,
ended_ms, kwh, m3} and ``access.granted`` {badge, category, service}. Attributes are JSON
text whose SQL functions differ between SQLite and PostgreSQL, so a month of one
territory's events is read by index (territory, time) and summed here. Months are those of
the territory's time zone. A value that is not a finite, non-negative number counts as
missing; a session pushed twice (a re-provisioned gateway replaying its last batch) counts
once; an event no reader could read (sync_server/record_checks.py) is skipped and counted.
Only badges of the territory's registry count towards k: a gateway can send any 32 hex
digits, and made-up pseudonyms must not make a cell of fewer than k people public.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from sync_server.access.policy import territory_timezone
from sync_server.bad_records import readable_event
from sync_server.db.schema import badges, events, gateways
from sync_server.errors import BadRequest

__all__ = [
    "GROUPINGS",
    "Grouping",
    "consumption",
    "grouping",
    "month_range",
    "service_statistics",
]

Grouping = Literal["badge", "pedestal", "month"]
GROUPINGS: tuple[Grouping, ...] = ("badge", "pedestal", "month")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
_DAY_MS = 86_400_000
_BATCH = 5000
#: Beyond this a meter total is garbage, not a marina's month.
_MAX_AMOUNT = 1e9


def grouping(text: str) -> Grouping:
    """``text`` as a consumption grouping; BadRequest unless badge, pedestal or month."""
    for known in GROUPINGS:
        if text == known:
            return known
    raise BadRequest(f"group by one of {', '.join(GROUPINGS)}, not {text!r}")


def month_range(month: str, timezone: ZoneInfo) -> tuple[int, int]:
    """UTC ms of the first instant of local month ``YYYY-MM`` and of the next month."""
    match = _MONTH.fullmatch(month)
    year, number = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not (1970 <= year <= 9998 and 1 <= number <= 12):
        raise BadRequest(f"month {month!r} is not like 2026-07")
    start = datetime(year, number, 1, tzinfo=timezone)
    after = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=timezone)
    return int(start.timestamp() * 1000), int(after.timestamp() * 1000)


def consumption(conn: Connection, territory: int, *, by: Grouping,
                month: str | None = None) -> dict[str, Any]:
    """kWh, m³ and sessions of closed pedestal sessions, grouped ``by`` badge, pedestal or
    month, over one month or all time (a session belongs to the month it ended in)."""
    timezone = territory_timezone(conn, territory)
    bounds = None if month is None else month_range(month, timezone)
    seen: set[tuple[Any, ...]] = set()
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for gateway, device, stream, seq, ts, attrs in _events(conn, territory, "session.closed",
                                                           bounds, margin_ms=_DAY_MS):
        ended = _integer(attrs.get("ended_ms")) or ts
        if bounds is not None and not bounds[0] <= ended < bounds[1]:
            continue
        badge = _badge(attrs.get("badge"))
        started = _integer(attrs.get("started_ms"))
        session = ((gateway, device, badge, started) if started is not None
                   else (stream, seq))
        if session in seen:
            continue
        seen.add(session)
        if by == "badge":
            key: tuple[Any, ...] = (badge,)
        elif by == "pedestal":
            key = (gateway, device)
        else:
            key = (datetime.fromtimestamp(ended / 1000, timezone).strftime("%Y-%m"),)
        group = groups.setdefault(key, {"sessions": 0, "kwh": 0.0, "m3": 0.0})
        group["sessions"] += 1
        group["kwh"] += _amount(attrs.get("kwh"))
        group["m3"] += _amount(attrs.get("m3"))
    labels = _badge_labels(conn, territory) if by == "badge" else {}
    rows = []
    for key, group in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        if by == "badge":
            category, label = labels.get(key[0], (None, None))
            named: dict[str, Any] = {"badge": key[0], "category": category, "label": label}
        elif by == "pedestal":
            named = {"gateway": key[0], "pedestal": key[1]}
        else:
            named = {"month": key[0]}
        rows.append({**named, "sessions": group["sessions"], "kwh": round(group["kwh"], 3),
                     "m3": round(group["m3"], 3)})
    return {"by": by, "month": month, "timezone": timezone.key, "rows": rows,
            "totals": {"sessions": sum(r["sessions"] for r in rows),
                       "kwh": round(sum(r["kwh"] for r in rows), 3),
                       "m3": round(sum(r["m3"] for r in rows), 3)}}


def service_statistics(conn: Connection, territory: int, *, k: int,
                       month: str | None = None) -> dict[str, Any]:
    """Granted uses of each service by holder category and local hour of the day.

    A cell is published only when at least ``k`` distinct badges make it up; the others
    are left out entirely and only counted, so no published figure describes fewer than
    ``k`` people. Manual openings (no badge) are not uses of a holder and are not counted,
    nor are badges the territory's registry never held (made up by a gateway).
    """
    timezone = territory_timezone(conn, territory)
    bounds = None if month is None else month_range(month, timezone)
    registered = set(_badge_labels(conn, territory))
    cells: dict[tuple[str, str, int], tuple[list[int], set[str]]] = {}
    for _, _, _, _, ts, attrs in _events(conn, territory, "access.granted", bounds,
                                         margin_ms=0):
        service, badge = attrs.get("service"), _badge(attrs.get("badge"))
        if not isinstance(service, str) or badge not in registered:
            continue
        category = attrs.get("category")
        hour = datetime.fromtimestamp(ts / 1000, timezone).hour
        key = (service, category if isinstance(category, str) else "unknown", hour)
        uses, holders = cells.setdefault(key, ([0], set()))
        uses[0] += 1
        holders.add(badge)
    published = [{"service": service, "category": category, "hour": hour,
                  "uses": uses[0], "badges": len(holders)}
                 for (service, category, hour), (uses, holders) in sorted(cells.items())
                 if len(holders) >= k]
    return {"month": month, "timezone": timezone.key, "k": k, "cells": published,
            "suppressed_cells": len(cells) - len(published)}


def _events(
    conn: Connection, territory: int, kind: str, bounds: tuple[int, int] | None, *,
    margin_ms: int,
) -> Iterator[tuple[str, str, int, int, int, dict[str, Any]]]:
    """(gateway, device, stream, seq, ts_ms, attrs) of the territory's events of ``kind``."""
    query = (select(gateways.c.name, events.c.device, events.c.stream_id, events.c.seq,
                    events.c.ts_ms, events.c.attrs)
             .join_from(events, gateways, events.c.gateway_id == gateways.c.id)
             .where(events.c.territory_id == territory, events.c.kind == kind))
    if bounds is not None:
        query = query.where(events.c.ts_ms >= bounds[0] - margin_ms,
                            events.c.ts_ms < bounds[1] + margin_ms)
    # Streamed: all time on a busy territory is millions of rows.
    for gateway, device, stream, seq, ts, text in conn.execute(
            query.execution_options(yield_per=_BATCH)):
        attrs = readable_event("reports", f"stream {stream} seq {seq}", kind, device, ts, text)
        if attrs is not None:
            yield str(gateway), device, int(stream), int(seq), ts, attrs


def _badge(value: object) -> str | None:
    return value if isinstance(value, str) and _PSEUDONYM.fullmatch(value) else None


def _integer(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


def _amount(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and 0 <= number < _MAX_AMOUNT:
            return number
    return 0.0


def _badge_labels(conn: Connection, territory: int) -> dict[str, tuple[str, str | None]]:
    """Category and label of each registered badge, by pseudonym hex: for billing."""
    query = select(badges.c.pseudonym, badges.c.category, badges.c.label).where(
        badges.c.territory_id == territory)
    return {bytes(p).hex(): (str(category), label) for p, category, label in conn.execute(query)}
