"""What operators read: latest values, bucketed time series, events, gateway health.

Every query takes the caller's territory (None only for admin tokens) and filters on it in
SQL, so an operator can never see another territory's rows, whatever names they pass.
A stored row no answer could carry (stored before ingest checked records, or written to the
database directly) is skipped and counted (sync_server/bad_records.py): the rest answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, select

from sync_server.bad_records import readable_event, readable_reading, skip_row
from sync_server.db.schema import (
    devices,
    events,
    gateways,
    readings,
    series,
    sites,
    streams,
    territories,
)
from sync_server.errors import BadRequest, NotFound
from sync_server.record_checks import Problem
from sync_server.series_buckets import series_buckets

__all__ = [
    "MAX_BUCKETS",
    "MAX_EVENTS",
    "Scope",
    "declared_devices",
    "events_page",
    "gateway_health",
    "latest_values",
    "require_gateway",
    "scoped",
    "time_series",
]

MAX_BUCKETS = 10_000
MAX_EVENTS = 1_000


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose data a query may touch: one territory, or every one (admin)."""

    territory_id: int | None


def scoped(query: Select[Any], scope: Scope, territory_column: Any) -> Select[Any]:
    """``query`` limited to ``scope``'s territory, in SQL (untouched for admin scopes)."""
    if scope.territory_id is None:
        return query
    return query.where(territory_column == scope.territory_id)


def require_gateway(conn: Connection, scope: Scope, name: str | None) -> None:
    """NotFound unless ``scope`` holds a gateway ``name``: elsewhere and nowhere look alike."""
    if name is None:
        return
    query = scoped(select(gateways.c.id).where(gateways.c.name == name).limit(1), scope,
                   gateways.c.territory_id)
    if conn.execute(query).first() is None:
        raise NotFound("no gateway of that name is visible to this token")


def declared_devices(conn: Connection, scope: Scope, gateway: str) -> list[dict[str, Any]]:
    """The devices ``gateway`` declared (name, profile, quantities), by name."""
    require_gateway(conn, scope, gateway)
    query = scoped(
        select(devices.c.name, devices.c.profile, devices.c.quantities, devices.c.declared_ms)
        .join_from(devices, gateways, devices.c.gateway_id == gateways.c.id)
        .where(gateways.c.name == gateway).order_by(devices.c.name),
        scope, devices.c.territory_id)
    return [{**row._mapping, "quantities": json.loads(row.quantities)}
            for row in conn.execute(query)]


def latest_values(
    conn: Connection, scope: Scope, *, gateway: str | None, device: str | None,
    quantity: str | None,
) -> list[dict[str, Any]]:
    """The newest value of every matching (gateway, device, quantity).

    Read from the ``(series_id, ts_ms)`` index rather than kept up to date at ingest: an
    update per series per batch cost half of the ingest time.
    """
    require_gateway(conn, scope, gateway)
    newest_ts = (select(func.max(readings.c.ts_ms)).where(readings.c.series_id == series.c.id)
                 .correlate(series).scalar_subquery())
    query = (
        select(series.c.id, territories.c.name.label("territory"),
               gateways.c.name.label("gateway"), series.c.device, series.c.quantity,
               readings.c.ts_ms, readings.c.value, readings.c.quality)
        .join_from(series, gateways, series.c.gateway_id == gateways.c.id)
        .join(territories, series.c.territory_id == territories.c.id)
        .join(readings, (readings.c.series_id == series.c.id) & (readings.c.ts_ms == newest_ts))
        .order_by(gateways.c.name, series.c.device, series.c.quantity, readings.c.seq.desc())
    )
    query = scoped(query, scope, series.c.territory_id)
    for column, wanted in ((gateways.c.name, gateway), (series.c.device, device),
                           (series.c.quantity, quantity)):
        if wanted is not None:
            query = query.where(column == wanted)
    rows: dict[int, dict[str, Any]] = {}
    for row in conn.execute(query):
        fields = dict(row._mapping)
        if readable_reading("latest", f"series {fields['id']}", row.device, row.quantity,
                            row.ts_ms, row.value):
            rows.setdefault(fields.pop("id"), fields)
    return list(rows.values())


