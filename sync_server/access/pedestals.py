"""Berth pedestals at the hub: each one free or in use, and the sessions it has closed.

A pedestal is a device whose gateway sends ``session.opened`` and ``session.closed``
(edge_agent/access/sessions.py); its state is its newest session event. The running
session's kWh and m³ are its meters' newest polled index minus the index at opening: the
opening names its meters, so the hub needs no copy of the gateway's pedestal settings.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import Connection, func, select

from sync_server.db.schema import badges, events, gateways
from sync_server.queries import Scope, events_page, latest_values

__all__ = ["CLOSED", "ENERGY", "OPENED", "WATER", "badge_labels", "pedestals", "sessions"]

OPENED = "session.opened"
CLOSED = "session.closed"
ENERGY = "active_energy_import"
WATER = "water_volume"


def pedestals(conn: Connection, territory: int) -> list[dict[str, Any]]:
    """Every pedestal of ``territory`` by gateway and name, with its running session if any."""
    newest = (select(events.c.gateway_id, events.c.device,
                     func.max(events.c.ts_ms).label("ts_ms"))
              .where(events.c.territory_id == territory, events.c.kind.in_((OPENED, CLOSED)))
              .group_by(events.c.gateway_id, events.c.device).subquery("newest"))
    query = (select(gateways.c.name.label("gateway"), events.c.device, events.c.kind,
                    events.c.ts_ms, events.c.attrs)
             .join_from(events, newest, (events.c.gateway_id == newest.c.gateway_id)
                        & (events.c.device == newest.c.device)
                        & (events.c.ts_ms == newest.c.ts_ms))
             .join(gateways, events.c.gateway_id == gateways.c.id)
             .where(events.c.territory_id == territory, events.c.kind.in_((OPENED, CLOSED)))
             .order_by(gateways.c.name, events.c.device, events.c.stream_id, events.c.seq))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in conn.execute(query):  # the same millisecond twice: the later record wins
        attrs = json.loads(row.attrs)
        found[(row.gateway, row.device)] = {
            "gateway": row.gateway, "pedestal": row.device, "in_use": row.kind == OPENED,
            "since_ms": row.ts_ms, "badge": attrs.get("badge") if row.kind == OPENED else None,
            "kwh": None, "m3": None, "attrs": attrs}
    for pedestal in found.values():
        attrs = pedestal.pop("attrs")
        if pedestal["in_use"]:
            scope = Scope(territory)
            pedestal["kwh"] = _used(conn, scope, pedestal["gateway"], attrs.get("energy_meter"),
                                    ENERGY, attrs.get("energy_start_kwh"))
            pedestal["m3"] = _used(conn, scope, pedestal["gateway"], attrs.get("water_meter"),
                                   WATER, attrs.get("water_start_m3"))
    return [found[key] for key in sorted(found)]


def sessions(conn: Connection, territory: int, *, limit: int, from_ms: int | None = None,
             to_ms: int | None = None) -> list[dict[str, Any]]:
    """Closed sessions, newest first: pedestal, badge, start, end, kWh, m³ and why it ended."""
    rows = []
    for event in events_page(conn, Scope(territory), gateway=None, kind=CLOSED, device=None,
                             from_ms=from_ms, to_ms=to_ms, limit=limit):
        attrs = event["attrs"]
        rows.append({"gateway": event["gateway"], "pedestal": event["device"],
                     "badge": attrs.get("badge"), "started_ms": attrs.get("started_ms"),
                     "ended_ms": attrs.get("ended_ms") or event["ts_ms"],
                     "kwh": _number(attrs.get("kwh")), "m3": _number(attrs.get("m3")),
                     "reason": attrs.get("reason")})
    return rows


def badge_labels(conn: Connection, territory: int, pseudonyms: set[str]
                 ) -> dict[str, str | None]:
    """The operator's label of each registered badge among ``pseudonyms`` (hex)."""
    wanted = {bytes.fromhex(p) for p in pseudonyms if isinstance(p, str) and len(p) == 32
              and all(c in "0123456789abcdef" for c in p)}
    if not wanted:
        return {}
    query = select(badges.c.pseudonym, badges.c.label).where(
        badges.c.territory_id == territory, badges.c.pseudonym.in_(wanted))
    return {bytes(p).hex(): label for p, label in conn.execute(query)}


def _used(conn: Connection, scope: Scope, gateway: str, meter: object, quantity: str,
          start: object) -> float | None:
    """The meter's newest index minus ``start``, or None when either is unknown."""
    begin = _number(start)
    if not isinstance(meter, str) or begin is None:
        return None
    values = latest_values(conn, scope, gateway=gateway, device=meter, quantity=quantity)
    now = _number(values[0]["value"]) if values else None
    return None if now is None else max(0.0, now - begin)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
