"""What every route needs: the hub's shared state and the caller's identity.

Identity comes from the bearer token only. A gateway token resolves to its gateway and
territory, an operator token to a territory (or to every territory for an admin); nothing in
the path, query or headers can widen that. The door (api/limits.py) runs a route's token
check before reading its body; the identity it found is kept on the request, so the route's
own dependency does not look the token up twice. A push's check may answer from the tokens
this process found valid before (``pushing_gateway``): its batch is stored only where the
token still holds, inside the storing transaction (sync_server/ingest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from sync_server.api.known_tokens import KnownTokens
from sync_server.api.push_pool import PushPool
from sync_server.credentials import GATEWAY_TOKEN_PREFIX, OPERATOR_TOKEN_PREFIX, digest
from sync_server.db.engine import reading
from sync_server.db.schema import gateways, operator_tokens
from sync_server.errors import Unauthorized
from sync_server.ingest import TOKEN_REFUSED, GatewayRef
from sync_server.keys import SigningKey
from sync_server.queries import Scope
from sync_server.settings import HubSettings

__all__ = [
    "AUTHENTICATIONS",
    "Caller",
    "HubState",
    "Operator",
    "OperatorToken",
    "Pusher",
    "Pushing",
    "State",
    "Token",
    "bearer",
    "hub_state",
]


@dataclass(frozen=True, slots=True)
class HubState:
    """Built once by the app factory; routes only read it."""

    settings: HubSettings
    engine: Engine
    key: SigningKey
    #: Admission control for pushes (503 when full); one per process.
    pushing: PushPool
    #: Gateway tokens found valid, for the door of pushes (``pushing_gateway``).
    tokens: KnownTokens = field(default_factory=KnownTokens)


def hub_state(request: Request) -> HubState:
    """The hub's state, stored on the application by ``create_app``."""
    state = request.app.state.hub
    assert isinstance(state, HubState)
    return state


State = Annotated[HubState, Depends(hub_state)]


def bearer(request: Request, prefix: str) -> str:
    """The request's bearer token if it has ``prefix``; Unauthorized otherwise (no I/O)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(prefix):
        raise Unauthorized("a valid bearer token is required")
    return token.strip()


def gateway_caller(request: Request, state: State) -> GatewayRef:
    """The enrolled gateway owning the request's token."""
    known = getattr(request.state, "gateway", None)
    if isinstance(known, GatewayRef):
        return known
    caller = _gateway_of(state.engine, digest(bearer(request, GATEWAY_TOKEN_PREFIX)))
    request.state.gateway = caller
    return caller


def _gateway_of(engine: Engine, token_digest: str) -> GatewayRef:
    with reading(engine) as conn:
        row = conn.execute(select(gateways.c.id, gateways.c.territory_id, gateways.c.name,
                                  gateways.c.incarnation)
                           .where(gateways.c.token_hash == token_digest)).first()
    if row is None:
        raise Unauthorized(TOKEN_REFUSED)
    return GatewayRef(int(row.id), int(row.territory_id), str(row.name), int(row.incarnation))


@dataclass(frozen=True, slots=True)
class Pusher:
    """A push's gateway as its token names it, and the token's digest: the store checks it
    again in the transaction that keeps the batch."""

    gateway: GatewayRef
    token_digest: str


async def pushing_gateway(request: Request, state: State) -> Pusher:
    """The gateway of a push's token: as this process found it before, or looked up (in a
    thread) and remembered. No query at all for a token already seen valid."""
    known = getattr(request.state, "pusher", None)
    if isinstance(known, Pusher):
        return known
    token_digest = digest(bearer(request, GATEWAY_TOKEN_PREFIX))
    gateway = state.tokens.get(token_digest)
    if gateway is None:
        gateway = await run_in_threadpool(_gateway_of, state.engine, token_digest)
        state.tokens.keep(token_digest, gateway)
    pusher = Pusher(gateway, token_digest)
    request.state.pusher = pusher
    return pusher


@dataclass(frozen=True, slots=True)
class OperatorToken:
    """An operator token in force: who acts (acknowledgements name it) and where."""

    id: int
    name: str
    territory_id: int | None


def operator_token(request: Request, state: State) -> OperatorToken:
    """The active operator token of the request (looked up once per request)."""
    known = getattr(request.state, "operator", None)
    if isinstance(known, OperatorToken):
        return known
    token = bearer(request, OPERATOR_TOKEN_PREFIX)
    with reading(state.engine) as conn:
        row = conn.execute(select(operator_tokens.c.id, operator_tokens.c.name,
                                  operator_tokens.c.territory_id).where(
            operator_tokens.c.token_hash == digest(token),
            operator_tokens.c.revoked_ms.is_(None))).first()
    if row is None:
        raise Unauthorized("token refused: unknown or revoked")
    found = OperatorToken(int(row.id), str(row.name),
                          None if row.territory_id is None else int(row.territory_id))
    request.state.operator = found
    return found


Token = Annotated[OperatorToken, Depends(operator_token)]


def operator_scope(token: Token) -> Scope:
    """The territory an operator token may read (None for admin tokens)."""
    return Scope(token.territory_id)


Caller = Annotated[GatewayRef, Depends(gateway_caller)]
Pushing = Annotated[Pusher, Depends(pushing_gateway)]
Operator = Annotated[Scope, Depends(operator_scope)]

#: Each token check a route may depend on, with the prefix its tokens carry: what the door
#: runs before a route's body is read (in a thread, unless it is a coroutine function).
AUTHENTICATIONS: dict[Callable[[Request, HubState], object], str] = {
    gateway_caller: GATEWAY_TOKEN_PREFIX,
    pushing_gateway: GATEWAY_TOKEN_PREFIX,
    operator_token: OPERATOR_TOKEN_PREFIX,
}