def time_series(
    conn: Connection, scope: Scope, *, gateway: str, device: str, quantity: str,
    from_ms: int, to_ms: int, bucket_s: int,
) -> list[dict[str, Any]]:
    """avg, min, max, count of finite values per bucket of ``bucket_s`` s in [from_ms, to_ms)
    (values beyond ±1e290 left out, counted as skipped: sync_server/rollups.py says why).

    Buckets of whole hours or days read the rollups (sync_server/series_buckets.py).
    """
    if to_ms <= from_ms:
        raise BadRequest(f"to_ms ({to_ms}) must be after from_ms ({from_ms})")
    bucket_ms = bucket_s * 1000
    if bucket_ms <= 0 or (to_ms - from_ms) // bucket_ms > MAX_BUCKETS:
        raise BadRequest(
            f"bucket_s must be positive and give at most {MAX_BUCKETS} buckets over the range")
    require_gateway(conn, scope, gateway)
    series_ids = scoped(
        select(series.c.id).join_from(series, gateways, series.c.gateway_id == gateways.c.id)
        .where(gateways.c.name == gateway, series.c.device == device,
               series.c.quantity == quantity),
        scope, series.c.territory_id)
    ids = [int(sid) for sid in conn.execute(series_ids).scalars()]
    buckets = []
    for key, found in series_buckets(conn, ids, from_ms, to_ms, bucket_ms).items():
        if found.stored > found.count:
            skip_row("series", f"{gateway}/{device}/{quantity} bucket {key}",
                     Problem("value", "not a finite number within ±1e290"),
                     rows=found.stored - found.count)
        if found.count:
            buckets.append({"bucket_ms": key, "avg": found.sum / found.count,
                            "min": found.min, "max": found.max, "count": found.count})
    return buckets


def events_page(
    conn: Connection, scope: Scope, *, gateway: str | None, kind: str | None,
    device: str | None, from_ms: int | None, to_ms: int | None, limit: int,
) -> list[dict[str, Any]]:
    """Matching events, newest first, at most ``limit`` (≤ MAX_EVENTS)."""
    if not 1 <= limit <= MAX_EVENTS:
        raise BadRequest(f"limit must be between 1 and {MAX_EVENTS}, got {limit}")
    require_gateway(conn, scope, gateway)
    query = (
        select(territories.c.name.label("territory"), gateways.c.name.label("gateway"),
               events.c.kind, events.c.device, events.c.ts_ms, events.c.attrs, events.c.seq,
               events.c.stream_id)
        .join_from(events, gateways, events.c.gateway_id == gateways.c.id)
        .join(territories, events.c.territory_id == territories.c.id)
        .order_by(events.c.ts_ms.desc(), events.c.seq.desc()).limit(limit)
    )
    query = scoped(query, scope, events.c.territory_id)
    for column, wanted in ((gateways.c.name, gateway), (events.c.kind, kind),
                           (events.c.device, device)):
        if wanted is not None:
            query = query.where(column == wanted)
    if from_ms is not None:
        query = query.where(events.c.ts_ms >= from_ms)
    if to_ms is not None:
        query = query.where(events.c.ts_ms < to_ms)
    page = []
    for row in conn.execute(query):
        attrs = readable_event("events", f"stream {row.stream_id} seq {row.seq}", row.kind,
                               row.device, row.ts_ms, row.attrs)
        if attrs is not None:
            fields = dict(row._mapping)
            del fields["stream_id"]
            page.append({**fields, "attrs": attrs})
    return page


def gateway_health(conn: Connection, territory: int | None) -> list[dict[str, Any]]:
    """Every gateway of ``territory`` (all when None) with what an operator checks first."""
    query = (
        select(territories.c.name.label("territory"), sites.c.name.label("site"),
               gateways.c.id, gateways.c.name.label("gateway"), gateways.c.enrolled_ms,
               gateways.c.last_seen_ms, gateways.c.backlog, gateways.c.clock_skew_ms,
               gateways.c.implausible_ts_total, gateways.c.agent_version,
               gateways.c.sync_lag_ms, gateways.c.held_policy_version,
               gateways.c.held_config_version)
        .join_from(gateways, territories, gateways.c.territory_id == territories.c.id)
        .join(sites, gateways.c.site_id == sites.c.id)
        .order_by(territories.c.name, gateways.c.name)
    )
    if territory is not None:
        query = query.where(gateways.c.territory_id == territory)
    rows = [dict(row._mapping) for row in conn.execute(query)]
    acked: dict[int, dict[str, int]] = {}
    stream_query = (select(streams.c.gateway_id, streams.c.name, streams.c.acked_seq)
                    .join(gateways, (streams.c.gateway_id == gateways.c.id)
                          & (streams.c.incarnation == gateways.c.incarnation)))
    if territory is not None:
        stream_query = stream_query.where(streams.c.territory_id == territory)
    for gid, stream, seq in conn.execute(stream_query):
        acked.setdefault(gid, {})[stream] = seq
    for row in rows:
        row["acked"] = acked.get(row.pop("id"), {})
    return rows
