"""Device: a chart per quantity over a day, a week, a month or a year, and the same
buckets as CSV.

The hub buckets in SQL (queries.time_series): 288 five-minute buckets for a day, 336
half-hours for a week, 240 three-hour buckets for a month, 365 days for a year. The month
and the year read the hourly and daily rollups (sync_server/series_buckets.py), so their
cost does not grow with the readings behind them.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from edge_agent.records import now_ms
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest, NotFound
from sync_server.queries import Scope, declared_devices, latest_values, time_series
from sync_server.ui.charts import ChartFrame, line_chart
from sync_server.ui.i18n import N_, Formats
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import in_territory, language_of, render, ui_state

__all__ = ["RANGES", "Range", "router"]


@dataclass(frozen=True, slots=True)
class Range:
    """A chart's span, its bucket and how its time axis reads (a CLDR pattern)."""

    label: str
    span_s: int
    bucket_s: int
    tick_pattern: str


RANGES = {
    "day": Range(N_("day"), 86_400, 300, "HH:mm"),
    "week": Range(N_("week"), 7 * 86_400, 1800, "EEE d"),
    "month": Range(N_("month"), 30 * 86_400, 3 * 3600, "d MMM"),
    "year": Range(N_("year"), 365 * 86_400, 86_400, "MMM yy"),
}
_TICKS = 6
#: What a download's file name keeps of the names (a header is Latin-1, and quoted).
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

router = APIRouter(route_class=DoorRoute)
Reader = Annotated[Viewer, Depends(in_territory("operator", "admin"))]
#: ``?range=week``: the query's name, not Python's builtin.
Period = Annotated[str, Query(alias="range")]


def _range(name: str) -> Range:
    if name not in RANGES:
        raise BadRequest(f"range must be one of {', '.join(RANGES)}, got {name[:20]!r}")
    return RANGES[name]


def _window(chosen: Range) -> tuple[int, int]:
    """[from, to) ending with the current bucket, aligned to buckets."""
    bucket_ms = chosen.bucket_s * 1000
    to_ms = (now_ms() // bucket_ms + 1) * bucket_ms
    return to_ms - chosen.span_s * 1000, to_ms


def _quantities(conn: Connection, scope: Scope, gateway: str, device: str) -> list[str]:
    """The device's quantities; NotFound alike for another territory's and a missing one."""
    declared = [d for d in declared_devices(conn, scope, gateway) if d["name"] == device]
    names = {value["quantity"] for value in latest_values(conn, scope, gateway=gateway,
                                                          device=device, quantity=None)}
    if not declared and not names:
        raise NotFound("no device of that name on this gateway")
    return sorted(names | set(declared[0]["quantities"] if declared else []))


def device_view(request: Request, viewer: Viewer, gateway: str, device: str,
                range_name: str) -> dict[str, Any]:
    """The page's charts, one per quantity."""
    chosen = _range(range_name)
    from_ms, to_ms = _window(chosen)
    fmt = Formats(language_of(request))
    step = (to_ms - from_ms) // _TICKS
    ticks = [(from_ms + step * i, fmt.pattern(from_ms + step * i, chosen.tick_pattern))
             for i in range(1, _TICKS)]
    charts = []
    with reading(ui_state(request).hub.engine) as conn:
        for quantity in _quantities(conn, viewer.scope, gateway, device):
            buckets = time_series(conn, viewer.scope, gateway=gateway, device=device,
                                  quantity=quantity, from_ms=from_ms, to_ms=to_ms,
                                  bucket_s=chosen.bucket_s)
            frame = ChartFrame(from_ms, to_ms, chosen.bucket_s * 1000, ticks, fmt.number,
                               f"{device} {quantity}")
            latest = buckets[-1] if buckets else None
            charts.append({"quantity": quantity, "svg": line_chart(buckets, frame),
                           "buckets": len(buckets), "latest": latest})
    return {"charts": charts, "range_name": range_name, "ranges": RANGES}


@router.get("/gateways/{gateway}/devices/{device}", response_class=HTMLResponse)
def device_page(request: Request, viewer: Reader, gateway: str, device: str,
                period: Period = "day") -> Response:
    """The device's charts."""
    return render(request, "device.html", viewer, gateway=gateway, device=device,
                  **device_view(request, viewer, gateway, device, period))


@router.get("/gateways/{gateway}/devices/{device}/series.csv")
def device_csv(request: Request, viewer: Reader, gateway: str, device: str, quantity: str,
               period: Period = "day") -> Response:
    """The chart's buckets as CSV: start (UTC, ISO 8601), avg, min, max, count."""
    chosen = _range(period)
    from_ms, to_ms = _window(chosen)
    with reading(ui_state(request).hub.engine) as conn:
        if quantity not in _quantities(conn, viewer.scope, gateway, device):
            raise NotFound("no such quantity on this device")
        buckets = time_series(conn, viewer.scope, gateway=gateway, device=device,
                              quantity=quantity, from_ms=from_ms, to_ms=to_ms,
                              bucket_s=chosen.bucket_s)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["bucket_start_utc", "avg", "min", "max", "count"])
    for bucket in buckets:
        start = datetime.fromtimestamp(bucket["bucket_ms"] / 1000, UTC)
        writer.writerow([start.isoformat().replace("+00:00", "Z"), bucket["avg"],
                         bucket["min"], bucket["max"], bucket["count"]])
    filename = _SAFE.sub("_", f"{gateway}-{device}-{quantity}-{period}") + ".csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
