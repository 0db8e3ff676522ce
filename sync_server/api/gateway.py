"""Routes a gateway calls with its own token: push, marks, devices, bundles."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from edge_agent.codecs.bundle import BUNDLE_KINDS
from edge_agent.codecs.bundle_delta import DELTA_MEDIA_TYPE, POLICY_VERSION_HEADER
from edge_agent.records import now_ms
from sync_server.access.policy import PolicySigner, refresh_policy
from sync_server.api.context import (
    Caller,
    Pusher,
    Pushing,
    State,
    hub_state,
    pushing_gateway,
)
from sync_server.api.limits import DoorRoute
from sync_server.bundle_deltas import policy_delta
from sync_server.bundles import etag, latest_bundle, latest_versions
from sync_server.db.engine import reading
from sync_server.db.schema import devices
from sync_server.errors import BadRequest, NotFound, Unavailable
from sync_server.gateway_facts import parse_facts
from sync_server.ingest import ClockPolicy, PushResult, store_batch, stream_marks
from sync_server.metrics import BUNDLES_SERVED, RECORDS_STORED
from sync_server.record_checks import MAX_NAME, name_problem
from sync_server.wire import decode_batch

__all__ = ["router"]

router = APIRouter(prefix="/v1/gateway", tags=["gateway"], route_class=DoorRoute)

#: Clock and backlog headers: milliseconds and record counts, far below int64 either way.
_MAX_HEADER_INT = 2**53


class DeviceDeclaration(BaseModel):
    """One device the gateway reads; its names are held to what records may name (the
    dashboard shows them), so a declaration no page could render is refused."""

    name: str = Field(min_length=1, max_length=128)
    profile: str = Field(min_length=1, max_length=64)
    quantities: list[str] = Field(default_factory=list, max_length=500)

    @field_validator("name", "profile")
    @classmethod
    def _printable(cls, text: str) -> str:
        problem = name_problem("name", text, len(text))
        if problem is not None:
            raise ValueError(problem.reason)
        return text

    @field_validator("quantities")
    @classmethod
    def _printable_quantities(cls, quantities: list[str]) -> list[str]:
        for index, quantity in enumerate(quantities):
            problem = name_problem(f"quantities[{index}]", quantity, MAX_NAME)
            if problem is not None:
                raise ValueError(str(problem))
        return quantities


class DevicesDeclaration(BaseModel):
    """Everything the gateway reads; replaces the previous declaration."""

    devices: list[DeviceDeclaration] = Field(max_length=10_000)

    @field_validator("devices")
    @classmethod
    def _unique_names(cls, devices: list[DeviceDeclaration]) -> list[DeviceDeclaration]:
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"device names must be unique; declared twice: {twice[:5]}")
        return devices


def _optional_int(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw[:20])
    except ValueError:
        value = -1
    if not 0 <= value <= _MAX_HEADER_INT or len(raw) > 20:
        raise BadRequest(f"header {name} must be a non-negative integer below 2**53, got "
                         f"{raw[:40]!r}")
    return value


async def push(
    stream: str,
    request: Request,
    pusher: Pushing,
    state: State,
    content_type: Annotated[str, Header()] = "",
    content_encoding: Annotated[str, Header()] = "",
    x_ponton_sent_at: Annotated[str | None, Header()] = None,
    x_ponton_backlog: Annotated[str | None, Header()] = None,
    x_ponton_agent_version: Annotated[str | None, Header()] = None,
    x_ponton_sync_lag_ms: Annotated[str | None, Header()] = None,
    x_ponton_bundles: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Store a batch of one stream exactly once; answer with every stream's mark.

    Decoding and storing run on the hub's push pool: 503 with Retry-After when it is full.
    The token is checked again in the storing transaction; a push that fails, there or
    before (a body that does not decode), has its token forgotten by the door (``PushRoute``).
    The answer names the territory's newest policy, so a gateway holding an older one pulls
    it at once (docs/sync-protocol.md, "Policy deltas").
    """
    received = now_ms()
    settings = state.settings
    body = await request.body()  # read by the door once the token passed, and bounded
    sent_at = _optional_int("X-Ponton-Sent-At", x_ponton_sent_at)
    backlog = _optional_int("X-Ponton-Backlog", x_ponton_backlog)
    facts = parse_facts(x_ponton_agent_version, x_ponton_sync_lag_ms, x_ponton_bundles)
    gateway = pusher.gateway

    def decode_and_store() -> tuple[str, PushResult, int | None]:
        batch = decode_batch(stream, body, content_type, content_encoding,
                             max_decoded=settings.max_decoded_bytes)
        stored = store_batch(
            state.engine, gateway, stream, batch, received_ms=received, sent_at_ms=sent_at,
            backlog=backlog, facts=facts, clock=ClockPolicy(settings.clock_tolerance_ms),
            token_digest=pusher.token_digest)
        return batch.record_type, stored, latest_versions(state.engine).get(gateway.territory_id)

    record_type, result, policy = await state.pushing.run(decode_and_store)
    RECORDS_STORED.labels(record_type).inc(result.stored)
    return JSONResponse(
        {"stream": result.stream, "first_seq": result.first_seq, "last_seq": result.last_seq,
         "stored": result.stored, "duplicates": result.duplicates, "acked": result.acked},
        headers=None if policy is None else {POLICY_VERSION_HEADER: str(policy)})


