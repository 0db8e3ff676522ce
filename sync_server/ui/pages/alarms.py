"""Alarms: open and cleared, acknowledged with a comment (who and when are recorded), and
new ones arriving live with a banner and a tone.

The live stream sends the table again whenever it changes, and an ``alarm`` event (the
banner's text) only when an alarm appears that the stream had not seen yet: the alarms of
its first round are the page's own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from sync_server.alarms import STATES, Acknowledgement, AlarmFilter, acknowledge, alarms_page
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest
from sync_server.ui.i18n import N_
from sync_server.ui.live import LIVE_EVERY_S, event_stream, shared
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import (
    NavEntry,
    checked_form,
    in_territory,
    render,
    requires,
    to_page,
    ui_state,
)

__all__ = ["NAV", "PAGE_SIZE", "router"]

NAV = NavEntry(N_("Alarms"), "/alarms", ("staff", "operator", "admin"))
PAGE_SIZE = 100
#: How the tabs read (the states of sync_server/alarms.py).
STATE_LABELS = {"open": N_("open"), "cleared": N_("cleared"), "all": N_("all")}

router = APIRouter(route_class=DoorRoute)
Reader = Annotated[Viewer, Depends(requires("staff", "operator", "admin"))]
Actor = Annotated[Viewer, Depends(in_territory("staff", "operator", "admin"))]


def _state(state: str) -> str:
    if state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}, got {state[:20]!r}")
    return state


def alarm_rows(request: Request, viewer: Viewer, state: str) -> list[dict[str, Any]]:
    """The alarms the page lists, newest first."""
    with reading(ui_state(request).hub.engine) as conn:
        return alarms_page(conn, viewer.scope, AlarmFilter(state=state, limit=PAGE_SIZE))


@router.get("/alarms", response_class=HTMLResponse)
def alarms_list(request: Request, viewer: Reader, state: str = "open") -> Response:
    """The alarms of the session's territory (every territory for an admin who chose none)."""
    rows = alarm_rows(request, viewer, _state(state))
    return render(request, "alarms.html", viewer, alarms=rows, state=state,
                  states=STATE_LABELS, new_ids=set())


@router.get("/alarms/live")
def alarms_live(request: Request, viewer: Reader, state: str = "open") -> Response:
    """The table whenever it changes; the banner when a new alarm arrives (SSE)."""
    state = _state(state)
    seen: set[str] | None = None
    # The rows are shared by the territory's streams; each stream keeps its own banner.
    shared_rows = shared(("alarms", viewer.territory_id, state),
                         lambda: alarm_rows(request, viewer, state), LIVE_EVERY_S / 2)

    def fragments() -> dict[str, str]:
        nonlocal seen
        rows = shared_rows()
        ids = {row["id"] for row in rows}
        new = [row for row in rows if seen is not None and row["id"] not in seen]
        seen = ids if seen is None else seen | ids
        table = render(request, "alarms_rows.html", viewer, alarms=rows,
                       new_ids={row["id"] for row in new}).body
        sent = {"alarms": bytes(table).decode("utf-8")}
        if new:
            cue = render(request, "alarm_cue.html", viewer, alarm=new[0], more=len(new) - 1)
            sent["alarm"] = bytes(cue.body).decode("utf-8")
        return sent

    return event_stream(request, fragments, every_s=LIVE_EVERY_S)


@router.post("/alarms/{alarm_id}/ack")
def alarm_ack(request: Request, viewer: Actor, alarm_id: str,
              form: Annotated[FormData, Depends(checked_form)]) -> Response:
    """Acknowledge once, in the viewer's name, with their comment: htmx swaps the row in
    place; without script, the browser goes back to the list."""
    assert viewer.territory_id is not None
    done = acknowledge(ui_state(request).hub.engine, viewer.territory_id, alarm_id,
                       Acknowledgement(viewer.name, str(form.get("comment") or ""),
                                       viewer.token_id))
    back = _state(str(form.get("state") or "open"))
    if request.headers.get("hx-request"):
        return render(request, "alarm_row.html", viewer, alarm=done, new_ids=set(), state=back)
    return to_page(request, f"/alarms?state={back}")
