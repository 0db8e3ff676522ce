"""Marina: the pedestals free or in use (live), the sessions they closed, and the
consumption per berth, badge or month as a chart and as CSV for billing.

The figures are the access reports' own (sync_server/access/reports.py), so the page, the
CSV, the CLI and the API always agree. A marina is one territory: an admin chooses it on
the overview first.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from sync_server.access.pedestals import badge_labels, pedestals, sessions
from sync_server.access.policy import territory_timezone
from sync_server.access.reports import GROUPINGS, consumption, grouping
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest
from sync_server.ui.i18n import N_, Formats
from sync_server.ui.live import event_stream
from sync_server.ui.plots import bars
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import NavEntry, language_of, render, requires, ui_state

__all__ = ["NAV", "own_territory", "router"]

NAV = NavEntry(N_("Marina"), "/marina", ("staff", "operator", "admin"))
#: Closed sessions the page lists.
HISTORY = 50

router = APIRouter(route_class=DoorRoute)
Desk = Annotated[Viewer, Depends(requires("staff", "operator", "admin"))]
#: The CSV's columns before the figures, per grouping (as `sync-server report consumption`).
_KEYS = {"badge": ("badge", "category", "label"), "pedestal": ("gateway", "pedestal"),
         "month": ("month",)}


def own_territory(viewer: Viewer) -> int:
    """The session's territory; an admin who has not chosen one is asked to."""
    if viewer.territory_id is None:
        raise BadRequest("this page shows one territory: choose it on the overview first",
                         code="territory_required")
    return viewer.territory_id


def _pedestals(request: Request, territory: int) -> list[dict[str, Any]]:
    with reading(ui_state(request).hub.engine) as conn:
        found = pedestals(conn, territory)
        labels = badge_labels(conn, territory, {p["badge"] for p in found if p["badge"]})
    for pedestal in found:
        pedestal["label"] = labels.get(pedestal["badge"] or "")
    return found


@router.get("/marina", response_class=HTMLResponse)
def marina_page(request: Request, viewer: Desk, by: str = "pedestal",
                month: str | None = None) -> Response:
    """Pedestals, history and consumption (``by`` badge, pedestal or month; ``month``
    YYYY-MM, empty for all time, the current month when not given: what a desk bills, and
    a month reads a month of sessions, not years of them)."""
    territory = own_territory(viewer)
    with reading(ui_state(request).hub.engine) as conn:
        if month is None:
            month = datetime.now(territory_timezone(conn, territory)).strftime("%Y-%m")
        report = consumption(conn, territory, by=grouping(by), month=month or None)
        history = sessions(conn, territory, limit=HISTORY)
        labels = badge_labels(conn, territory, {row["badge"] for row in history
                                                if row["badge"]})
    for row in history:
        row["label"] = labels.get(row["badge"] or "")
    number = Formats(language_of(request)).number
    chart = bars([(_row_name(report["by"], row), row["kwh"]) for row in report["rows"]],
                 lambda kwh: f"{number(kwh)} kWh", "kWh")
    return render(request, "marina.html", viewer, pedestals=_pedestals(request, territory),
                  history=history, report=report, chart=chart, groupings=GROUPINGS,
                  month=month)


@router.get("/marina/live")
def marina_live(request: Request, viewer: Desk) -> Response:
    """The pedestals again whenever one changes (SSE)."""
    territory = own_territory(viewer)

    def fragments() -> dict[str, str]:
        html = render(request, "marina_pedestals.html", viewer,
                      pedestals=_pedestals(request, territory)).body
        return {"pedestals": bytes(html).decode("utf-8")}

    return event_stream(request, fragments, every_s=2.0)


@router.get("/marina/consumption.csv")
def consumption_csv(request: Request, viewer: Desk, by: str = "badge",
                    month: str = "") -> Response:
    """The consumption report as CSV (UTF-8, comma-separated, dot decimals) for billing."""
    territory = own_territory(viewer)
    with reading(ui_state(request).hub.engine) as conn:
        report = consumption(conn, territory, by=grouping(by), month=month or None)
    keys = _KEYS[report["by"]]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow([*keys, "sessions", "kwh", "m3"])
    for row in report["rows"]:
        writer.writerow([*("" if row[key] is None else row[key] for key in keys),
                         row["sessions"], row["kwh"], row["m3"]])
    name = f"consumption-{report['by']}-{month or 'all'}.csv"
    return Response(text.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _row_name(by: str, row: dict[str, Any]) -> str:
    if by == "badge":
        return str(row["label"] or (row["badge"] or "–")[:8])
    if by == "pedestal":
        return str(row["pedestal"])
    return str(row["month"])
