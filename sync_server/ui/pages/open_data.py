"""Open data: what the territory publishes, with the public links, and the forms that
publish or withdraw each dataset.

The same rules as ``sync-server opendata enable|disable`` and ``PUT|DELETE
/v1/open-data/NAME`` (sync_server/opendata/datasets.py): nothing is public until an operator
publishes it, and publishing twice changes nothing. An operator's matter: staff do not see
the page. The links are the hub's public address as the browser reached it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest
from sync_server.opendata import datasets
from sync_server.ui.i18n import N_
from sync_server.ui.pages.marina import own_territory
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import NavEntry, checked_form, render, requires, to_page, ui_state

__all__ = ["NAV", "router"]

NAV = NavEntry(N_("Open data"), "/open-data", ("operator", "admin"))

router = APIRouter(route_class=DoorRoute)
Operator = Annotated[Viewer, Depends(requires("operator", "admin"))]


def open_data_view(request: Request, territory: int) -> dict[str, Any]:
    """Every dataset, published or not, and the catalogue's link once one is published."""
    base_url = str(request.base_url)
    with reading(ui_state(request).hub.engine) as conn:
        name = datasets.territory_name(conn, territory)
        rows = datasets.dataset_rows(conn, territory, name, base_url)
        listed = datasets.published_datasets(conn, territory, name, base_url)
    catalog = next((row["url"] for row in listed if row["name"] == "catalog"), None)
    return {"datasets": rows, "catalog": catalog, "territory": name}


@router.get("/open-data", response_class=HTMLResponse)
def open_data_page(request: Request, viewer: Operator) -> Response:
    """The territory's datasets and their links."""
    return render(request, "open_data.html", viewer,
                  **open_data_view(request, own_territory(viewer)))


@router.post("/open-data")
def publish(request: Request, viewer: Operator,
            form: Annotated[FormData, Depends(checked_form)]) -> Response:
    """Publish (``action=publish``) or withdraw (``unpublish``) one dataset, then the page."""
    territory = own_territory(viewer)
    name, action = str(form.get("dataset") or ""), form.get("action")
    engine = ui_state(request).hub.engine
    if action == "publish":
        datasets.enable(engine, territory, name, by=viewer.name)
    elif action == "unpublish":
        datasets.disable(engine, territory, name)
    else:
        raise BadRequest(f"action must be publish or unpublish, got {str(action)[:40]!r}")
    return to_page(request, "/open-data")