async def _push_directly(request: Request) -> Response:
    """``push`` called with what it declares, read straight from the request: no dependency
    solving, no validation (every parameter is text, checked by ``push`` itself)."""
    state = hub_state(request)
    header = request.headers.get
    return await push(
        request.path_params["stream"], request, await pushing_gateway(request, state), state,
        header("content-type", ""), header("content-encoding", ""), header("x-ponton-sent-at"),
        header("x-ponton-backlog"), header("x-ponton-agent-version"),
        header("x-ponton-sync-lag-ms"), header("x-ponton-bundles"))


class PushRoute(DoorRoute):
    """The push's route: through the door (admission, token, bounded body) like any other,
    then straight to ``push``. FastAPI's dependency and validation machinery cost a push
    two thread hops (its synchronous dependencies) and more CPU than decoding the batch's
    headers needs; ``push``'s signature still declares the route to OpenAPI and its token
    to the door."""

    admitted = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        door = super().get_route_handler()

        async def forgetting(request: Request) -> Response:
            """The door, forgetting the token of a push that did not succeed: only the
            storing transaction proves a token still holds, and a body refused before it
            (undecodable, too large, cut off) must not keep a revoked token believed. A
            push turned away busy (503) had no body read: its token is kept."""
            try:
                response = await door(request)
            except Unavailable:
                raise
            except BaseException:
                _forget_token(request)
                raise
            if response.status_code != 200:
                _forget_token(request)
            return response

        return forgetting

    def holder(self, request: Request) -> int | None:
        pusher = getattr(request.state, "pusher", None)
        return pusher.gateway.id if isinstance(pusher, Pusher) else None

    def inner_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _push_directly


def _forget_token(request: Request) -> None:
    pusher = getattr(request.state, "pusher", None)
    if isinstance(pusher, Pusher):
        hub_state(request).tokens.forget(pusher.token_digest)


router.add_api_route("/streams/{stream}/batches", push, methods=["POST"],
                     response_model=dict[str, object], route_class_override=PushRoute)


@router.get("/streams")
def marks(caller: Caller, state: State) -> dict[str, object]:
    """The high-water mark of each of the caller's streams."""
    with reading(state.engine) as conn:
        return {"acked": stream_marks(conn, caller)}


@router.put("/devices")
def declare_devices(body: DevicesDeclaration, caller: Caller, state: State) -> dict[str, int]:
    """Replace the caller's declared devices."""
    declared = now_ms()
    with state.engine.begin() as conn:
        conn.execute(devices.delete().where(devices.c.gateway_id == caller.id))
        if body.devices:
            conn.execute(devices.insert(), [
                {"territory_id": caller.territory_id, "gateway_id": caller.id,
                 "name": d.name, "profile": d.profile, "quantities": json.dumps(d.quantities),
                 "declared_ms": declared}
                for d in body.devices
            ])
    return {"devices": len(body.devices)}


@router.get("/bundles/{kind}")
def bundle(
    kind: str,
    caller: Caller,
    state: State,
    if_none_match: Annotated[str | None, Header()] = None,
    base: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> Response:
    """The newest signed bundle of ``kind`` for the caller's territory (304 if unchanged,
    or if it is ``base``, the version the gateway holds; a policy delta from ``base`` when
    one is worth it).

    A policy past half its life is signed again first, so it never expires while the
    territory's gateways keep fetching it.
    """
    if kind not in BUNDLE_KINDS:
        raise NotFound(f"no bundle kind {kind!r}; kinds: {', '.join(BUNDLE_KINDS)}")
    if kind == "policy":
        refresh_policy(state.engine, PolicySigner(state.key, state.settings.policy_lifetime_s),
                       caller.territory_id)
    with reading(state.engine) as conn:
        found = latest_bundle(conn, caller.territory_id, kind)
    if found is None:
        raise NotFound(f"no {kind} bundle published for this territory yet", code="no_bundle")
    version, envelope = found
    tag = etag(kind, version)
    if base == version or (if_none_match is not None and _matches(if_none_match, tag)):
        BUNDLES_SERVED.labels(kind, "unchanged").inc()
        return Response(status_code=304, headers={"ETag": tag})
    if base is not None and kind == "policy" and (delta := policy_delta(
            state.engine, state.key, caller.territory_id, base, version, envelope)):
        BUNDLES_SERVED.labels(kind, "delta").inc()
        return Response(delta, media_type=DELTA_MEDIA_TYPE, headers={"ETag": tag})
    BUNDLES_SERVED.labels(kind, "full").inc()
    return Response(envelope, media_type="application/json", headers={"ETag": tag})


def _matches(if_none_match: str, tag: str) -> bool:
    """RFC 9110 weak comparison: ``*`` matches any, ``W/"x"`` matches ``"x"``."""
    candidates = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return any(candidate in ("*", tag) for candidate in candidates)
