"""Routes for access control, with a territory's operator token: badges, rules, reports.

The territory is the token's, as everywhere: a pseudonym of another territory answers like
one that does not exist. Card numbers travel in bodies, never in URLs (which end up in
proxies' logs), and are not kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from sync_server.access.badge_input import MAX_LABEL, BadgeText
from sync_server.access.policy import PolicySigner, publish_policy, rules_summary, set_rules
from sync_server.access.registry import (
    MAX_LISTED,
    BadgeRef,
    add_badge,
    badge_rows,
    import_badges,
    revoke_badge,
)
from sync_server.access.reports import consumption, grouping, service_statistics
from sync_server.api.context import HubState, Operator, State
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest, NotFound

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["access"], route_class=DoorRoute)

_Month = Annotated[str | None, Query(max_length=7)]
#: A pseudonym's 32 hex digits, matched by the router itself: ``/v1/badges/import`` and other
#: words are then not pseudonyms, so a wrong method there gets 405 and an unknown path 404.
_PSEUDONYM = "[0-9A-Fa-f]{32}"
#: A category name (access_policy's names); refused before it reaches the database.
_CATEGORY = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _PseudonymPath(Convertor[str]):
    regex = _PSEUDONYM

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("pseudonym", _PseudonymPath())


def territory_of(scope: Operator) -> int:
    """The caller's territory; admin tokens read every territory but change none."""
    if scope.territory_id is None:
        raise BadRequest("badges, rules and reports belong to one territory: use that "
                         "territory's operator token", code="territory_required")
    return scope.territory_id


Territory = Annotated[int, Depends(territory_of)]


def _signer(state: HubState) -> PolicySigner:
    return PolicySigner(state.key, state.settings.policy_lifetime_s)


class NewBadge(BaseModel):
    """A badge to register: its printed number is turned into a pseudonym and dropped."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=64)
    form: str = Field(default="hex", max_length=16)
    #: The card's byte count, for ``dec`` numbers.
    length: int | None = Field(default=None, ge=1, le=16)
    category: str = Field(min_length=1, max_length=64)
    valid_from: str = Field(default="", max_length=40)
    valid_until: str = Field(default="", max_length=40)
    master: bool = False
    label: str = Field(default="", max_length=MAX_LABEL)


class BadgeName(BaseModel):
    """A registered badge, by printed number or by pseudonym."""

    model_config = ConfigDict(extra="forbid")

    number: str | None = Field(default=None, min_length=1, max_length=64)
    form: str = Field(default="hex", max_length=16)
    length: int | None = Field(default=None, ge=1, le=16)
    pseudonym: str | None = Field(default=None, max_length=64)


def _length(length: int | None) -> str:
    return "" if length is None else str(length)


@router.get("/badges")
def list_badges(
    territory: Territory,
    state: State,
    category: Annotated[str | None, Query(pattern=_CATEGORY)] = None,
    revoked: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> dict[str, Any]:
    """The territory's badges by pseudonym, ordered by pseudonym."""
    with reading(state.engine) as conn:
        return {"badges": badge_rows(conn, territory, category=category, revoked=revoked,
                                     limit=limit, offset=offset)}


@router.get("/badges/{pseudonym:pseudonym}")
def show_badge(
    pseudonym: Annotated[str, Path(pattern=f"^{_PSEUDONYM}$")], territory: Territory, state: State
) -> dict[str, Any]:
    """One badge by pseudonym (32 hex digits)."""
    with reading(state.engine) as conn:
        rows = badge_rows(conn, territory, pseudonym_hex=pseudonym, limit=1)
    if not rows:
        raise NotFound("no badge with that pseudonym in this territory")
    return rows[0]


@router.post("/badges")
def new_badge(body: NewBadge, territory: Territory, state: State) -> dict[str, Any]:
    """Register (or update) one badge and publish the policy."""
    text = BadgeText(body.number, body.category, body.form, body.valid_from, body.valid_until,
                     str(body.master), body.label, _length(body.length))
    return add_badge(state.engine, _signer(state), territory, text).as_dict()


@router.post("/badges/import")
async def import_csv(
    request: Request, territory: Territory, state: State, partial: bool = False
) -> dict[str, Any]:
    """Register every badge of a CSV body; ``invalid_rows`` lists (line, field, reason)."""
    data = await request.body()  # read by the door once the token passed, and bounded
    change = await run_in_threadpool(import_badges, state.engine, _signer(state), territory,
                                     data, partial=partial)
    return change.as_dict()


@router.post("/badges/revoke")
def revoke(body: BadgeName, territory: Territory, state: State) -> dict[str, Any]:
    """Revoke a badge and publish the policy; revoking twice changes nothing."""
    ref = BadgeRef(body.number, body.form, body.pseudonym, _length(body.length))
    return revoke_badge(state.engine, _signer(state), territory, ref).as_dict()


@router.get("/policy/rules")
def get_rules(territory: Territory, state: State) -> dict[str, Any]:
    """The rules, their digest, the newest policy and the badge counts."""
    with reading(state.engine) as conn:
        return rules_summary(conn, territory)


@router.put("/policy/rules")
def put_rules(
    rules: Annotated[dict[str, Any], Body()], territory: Territory, state: State
) -> dict[str, Any]:
    """Check and store the rules (refused with the gateways' own message), then publish."""
    return {"policy_version": set_rules(state.engine, _signer(state), territory, rules)}


@router.post("/policy/publish")
def publish(territory: Territory, state: State) -> dict[str, Any]:
    """Sign the current rules and badges as a new policy version now."""
    return {"policy_version": publish_policy(state.engine, _signer(state), territory)}


@router.get("/reports/consumption")
def consumption_report(
    territory: Territory,
    state: State,
    by: Annotated[str, Query(max_length=16)] = "badge",
    month: _Month = None,
) -> dict[str, Any]:
    """kWh, m³ and sessions per badge, pedestal or month."""
    with reading(state.engine) as conn:
        return consumption(conn, territory, by=grouping(by), month=month)


@router.get("/reports/services")
def services_report(territory: Territory, state: State, month: _Month = None) -> dict[str, Any]:
    """Uses per service, holder category and hour; cells under k badges left out."""
    with reading(state.engine) as conn:
        return service_statistics(conn, territory, k=state.settings.report_min_badges,
                                  month=month)
