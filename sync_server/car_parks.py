"""Car parks at the hub: each one's latest occupancy, capacity, free spaces and full flag.

A car park is a device whose gateway sends ``parking_occupancy`` and ``parking_capacity``
readings (the device is the car park's name). Values come through ``latest_values``, so the
newest reading per series is read from the ``(series_id, ts_ms)`` index however many are
stored; the full flag is the newest ``car_park.full`` or ``car_park.available`` event of the
car park, found on the ``(gateway_id, device, ts_ms)`` index of events.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, Select, select

from sync_server.db.schema import events, gateways, series, territories
from sync_server.queries import Scope, latest_values, require_gateway, scoped

__all__ = ["AVAILABLE", "CAPACITY", "FULL", "OCCUPANCY", "car_parks"]

OCCUPANCY = "parking_occupancy"
CAPACITY = "parking_capacity"
FULL = "car_park.full"
AVAILABLE = "car_park.available"

_Key = tuple[str, str, str]


def car_parks(conn: Connection, scope: Scope, *, gateway: str | None = None
              ) -> list[dict[str, Any]]:
    """Every car park in ``scope`` (of ``gateway`` if named), by gateway and name."""
    require_gateway(conn, scope, gateway)
    parks: dict[_Key, dict[str, Any]] = {}
    for quantity, field in ((OCCUPANCY, "occupancy"), (CAPACITY, "capacity")):
        for value in latest_values(conn, scope, gateway=gateway, device=None,
                                   quantity=quantity):
            park = parks.setdefault((value["territory"], value["gateway"], value["device"]),
                                    _empty(value["territory"], value["gateway"],
                                           value["device"]))
            park[field] = _count(value["value"])
            park[f"{field}_ms"] = value["ts_ms"]
    for row in conn.execute(_states(scope, gateway)):
        found = parks.get((row.territory, row.gateway, row.device))
        if found is not None:  # None: a series whose readings are all gone
            found["full"] = None if row.kind is None else row.kind == FULL
            found["full_since_ms"] = row.ts_ms
    for park in parks.values():
        if park["occupancy"] is not None and park["capacity"] is not None:
            park["free"] = max(0, park["capacity"] - park["occupancy"])
    return [parks[key] for key in sorted(parks)]


def _empty(territory: str, gateway: str, device: str) -> dict[str, Any]:
    return {"territory": territory, "gateway": gateway, "car_park": device,
            "occupancy": None, "occupancy_ms": None, "capacity": None, "capacity_ms": None,
            "free": None, "full": None, "full_since_ms": None}


def _count(value: float | None) -> int | None:
    """Vehicles and spaces are whole: an invalid (NULL) or infinite value is unknown."""
    return None if value is None or not math.isfinite(value) else round(value)


def _states(scope: Scope, gateway: str | None) -> Select[Any]:
    """Each car park's newest full/available event: its kind and time (NULL if none)."""
    parks = scoped(select(series.c.territory_id, series.c.gateway_id, series.c.device)
                   .where(series.c.quantity.in_((OCCUPANCY, CAPACITY))).distinct(),
                   scope, series.c.territory_id).subquery("parks")
    newest = (select(events.c.kind, events.c.ts_ms)
              .where(events.c.gateway_id == parks.c.gateway_id,
                     events.c.device == parks.c.device, events.c.kind.in_((FULL, AVAILABLE)))
              .order_by(events.c.ts_ms.desc(), events.c.stream_id.desc(), events.c.seq.desc())
              .limit(1).correlate(parks))
    query = (select(territories.c.name.label("territory"), gateways.c.name.label("gateway"),
                    parks.c.device,
                    newest.with_only_columns(events.c.kind).scalar_subquery().label("kind"),
                    newest.with_only_columns(events.c.ts_ms).scalar_subquery().label("ts_ms"))
             .join_from(parks, gateways, parks.c.gateway_id == gateways.c.id)
             .join(territories, parks.c.territory_id == territories.c.id))
    return query if gateway is None else query.where(gateways.c.name == gateway)
