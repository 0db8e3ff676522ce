"""The door of every route: its token is checked before its body is read, and the body is
bounded in bytes and, for JSON, in elements and depth as it arrives.

FastAPI reads and parses a route's JSON body before the route's dependencies run, token
check included, so without this a client with no token could make the hub parse megabytes.
Every router of the hub, the dashboard's pages too, builds its routes as ``DoorRoute``:
before FastAPI's own handler, it runs the token check the route declares (its dependencies
say which: ``AUTHENTICATIONS``), and only then reads the body, counting JSON elements piece
by piece (sync_server/json_bounds.py); forms are bounded in bytes. Nothing else to remember
for a new route: declaring its token dependency is enough (tests/test_hub_door.py walks every
route, tests/test_ui_sessions.py the dashboard's). A route whose class says ``admitted``
(the push's) first takes a slot of the push pool (sync_server/api/push_pool.py), or is
answered 503 at once; once its token passed, the slot is claimed for its ``holder`` (a
gateway holding its share already is answered 503 too, before its body is read).

A client that goes away mid-body (a 4G gateway losing its link) is normal: one info line and
a count in ``departures``, no answer, since nobody is left to read it. A link lost without a
word (no FIN, no RST) looks like a client still sending, so a body must be in within
``--body-timeout`` of its token passing, or it is answered 408 and counted there too: without
that, each such loss held a push slot for good, and one gateway sending a byte at a time
held as many as it opened connections.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from sync_server.api.context import AUTHENTICATIONS, bearer, hub_state
from sync_server.errors import BadRequest, RequestTimeout, TooLarge
from sync_server.json_bounds import MAX_DEPTH, ElementBudget, nested_deeper_than

__all__ = ["DoorRoute", "departures"]

log = logging.getLogger(__name__)

_Handler = Callable[[Request], Coroutine[Any, Any, Response]]
#: Bodies FastAPI parses as forms (the dashboard's), bounded in bytes only.
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class Departures:
    """Requests whose client went away, or took longer than ``--body-timeout``, before its
    body was in, since the process started."""

    count: int = 0


#: Process-wide, for a metrics page to show.
departures = Departures()


class DoorRoute(APIRoute):
    """A route that authenticates, then reads its body within the limits, then runs.

    Refusals are the hub's errors (401, 413, 400), answered in the one error shape.
    """

    #: Whether a request first takes a slot of the push pool, before its token is looked up
    #: or its body read, so that a refusal (503) costs nothing.
    admitted: ClassVar[bool] = False

    def get_route_handler(self) -> _Handler:
        handler = self.inner_handler()
        checks = _declared_checks(self.dependant)
        json = self.body_field is not None
        admitted = self.admitted

        async def door(request: Request) -> Response:
            limit = hub_state(request).settings.max_request_bytes
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise TooLarge(f"request body of {int(declared)} bytes exceeds the "
                               f"{limit}-byte limit")
            if not admitted:
                return await inside(request)
            with hub_state(request).pushing.admitted():
                return await inside(request)

        async def inside(request: Request) -> Response:
            settings = hub_state(request).settings
            limit = settings.max_request_bytes
            for check, prefix in checks:
                bearer(request, prefix)  # no token at all costs no thread and no query
                if inspect.iscoroutinefunction(check):
                    await check(request, hub_state(request))
                else:
                    await run_in_threadpool(check, request, hub_state(request))
            if admitted and (holder := self.holder(request)) is not None:
                hub_state(request).pushing.claim(holder)
            form = request.headers.get("content-type", "").startswith(_FORMS)
            try:
                async with asyncio.timeout(settings.body_timeout_s):
                    await _read(request, limit, json=json and not form)
            except ClientDisconnect:
                departures.count += 1
                log.info("client went away mid-body on %s %s (%d such requests so far)",
                         request.method, request.url.path, departures.count)
                return Response(status_code=400)  # nobody is left to read it
            except TimeoutError:
                departures.count += 1
                log.info("no whole body within %g s on %s %s (%d such requests so far)",
                         settings.body_timeout_s, request.method, request.url.path,
                         departures.count)
                raise RequestTimeout(f"the request body did not arrive within "
                                     f"{settings.body_timeout_s:g} s") from None
            return await handler(request)

        return door

    def holder(self, request: Request) -> int | None:
        """Who the push slot is held for, once the token passed (``admitted`` routes)."""
        return None

    def inner_handler(self) -> _Handler:
        """What serves the request once the door let it in: FastAPI's own handler."""
        return super().get_route_handler()


async def _read(request: Request, limit: int, *, json: bool) -> None:
    """Read the whole body, so that FastAPI and the route find it read; what FastAPI will
    parse as JSON is counted as it comes and its depth checked."""
    budget = ElementBudget() if json else None
    pieces, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise TooLarge(f"request body exceeds the {limit}-byte limit")
        if budget is not None:
            budget.feed(piece)
        pieces.append(piece)
    body = b"".join(pieces)
    if json and nested_deeper_than(body, MAX_DEPTH):
        raise BadRequest(f"JSON body nested deeper than {MAX_DEPTH} levels; refused")
    # Where ``Request.body()`` keeps what it read: the stream can only be read once.
    request._body = body


def _declared_checks(dependant: Dependant) -> list[tuple[Callable[..., object], str]]:
    """The token checks among a route's dependencies, however deep they are declared."""
    found: list[tuple[Callable[..., object], str]] = []
    for dependency in dependant.dependencies:
        call = dependency.call
        if call is not None and call in AUTHENTICATIONS:
            found.append((call, AUTHENTICATIONS[call]))
        found += [check for check in _declared_checks(dependency) if check not in found]
    return found
