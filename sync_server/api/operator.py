"""Routes operators call with their territory's token: health and data of their gateways."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from edge_agent.records import now_ms
from sync_server.api.context import Operator, State
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.queries import MAX_EVENTS, events_page, gateway_health, latest_values, time_series

__all__ = ["DEFAULT_SERIES_MS", "router"]

router = APIRouter(prefix="/v1", tags=["operator"], route_class=DoorRoute)

#: An optional name filter. One ``Query`` object shared as a default would be shared by every
#: parameter using it, and FastAPI would read them all from the first one's query key.
_Name = Annotated[str | None, Query(max_length=128)]
#: The range ``/v1/series`` reads when not told: the day up to now (docs/sync-protocol.md).
DEFAULT_SERIES_MS = 24 * 3600 * 1000
#: Timestamps and bucket widths must fit the database's 64-bit integers, or the query fails.
_MAX_MS = 2**63 - 1


@router.get("/gateways")
def list_gateways(scope: Operator, state: State) -> dict[str, Any]:
    """Gateways of the caller's territory with last seen, backlog, clock skew, marks."""
    with reading(state.engine) as conn:
        return {"gateways": gateway_health(conn, scope.territory_id)}


@router.get("/latest")
def latest(
    scope: Operator,
    state: State,
    gateway: _Name = None,
    device: _Name = None,
    quantity: _Name = None,
) -> dict[str, Any]:
    """The newest value per device and quantity."""
    with reading(state.engine) as conn:
        return {"values": latest_values(conn, scope, gateway=gateway, device=device,
                                        quantity=quantity)}


@router.get("/series")
def series(
    scope: Operator,
    state: State,
    gateway: str = Query(max_length=128),
    device: str = Query(max_length=128),
    quantity: str = Query(max_length=128),
    from_ms: int | None = Query(default=None, ge=0, le=_MAX_MS),
    to_ms: int | None = Query(default=None, ge=0, le=_MAX_MS),
    bucket_s: int = Query(default=60, gt=0, le=_MAX_MS // 1000),
) -> dict[str, Any]:
    """One series over a range (default: the last 24 h), downsampled into buckets (avg, min,
    max, count): an operator's first look needs no timestamps worked out by hand."""
    to_ms = now_ms() if to_ms is None else to_ms
    from_ms = max(0, to_ms - DEFAULT_SERIES_MS) if from_ms is None else from_ms
    with reading(state.engine) as conn:
        return {"buckets": time_series(conn, scope, gateway=gateway, device=device,
                                       quantity=quantity, from_ms=from_ms, to_ms=to_ms,
                                       bucket_s=bucket_s)}


@router.get("/events")
def list_events(
    scope: Operator,
    state: State,
    gateway: _Name = None,
    kind: _Name = None,
    device: _Name = None,
    from_ms: int | None = Query(default=None, ge=0, le=_MAX_MS),
    to_ms: int | None = Query(default=None, ge=0, le=_MAX_MS),
    limit: int = Query(default=100, ge=1, le=MAX_EVENTS),
) -> dict[str, Any]:
    """Events, newest first."""
    with reading(state.engine) as conn:
        return {"events": events_page(conn, scope, gateway=gateway, kind=kind, device=device,
                                      from_ms=from_ms, to_ms=to_ms, limit=limit)}
