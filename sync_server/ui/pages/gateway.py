"""Gateway: its devices with their health (the agent's ``device.health`` reports: fault
counters and last good poll) and latest values, its open alarms, and the
bundle versions the hub publishes for its territory.

A gateway of another territory answers "not found" exactly like one that does not exist
(``require_gateway`` on the session's scope).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from edge_agent.codecs.bundle import BUNDLE_KINDS
from edge_agent.records import now_ms
from sync_server.alarms import AlarmFilter, alarms_page
from sync_server.api.limits import DoorRoute
from sync_server.bundles import latest_bundle
from sync_server.db.engine import reading
from sync_server.device_health import latest_device_health
from sync_server.queries import MAX_EVENTS, declared_devices, events_page, gateway_health
from sync_server.queries import latest_values as newest_values
from sync_server.ui.live import LIVE_EVERY_S, event_stream, shared
from sync_server.ui.pages.overview import is_online
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import in_territory, language_of, render, ui_state

__all__ = ["DEVICE_STATES", "router"]

#: The events that say whether a device answers, newest wins.
DEVICE_STATES = ("device.offline", "device.online")

router = APIRouter(route_class=DoorRoute)
Reader = Annotated[Viewer, Depends(in_territory("operator", "admin"))]


def gateway_view(request: Request, viewer: Viewer, name: str) -> dict[str, Any]:
    """Everything the page shows; NotFound for a gateway outside the session's territory."""
    scope = viewer.scope
    assert viewer.territory_id is not None
    with reading(ui_state(request).hub.engine) as conn:
        devices = declared_devices(conn, scope, name)  # NotFound first, before anything
        health = next(row for row in gateway_health(conn, viewer.territory_id)
                      if row["gateway"] == name)
        values = newest_values(conn, scope, gateway=name, device=None, quantity=None)
        states = [event for kind in DEVICE_STATES for event in events_page(
            conn, scope, gateway=name, kind=kind, device=None, from_ms=None, to_ms=None,
            limit=MAX_EVENTS)]
        alarms = alarms_page(conn, scope, AlarmFilter(state="open", gateway=name, limit=50))
        bundles = {kind: latest_bundle(conn, viewer.territory_id, kind) for kind in BUNDLE_KINDS}
        health_reports = latest_device_health(conn, viewer.territory_id, name,
                                              [device["name"] for device in devices])
    by_device: dict[str, dict[str, Any]] = {
        device["name"]: {**device, "values": [], "state": None,
                         "health": health_reports.get(device["name"])}
        for device in devices}
    for value in values:  # a device the gateway no longer declares still shows its values
        by_device.setdefault(value["device"], {"name": value["device"], "profile": None,
                                               "quantities": [], "values": [], "state": None,
                                               "health": None}
                             )["values"].append(value)
    for event in sorted(states, key=lambda event: (event["ts_ms"], event["seq"])):
        if event["device"] in by_device:
            by_device[event["device"]]["state"] = event
    health["online"] = is_online(health["last_seen_ms"], now_ms())
    return {"gateway": health, "devices": list(by_device.values()), "alarms": alarms,
            "bundles": {kind: None if found is None else found[0]
                        for kind, found in bundles.items()}}


@router.get("/gateways/{name}", response_class=HTMLResponse)
def gateway_page(request: Request, viewer: Reader, name: str) -> Response:
    """The gateway's page."""
    return render(request, "gateway.html", viewer, name=name,
                  **gateway_view(request, viewer, name))


@router.get("/gateways/{name}/live")
def gateway_live(request: Request, viewer: Reader, name: str) -> Response:
    """The devices table again whenever a value or a state changes (SSE)."""
    gateway_view(request, viewer, name)  # NotFound before the stream starts

    def fragments() -> dict[str, str]:
        view = gateway_view(request, viewer, name)
        html = render(request, "gateway_devices.html", viewer, name=name, live_fragment=True,
                      **view).body
        return {"devices": bytes(html).decode("utf-8")}

    key = ("gateway", name, viewer.territory_id, viewer.role, language_of(request))
    return event_stream(request, shared(key, fragments, LIVE_EVERY_S / 2),
                        every_s=LIVE_EVERY_S)
