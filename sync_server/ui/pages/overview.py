"""Overview: the territory's sites and gateways, each online or not, with what an operator
checks first (last seen, backlog, clock skew, open alarms); for an admin, the territories.

An admin looks at every territory until they choose one (a form: the choice lives in the
session, never in a URL); the gateway pages then read that territory.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from edge_agent.records import now_ms
from sync_server.admin import territory_id, territory_list
from sync_server.alarms import open_alarm_counts
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.queries import gateway_health
from sync_server.ui.i18n import N_
from sync_server.ui.live import LIVE_EVERY_S, Rows, event_stream, shared
from sync_server.ui.sessions import Viewer, choose_territory
from sync_server.ui.web import (
    NavEntry,
    Signed,
    checked_form,
    language_of,
    render,
    requires,
    template_module,
    to_page,
    ui_state,
)

__all__ = ["NAV", "ONLINE_WITHIN_MS", "is_online", "router"]

NAV = NavEntry(N_("Overview"), "/", ("operator", "admin"))
#: A gateway heard from within this long is online (agents push or pull every few seconds).
ONLINE_WITHIN_MS = 5 * 60_000

router = APIRouter(route_class=DoorRoute)
Reader = Annotated[Viewer, Depends(requires("operator", "admin"))]


def is_online(last_seen_ms: int | None, now: int) -> bool:
    """Whether a gateway last heard from at ``last_seen_ms`` counts as online."""
    return last_seen_ms is not None and now - last_seen_ms <= ONLINE_WITHIN_MS


def overview(request: Request, viewer: Viewer) -> dict[str, Any]:
    """Everything the page shows, read in one transaction."""
    with reading(ui_state(request).hub.engine) as conn:
        gateways = gateway_health(conn, viewer.territory_id)
        alarms = open_alarm_counts(conn, viewer.scope)
        territories = territory_list(conn) if viewer.is_admin else []
    now = now_ms()
    for row in gateways:
        row["online"] = is_online(row["last_seen_ms"], now)
        row["open_alarms"] = alarms.get((row["territory"], row["gateway"]), 0)
    sites: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in gateways:
        sites.setdefault((row["territory"], row["site"]), []).append(row)
    return {"sites": sites, "territories": territories,
            "online": sum(row["online"] for row in gateways), "total": len(gateways),
            "open_alarms": sum(alarms.values())}


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, viewer: Signed) -> Response:
    """The overview; staff, who have no gateways to watch, start at the alarms."""
    if viewer.role == "staff":
        return to_page(request, "/alarms")
    return render(request, "overview.html", viewer, **overview(request, viewer))


@router.get("/overview/live")
def overview_live(request: Request, viewer: Reader) -> Response:
    """The gateways table whenever gateways come or go, else the rows that changed (SSE)."""
    def fragments() -> dict[str, str | Rows]:
        page = overview(request, viewer)
        module = template_module(request, "overview_gateways.html", viewer,
                                 live_fragment=True, **page)
        rows = {str(module.row_event(gw)): str(module.gateway_row(gw))
                for gateways in page["sites"].values() for gw in gateways}
        return {"gateways": Rows(str(module), rows), "summary": str(module.summary())}

    key = ("overview", viewer.territory_id, viewer.role, language_of(request))
    return event_stream(request, shared(key, fragments, LIVE_EVERY_S / 2),
                        every_s=LIVE_EVERY_S)


@router.post("/territory")
def choose(request: Request, viewer: Annotated[Viewer, Depends(requires("admin"))],
           form: Annotated[FormData, Depends(checked_form)]) -> Response:
    """An admin chooses the territory to look at (empty: every territory)."""
    name = str(form.get("territory") or "")
    engine = ui_state(request).hub.engine
    with reading(engine) as conn:
        chosen = territory_id(conn, name) if name else None
    choose_territory(engine, viewer, chosen)
    return to_page(request, "/")
