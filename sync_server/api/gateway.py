"""Routes a gateway calls with its own token: push, marks, devices, bundles."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from edge_agent.codecs.bundle import BUNDLE_KINDS
from edge_agent.records import now_ms
from sync_server.access.policy import PolicySigner, refresh_policy
from sync_server.api.context import Caller, State
from sync_server.api.limits import DoorRoute
from sync_server.bundles import etag, latest_bundle
from sync_server.db.engine import reading
from sync_server.db.schema import devices
from sync_server.errors import BadRequest, NotFound
from sync_server.gateway_facts import parse_facts
from sync_server.ingest import ClockPolicy, store_batch, stream_marks
from sync_server.metrics import RECORDS_STORED
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


@router.post("/streams/{stream}/batches")
async def push(
    stream: str,
    request: Request,
    caller: Caller,
    state: State,
    content_type: Annotated[str, Header()] = "",
    content_encoding: Annotated[str, Header()] = "",
    x_ponton_sent_at: Annotated[str | None, Header()] = None,
    x_ponton_backlog: Annotated[str | None, Header()] = None,
    x_ponton_agent_version: Annotated[str | None, Header()] = None,
    x_ponton_sync_lag_ms: Annotated[str | None, Header()] = None,
    x_ponton_bundles: Annotated[str | None, Header()] = None,
) -> dict[str, object]:
    """Store a batch of one stream exactly once; answer with every stream's mark.

    Decoding runs on the hub's decode pool (503 when it is full), storing on the threads
    that serve the database.
    """
    received = now_ms()
    settings = state.settings
    body = await request.body()  # read by the door once the token passed, and bounded
    sent_at = _optional_int("X-Ponton-Sent-At", x_ponton_sent_at)
    backlog = _optional_int("X-Ponton-Backlog", x_ponton_backlog)
    facts = parse_facts(x_ponton_agent_version, x_ponton_sync_lag_ms, x_ponton_bundles)

    batch = await state.decoding.run(
        lambda: decode_batch(stream, body, content_type, content_encoding,
                             max_decoded=settings.max_decoded_bytes))
    result = await run_in_threadpool(
        lambda: store_batch(state.engine, caller, stream, batch, received_ms=received,
                            sent_at_ms=sent_at, backlog=backlog, facts=facts,
                            clock=ClockPolicy(settings.clock_tolerance_ms)))
    RECORDS_STORED.labels(batch.record_type).inc(result.stored)
    return {"stream": result.stream, "first_seq": result.first_seq,
            "last_seq": result.last_seq, "stored": result.stored,
            "duplicates": result.duplicates, "acked": result.acked}


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
) -> Response:
    """The newest signed bundle of ``kind`` for the caller's territory (304 if unchanged).

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
    if if_none_match is not None and _matches(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return Response(envelope, media_type="application/json", headers={"ETag": tag})


def _matches(if_none_match: str, tag: str) -> bool:
    """RFC 9110 weak comparison: ``*`` matches any, ``W/"x"`` matches ``"x"``."""
    candidates = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return any(candidate in ("*", tag) for candidate in candidates)
