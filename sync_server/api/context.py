"""What every route needs: the hub's shared state and the caller's identity.

Identity comes from the bearer token only. A gateway token resolves to its gateway and
territory, an operator token to a territory (or to every territory for an admin); nothing in
the path, query or headers can widen that. The door (api/limits.py) runs a route's token
check before reading its body; the identity it found is kept on the request, so the route's
own dependency does not look the token up twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, select

from sync_server.api.decode_pool import DecodePool
from sync_server.credentials import GATEWAY_TOKEN_PREFIX, OPERATOR_TOKEN_PREFIX, digest
from sync_server.db.engine import reading
from sync_server.db.schema import gateways, operator_tokens
from sync_server.errors import Unauthorized
from sync_server.ingest import GatewayRef
from sync_server.keys import SigningKey
from sync_server.queries import Scope
from sync_server.settings import HubSettings

__all__ = [
    "AUTHENTICATIONS",
    "Caller",
    "HubState",
    "Operator",
    "OperatorToken",
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
    decoding: DecodePool = field(default_factory=DecodePool)


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
    token = bearer(request, GATEWAY_TOKEN_PREFIX)
    with reading(state.engine) as conn:
        row = conn.execute(select(gateways.c.id, gateways.c.territory_id, gateways.c.name,
                                  gateways.c.incarnation)
                           .where(gateways.c.token_hash == digest(token))).first()
    if row is None:
        raise Unauthorized("token refused: unknown or revoked; re-provision the gateway")
    caller = GatewayRef(int(row.id), int(row.territory_id), str(row.name), int(row.incarnation))
    request.state.gateway = caller
    return caller


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
Operator = Annotated[Scope, Depends(operator_scope)]

#: Each token check a route may depend on, with the prefix its tokens carry: what the door
#: runs before a route's body is read.
AUTHENTICATIONS: dict[Callable[[Request, HubState], object], str] = {
    gateway_caller: GATEWAY_TOKEN_PREFIX,
    operator_token: OPERATOR_TOKEN_PREFIX,
}
