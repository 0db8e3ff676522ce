"""The NGSI-LD API subset that serves live open data: ``GET /ngsi-ld/v1/entities?type=…`` and
``GET /ngsi-ld/v1/entities/{id}``, the territory named by the ``NGSILD-Tenant`` header.

Errors leave in NGSI-LD's ProblemDetails (``type``, ``title``, ``detail``; ETSI GS CIM 009
§5.5.2), not in the hub's own shape, since NGSI-LD clients read those. Query parameters are
read here rather than by FastAPI so that every refusal is a ProblemDetails. A tenant that does
not exist and an entity type its territory does not publish answer the same 404.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sync_server.api.context import State
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest, HubError, NotFound
from sync_server.opendata.caching import LIVE_MAX_AGE_S, cached
from sync_server.opendata.datasets import UNPUBLISHED, published_territory
from sync_server.opendata.ngsi import (
    CORE_CONTEXT,
    ENTITY_TYPES,
    Entity,
    entities,
    entity_type_of,
    render,
)

__all__ = ["NotAcceptable", "router"]

log = logging.getLogger("sync_server.opendata")

router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"], route_class=DoorRoute,
                   include_in_schema=False)

_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
_PROBLEMS = {400: ("BadRequestData", "Bad request data"),
             404: ("ResourceNotFound", "Resource not found"),
             406: ("InvalidRequest", "Not acceptable"),
             500: ("InternalError", "Internal error")}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S{1,500}")
_PARAMETERS = frozenset({"type", "id", "options", "format", "limit", "offset", "count"})
_FORMS = {"keyValues": True, "simplified": True, "normalized": False}
MAX_LIMIT = 1000
_DEFAULT_LIMIT = 100


class NotAcceptable(HubError):
    """The client accepts none of the media types NGSI-LD answers in."""

    status = 406
    default_code = "not_acceptable"


@dataclass(frozen=True, slots=True)
class _Form:
    """How to answer: key values or normalized; JSON-LD (context inline) or JSON (Link)."""

    key_values: bool
    json_ld: bool


def _problem(exc: HubError) -> JSONResponse:
    name, title = _PROBLEMS.get(exc.status, _PROBLEMS[500])
    return JSONResponse({"type": _ERRORS + name, "title": title, "detail": exc.detail},
                        status_code=exc.status if exc.status in _PROBLEMS else 500)


def _form(request: Request) -> _Form:
    accept = request.headers.get("accept", "*/*").lower()
    json_ld = "application/ld+json" in accept
    if not (json_ld or any(kind in accept for kind in ("application/json", "*/*",
                                                       "application/*"))):
        raise NotAcceptable("answers are application/json or application/ld+json")
    forms = [value for key in ("options", "format")
             for value in request.query_params.get(key, "").split(",") if value]
    unknown = [value for value in forms if value not in _FORMS]
    if unknown:
        raise BadRequest(f"unsupported option {unknown[0][:40]!r}: use keyValues, simplified "
                         "or normalized")
    return _Form(any(_FORMS[value] for value in forms), json_ld)


def _tenant(request: Request) -> str:
    tenant = request.headers.get("ngsild-tenant")
    if not tenant:
        raise BadRequest("send the NGSILD-Tenant header: the territory's name")
    return tenant


def _integer(request: Request, name: str, default: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    # ASCII digits only, and short: "²" is a digit to str.isdigit, and int() refuses very
    # long strings; both would end as a 500.
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or int(text) > high:
        raise BadRequest(f"{name} must be a whole number from 0 to {high}")
    return int(text)


def _answer(request: Request, form: _Form, tenant: str, entity_type: str,
            document: object) -> Response:
    context = ENTITY_TYPES[entity_type].context
    headers = {"NGSILD-Tenant": tenant}
    if not form.json_ld:
        headers["Link"] = (f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                           'type="application/ld+json"')
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return cached(request, body, "application/ld+json" if form.json_ld else "application/json",
                  max_age_s=LIVE_MAX_AGE_S, vary="Accept, NGSILD-Tenant", headers=headers)


def _rendered(found: list[Entity], form: _Form, entity_type: str) -> list[dict[str, object]]:
    context = [ENTITY_TYPES[entity_type].context, CORE_CONTEXT] if form.json_ld else None
    return [render(entity, key_values=form.key_values, context=context) for entity in found]


def _published(state: State, tenant: str, entity_type: str) -> list[Entity]:
    """Every entity of ``entity_type`` ``tenant`` publishes; NotFound if it publishes none."""
    with reading(state.engine) as conn:
        territory = published_territory(conn, tenant, ENTITY_TYPES[entity_type].dataset)
        return entities(conn, territory, entity_type)


@router.get("/entities", response_model=None)
def query_entities(request: Request, state: State) -> Response:
    """Entities of one type (``type`` is required here), optionally by ``id`` list, paged by
    ``limit`` and ``offset``; ``count=true`` adds ``NGSILD-Results-Count``."""
    try:
        unsupported = sorted(set(request.query_params) - _PARAMETERS)
        if unsupported:
            raise BadRequest(f"parameter {unsupported[0][:40]!r} is not supported here; "
                             f"use {', '.join(sorted(_PARAMETERS))}")
        form, tenant = _form(request), _tenant(request)
        entity_type = request.query_params.get("type", "")
        if not _NAME.fullmatch(entity_type):
            raise BadRequest("type must be one entity type name, like OffStreetParking")
        limit = _integer(request, "limit", _DEFAULT_LIMIT, MAX_LIMIT)
        offset = _integer(request, "offset", 0, 2**31)
        count = request.query_params.get("count", "false")
        if count not in ("true", "false"):
            raise BadRequest("count must be true or false")
        wanted = {i for i in request.query_params.get("id", "").split(",") if i}
        if any(not _URI.fullmatch(i) for i in wanted):
            raise BadRequest("id must be a comma-separated list of URIs")
        if entity_type not in ENTITY_TYPES:
            raise NotFound(UNPUBLISHED)
        found = [e for e in _published(state, tenant, entity_type)
                 if not wanted or e.id in wanted]
        response = _answer(request, form, tenant, entity_type,
                           _rendered(found[offset:offset + limit], form, entity_type))
        if count == "true":
            response.headers["NGSILD-Results-Count"] = str(len(found))
        return response
    except HubError as exc:
        return _problem(exc)


@router.get("/entities/{entity_id:path}", response_model=None)
def retrieve_entity(entity_id: str, request: Request, state: State) -> Response:
    """One entity by id."""
    try:
        form, tenant = _form(request), _tenant(request)
        if not _URI.fullmatch(entity_id):
            raise BadRequest("an entity id is a URI, like urn:ngsi-ld:OffStreetParking:gw:P1")
        entity_type = entity_type_of(entity_id)
        if entity_type is None:
            raise NotFound("no entity of that id for this tenant")
        found = [e for e in _published(state, tenant, entity_type) if e.id == entity_id]
        if not found:
            raise NotFound("no entity of that id for this tenant")
        return _answer(request, form, tenant, entity_type,
                       _rendered(found, form, entity_type)[0])
    except HubError as exc:
        return _problem(exc)
