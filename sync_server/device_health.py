"""The newest ``device.health`` event of each device of a gateway: what the Gateway page
shows as health and fault counters.

The agent sends one such event per polled device every ``[sync] health_interval_s``
(edge_agent/health_reports.py); the hub stores them as any event, and reads the newest one of
each device from the ``(gateway_id, device, ts_ms)`` index in one statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select, union_all

from sync_server.bad_records import readable_event
from sync_server.db.schema import events, gateways

__all__ = ["HEALTH_EVENT", "latest_device_health"]

HEALTH_EVENT = "device.health"
#: SQLite takes at most 500 SELECTs in one UNION.
_DEVICES_PER_STATEMENT = 200


def latest_device_health(conn: Connection, territory_id: int, gateway: str,
                         device_names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Device name → its newest health report (the event's attrs and ``reported_ms``);
    devices that never reported are left out."""
    gateway_id = conn.execute(select(gateways.c.id).where(
        gateways.c.territory_id == territory_id, gateways.c.name == gateway)).scalar()
    names = list(device_names)
    if gateway_id is None or not names:
        return {}
    # One statement, one short backward index scan per device: a dashboard watching a
    # gateway of 40 devices reads it twice a second.
    newest_each = [
        select(events.c.device, events.c.ts_ms, events.c.attrs, events.c.seq,
               events.c.stream_id)
        .where(events.c.gateway_id == gateway_id, events.c.device == name,
               events.c.kind == HEALTH_EVENT)
        .order_by(events.c.ts_ms.desc()).limit(1).subquery().select()
        for name in names]
    newest: dict[str, dict[str, Any]] = {}
    for start in range(0, len(newest_each), _DEVICES_PER_STATEMENT):
        chunk = newest_each[start:start + _DEVICES_PER_STATEMENT]
        for row in conn.execute(union_all(*chunk)):
            attrs = readable_event("events", f"stream {row.stream_id} seq {row.seq}",
                                   HEALTH_EVENT, row.device, row.ts_ms, row.attrs)
            if attrs is not None:
                newest[row.device] = {**attrs, "reported_ms": row.ts_ms}
    return newest
