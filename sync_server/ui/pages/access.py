"""Access: the gates' decisions log, filtered by gate, reason and day, and the policy
version the hub signed against the one each gateway holds (is a revocation through yet?).

Staff see the openings staff made (reason ``manual``) and nothing else of the log; the
policy is an operator's matter. Badges are shown by pseudonym, with the operator's label.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from sync_server.access.decisions import REASONS, DecisionFilter, decision_log, policy_in_use
from sync_server.access.pedestals import badge_labels
from sync_server.access.policy import rules_summary, territory_timezone
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest
from sync_server.ui.i18n import N_
from sync_server.ui.pages.marina import own_territory
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import NavEntry, render, requires, ui_state

__all__ = ["NAV", "router"]

NAV = NavEntry(N_("Access"), "/access", ("staff", "operator", "admin"))

router = APIRouter(route_class=DoorRoute)
Desk = Annotated[Viewer, Depends(requires("staff", "operator", "admin"))]


@router.get("/access", response_class=HTMLResponse)
def access_page(request: Request, viewer: Desk, gate: str = "", reason: str = "",
                day: str = "") -> Response:
    """The decisions log (newest first) and, for operators, the policy versions."""
    territory = own_territory(viewer)
    if viewer.role == "staff":
        reason = "manual"
    if reason and reason not in REASONS:
        raise BadRequest(f"unknown reason code {reason[:40]!r}; the codes are "
                         f"{', '.join(REASONS)}")
    with reading(ui_state(request).hub.engine) as conn:
        bounds = _day(day, territory_timezone(conn, territory)) if day else (None, None)
        rows, truncated = decision_log(conn, territory, DecisionFilter(
            gate or None, reason or None, *bounds))
        labels = badge_labels(conn, territory, {r["badge"] for r in rows if r["badge"]})
        summary = rules_summary(conn, territory)
        holders = policy_in_use(conn, territory) if viewer.role != "staff" else []
    for row in rows:
        row["label"] = labels.get(row["badge"] or "")
    gates = sorted((summary["rules"] or {}).get("gates", {}))
    return render(request, "access.html", viewer, rows=rows, truncated=truncated,
                  gates=gates, reasons=REASONS, gate=gate, reason=reason, day=day,
                  policy=summary["policy"], holders=holders)


def _day(text: str, timezone: ZoneInfo) -> tuple[int, int]:
    """UTC ms bounds of the local day ``YYYY-MM-DD``; BadRequest otherwise."""
    try:
        start = datetime.combine(date.fromisoformat(text), datetime.min.time(),
                                 tzinfo=timezone)
    except ValueError:
        raise BadRequest(f"day {text[:40]!r} is not like 2026-07-14") from None
    after = start + timedelta(days=1)
    return int(start.timestamp() * 1000), int(after.timestamp() * 1000)
