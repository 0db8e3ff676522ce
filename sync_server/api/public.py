"""Routes without a token: health, enrollment, and each territory's open data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from edge_agent.records import now_ms
from sync_server.access.policy import territory_timezone
from sync_server.access.reports import month_range, service_statistics
from sync_server.api.context import State
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.enrollment import EnrollmentPolicy, redeem_code
from sync_server.errors import BadRequest
from sync_server.opendata.datasets import published_territory

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["public"], route_class=DoorRoute)

#: A territory name (admin.py); anything else is refused before it reaches the database.
_TERRITORY = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class EnrollRequest(BaseModel):
    """The one-time code an operator gave the installer."""

    code: str = Field(min_length=1, max_length=64)


@router.get("/health")
def health(state: State) -> dict[str, str]:
    """``ok`` once the database answers."""
    with reading(state.engine) as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.post("/enroll")
def enroll(body: EnrollRequest, request: Request, state: State) -> dict[str, object]:
    """Trade an enrollment code for the gateway's identity, token and pinned keys."""
    client = request.client.host if request.client else "unknown"
    policy = EnrollmentPolicy(state.settings.enroll_max_failures,
                              state.settings.enroll_window_s)
    return redeem_code(state.engine, body.code, client=client, policy=policy, key=state.key)


@router.get("/open/{territory}/services")
def open_services(
    territory: Annotated[str, Path(pattern=_TERRITORY)],
    state: State,
    month: Annotated[str, Query(max_length=7)],
) -> dict[str, Any]:
    """Service use by holder category and hour in one month, k-anonymous: open data, once
    an operator published it (404 otherwise, as for a territory that does not exist).

    Ended months only: they never overlap and never change, so no two published figures can
    be subtracted to reveal a suppressed cell or one person's visit of the day.
    """
    with reading(state.engine) as conn:
        found = published_territory(conn, territory, "services")
        if month_range(month, territory_timezone(conn, found))[1] > now_ms():
            raise BadRequest(f"month {month} has not ended; open data covers ended months")
        report = service_statistics(conn, found, k=state.settings.report_min_badges,
                                    month=month)
    return {"territory": territory, **report}
