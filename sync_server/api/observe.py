"""Routes for whoever runs the hub: liveness, readiness and Prometheus metrics.

``/healthz`` says the process answers (no database: a database outage must not get a healthy
process restarted), ``/readyz`` that the database answers at the schema revision this code
needs. ``/metrics`` shows every territory's figures, so it takes an admin operator token
(``sync-server token add --admin``): a territory's token is refused with 403.

``RouteTimer`` counts every request under its route template (``/v1/streams/{stream}/
batches``, never the raw path), so the number of series stays bounded whatever clients ask.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync_server.api.context import State, Token
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.db.migrate import current_revision, head_revision
from sync_server.errors import Forbidden, Unavailable
from sync_server.metrics import exposition, observe

__all__ = ["RouteTimer", "router"]

router = APIRouter(tags=["operations"], route_class=DoorRoute)

#: Methods counted under their own name; anything else a client invents is ``other``.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@router.get("/healthz", operation_id="healthz")
def healthz() -> dict[str, str]:
    """``alive`` while the process answers, whatever the database does."""
    return {"status": "alive"}


@router.get("/readyz", operation_id="readyz")
def readyz(state: State) -> dict[str, str]:
    """``ready`` once the database answers at the schema revision this hub needs; 503 if not."""
    try:
        with reading(state.engine) as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(state.engine)
    except SQLAlchemyError as exc:
        raise Unavailable(f"database unreachable ({type(exc).__name__})",
                          retry_after_s=5) from None
    if revision != head_revision():
        raise Unavailable(f"database at schema revision {revision or '(empty)'}, this hub "
                          f"needs {head_revision()}", retry_after_s=30)
    return {"status": "ready"}


@router.get("/metrics", operation_id="metrics", response_class=Response)
def metrics(token: Token, state: State) -> Response:
    """Prometheus' text format; an admin operator token only (every territory shows)."""
    if token.territory_id is not None:
        raise Forbidden("metrics cover every territory: an admin operator token is required")
    return Response(exposition(state.engine, state.pushing), media_type=CONTENT_TYPE_LATEST)


class RouteTimer:
    """ASGI middleware: each answered request counted and timed under its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            route = scope.get("route")
            method = scope["method"] if scope["method"] in _METHODS else "other"
            observe(method, getattr(route, "path", "(unmatched)"), status, started)
