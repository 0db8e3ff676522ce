"""Routes for a territory's field state, with an operator token: alarms and car parks.

Alarms are listed like events (newest first, ``limit``, a time window) and acknowledged
once, by the token's holder. An id of another territory's alarm answers exactly like one
that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict

from sync_server.alarms import Acknowledgement, AlarmFilter, acknowledge, alarm, alarms_page
from sync_server.api.access import Territory
from sync_server.api.context import Operator, State, Token
from sync_server.api.limits import DoorRoute
from sync_server.car_parks import car_parks
from sync_server.db.engine import reading
from sync_server.queries import MAX_EVENTS

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["field"], route_class=DoorRoute)

_Name = Annotated[str | None, Query(max_length=128)]
_Ms = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
#: Ids are ``<stream>-<seq>``; anything longer is not one, and is refused unread.
_Id = Annotated[str, Path(max_length=40)]


class AckBody(BaseModel):
    """An acknowledgement's comment (optional: acknowledging says "seen" already)."""

    model_config = ConfigDict(extra="forbid")

    comment: str = ""


@router.get("/alarms")
def list_alarms(
    scope: Operator,
    state: State,
    alarm_state: Annotated[str, Query(alias="state", pattern="^(open|cleared|all)$")] = "all",
    gateway: _Name = None,
    device: _Name = None,
    from_ms: _Ms = None,
    to_ms: _Ms = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
    before: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Alarms, newest raise first, with their clear and acknowledgement."""
    wanted = AlarmFilter(alarm_state, gateway, device, from_ms, to_ms, limit, before)
    with reading(state.engine) as conn:
        return {"alarms": alarms_page(conn, scope, wanted)}


@router.get("/alarms/{alarm_id}")
def show_alarm(alarm_id: _Id, scope: Operator, state: State) -> dict[str, Any]:
    """One alarm by id."""
    with reading(state.engine) as conn:
        return alarm(conn, scope, alarm_id)


@router.post("/alarms/{alarm_id}/ack")
def ack_alarm(
    alarm_id: _Id, body: AckBody, territory: Territory, token: Token, state: State
) -> dict[str, Any]:
    """Acknowledge an alarm once, as the token's holder; 409 the second time."""
    return acknowledge(state.engine, territory, alarm_id,
                       Acknowledgement(token.name, body.comment, token.id))


@router.get("/car-parks")
def list_car_parks(scope: Operator, state: State, gateway: _Name = None) -> dict[str, Any]:
    """Each car park's latest occupancy, capacity, free spaces and full flag."""
    with reading(state.engine) as conn:
        return {"car_parks": car_parks(conn, scope, gateway=gateway)}
