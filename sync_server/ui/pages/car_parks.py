"""Car parks: each one's free spaces out of its capacity, full or not, and the day's
occupancy curve since local midnight, live.

What the hub holds (sync_server/car_parks.py): the newest ``parking_occupancy`` and
``parking_capacity`` readings and full/available events; the curve is the occupancy's
quarter-hour buckets of the same readings
(average, and the band from minimum to maximum), drawn by charts.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from edge_agent.records import now_ms
from sync_server.admin import territory_id
from sync_server.api.limits import DoorRoute
from sync_server.car_parks import OCCUPANCY, car_parks
from sync_server.db.engine import reading
from sync_server.queries import Scope, time_series
from sync_server.ui.charts import ChartFrame, line_chart
from sync_server.ui.i18n import N_, TIMEZONE
from sync_server.ui.live import event_stream
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import NavEntry, render, requires, ui_state

__all__ = ["NAV", "router"]

NAV = NavEntry(N_("Car parks"), "/car-parks", ("operator", "admin"))
#: The curve's step: 96 points a day.
BUCKET_S = 900

router = APIRouter(route_class=DoorRoute)
Reader = Annotated[Viewer, Depends(requires("operator", "admin"))]


def parks(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    """Every car park the viewer may see, each with its curve since local midnight."""
    now = now_ms()
    midnight = datetime.fromtimestamp(now / 1000, TIMEZONE).replace(
        hour=0, minute=0, second=0, microsecond=0)
    start = int(midnight.timestamp() * 1000)
    end = int((midnight + timedelta(days=1)).timestamp() * 1000)  # 23 or 25 h at DST
    ticks = [(start + hours * 3_600_000, f"{hours:02d}:00") for hours in (0, 6, 12, 18, 24)]
    with reading(ui_state(request).hub.engine) as conn:
        found = car_parks(conn, viewer.scope)
        for park in found:
            scope = Scope(territory_id(conn, park["territory"]))
            buckets = time_series(conn, scope, gateway=park["gateway"],
                                  device=park["car_park"], quantity=OCCUPANCY,
                                  from_ms=start, to_ms=now + 1, bucket_s=BUCKET_S)
            park["curve"] = line_chart(buckets, ChartFrame(
                start, end, BUCKET_S * 1000, ticks, _vehicles, park["car_park"]))
    return found


def _vehicles(value: float) -> str:
    return f"{value:g}"


@router.get("/car-parks", response_class=HTMLResponse)
def car_parks_page(request: Request, viewer: Reader) -> Response:
    """Every car park's state and curve."""
    return render(request, "car_parks.html", viewer, parks=parks(request, viewer))


@router.get("/car-parks/live")
def car_parks_live(request: Request, viewer: Reader) -> Response:
    """The car parks again whenever one changes (SSE)."""
    def fragments() -> dict[str, str]:
        html = render(request, "car_parks_cards.html", viewer,
                      parks=parks(request, viewer)).body
        return {"parks": bytes(html).decode("utf-8")}

    return event_stream(request, fragments, every_s=2.0)
