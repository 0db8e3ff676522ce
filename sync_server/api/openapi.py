"""The hub's OpenAPI document, declaring every answer the hub really gives, in one place.

FastAPI alone lists 200 and a 422 the hub never sends (validation errors leave as 400), so
clients and fuzzers could not check the refusals. Here each operation gets its real statuses
with the one error shape, from three sources: what every route shares (a path or query the
stores cannot hold and a malformed request are 400, a body too slow 408, one over the limit
413), what the
route's dependencies imply (a token: 401 and a bearer security requirement), and a table of
what each handler may refuse on purpose. A route missing from the table stops the document
from being built, so a new route cannot ship undeclared.
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from edge_agent.codecs.batch import EVENTS_TYPE, MAX_RECORDS, PLAIN_TYPE, READINGS_TYPE
from sync_server.api.context import gateway_caller, operator_token, pushing_gateway

__all__ = [
    "ROUTE_ERRORS",
    "ErrorBody",
    "RowErrorsBody",
    "api_routes",
    "declare_answers",
    "dependants",
    "install_openapi",
]


class ErrorBody(BaseModel):
    """Every refusal: a stable code that clients decide on, and a sentence for a human."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: str


class RowProblem(BaseModel):
    """What is wrong on one line of an import, and in which field (``-``: the whole line)."""

    model_config = ConfigDict(extra="forbid")

    line: int
    field: str
    reason: str


class RowErrorsBody(BaseModel):
    """A refused import: the error shape, plus ``problems`` when lines are wrong."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: str
    problems: list[RowProblem] = []


#: What a batch's names and timestamps may be (edge_agent/codecs/batch.py checks them).
_Device = Annotated[str, Field(min_length=1, max_length=128)]
_Name = Annotated[str, Field(min_length=1, max_length=64)]
_Ms = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class PlainReading(BaseModel):
    """A reading of a plain JSON batch (``edge_agent.codecs.batch.encode_plain``)."""

    device: _Device
    quantity: _Name
    ts_ms: _Ms
    value: float | Literal["nan", "inf", "-inf"]
    #: GOOD, SUSPECT, INVALID.
    quality: Literal[0, 1, 2] = 0


class PlainReadings(BaseModel):
    """Readings with consecutive sequence numbers from ``first_seq``."""

    first_seq: Annotated[int, Field(ge=1, le=2**63 - 1)]
    readings: Annotated[list[PlainReading], Field(min_length=1, max_length=MAX_RECORDS)]


class EventRecord(BaseModel):
    """An event: its kind, device, time and attributes."""

    kind: _Name
    device: _Device
    ts_ms: _Ms
    attrs: dict[str, Any] = {}


class EventBatch(BaseModel):
    """Events with consecutive sequence numbers from ``first_seq``."""

    first_seq: Annotated[int, Field(ge=1, le=2**63 - 1)]
    events: Annotated[list[EventRecord], Field(min_length=1, max_length=MAX_RECORDS)]


#: Bodies the handlers read themselves, so FastAPI cannot see them: the push's three forms
#: (the compact readings' columns are described in docs/sync-protocol.md) and the badges' CSV.
_BODIES: dict[str, dict[str, Any]] = {
    "push": {
        PLAIN_TYPE: {"schema": {"anyOf": [{"$ref": "#/components/schemas/PlainReadings"},
                                          {"$ref": "#/components/schemas/EventBatch"}]}},
        EVENTS_TYPE: {"schema": {"$ref": "#/components/schemas/EventBatch"}},
        READINGS_TYPE: {"schema": {"type": "object", "required": ["first_seq", "series"],
                                   "description": "compact columnar readings"}},
    },
    "import_csv": {"text/csv": {"schema": {"type": "string"}}},
}
#: Parameters the handlers check themselves (sync_server/api/gateway.py, wire.py), by route
#: and name: what docs/sync-protocol.md promises, so clients and fuzzers send real ones.
_PARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "push": {
        "stream": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
        "content-type": {"type": "string", "enum": [PLAIN_TYPE, EVENTS_TYPE, READINGS_TYPE]},
        "content-encoding": {"type": "string", "enum": ["identity", "gzip", "zstd"]},
        "x-ponton-sent-at": {"type": "string", "pattern": "^[0-9]{1,16}$"},
        "x-ponton-backlog": {"type": "string", "pattern": "^[0-9]{1,16}$"},
        "x-ponton-agent-version": {"type": "string",
                                   "pattern": "^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$"},
        "x-ponton-sync-lag-ms": {"type": "string", "pattern": "^[0-9]{1,16}$"},
        "x-ponton-bundles": {"type": "string", "maxLength": 400,
                             "pattern": "^[a-z][a-z0-9_]{0,15}=[1-9][0-9]{0,15}"
                                        "(,[a-z][a-z0-9_]{0,15}=[1-9][0-9]{0,15}){0,15}$"},
    },
}
#: Statuses every route may answer: text the stores cannot hold or a malformed request (400),
#: a body not in within ``--body-timeout`` (408) and one over the limit (413) are refused
#: before any handler runs.
SHARED = (400, 408, 413)
#: What each handler (by route name) refuses on purpose, besides ``SHARED`` and the 401 of
#: its token. 404 names nothing the caller may see; 409 contradicts what is stored.
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "health": (),
    "enroll": (401, 429),
    "open_services": (404,),
    "push": (404, 409, 415, 503),
    "marks": (),
    "declare_devices": (),
    "bundle": (304, 404, 409),
    "list_gateways": (),
    "latest": (404,),
    "series": (404,),
    "list_events": (404,),
    "list_alarms": (404,),
    "show_alarm": (404,),
    "ack_alarm": (404, 409),
    "list_car_parks": (404,),
    "list_badges": (),
    "show_badge": (404,),
    "new_badge": (409,),
    "import_csv": (409,),
    "revoke": (404, 409),
    "get_rules": (),
    "put_rules": (409,),
    "publish": (409,),
    "consumption_report": (),
    "services_report": (),
    "open_catalog": (304, 404),
    "open_car_parks": (304, 404),
    "open_energy": (304, 404),
    "list_datasets": (),
    "enable_dataset": (404,),
    "disable_dataset": (404,),
    "list_car_park_places": (),
    "update_place": (404,),
    "healthz": (),
    "readyz": (503,),
    "metrics": (403,),
}
_TOKENS = {gateway_caller: "gatewayToken", pushing_gateway: "gatewayToken",
           operator_token: "operatorToken"}
_SECURITY_SCHEMES = {
    "gatewayToken": {"type": "http", "scheme": "bearer",
                     "description": "A gateway's pgw_ token, from enrollment."},
    "operatorToken": {"type": "http", "scheme": "bearer",
                      "description": "An operator's pop_ token (sync-server token add)."},
}
#: FastAPI's validation-error schemas, unused once 422 is gone.
_UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError")


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of ``app``, with its full path, in routing order."""
    return [context.original_route for context in iter_route_contexts(app.routes)
            if isinstance(context.original_route, APIRoute)]


def install_openapi(app: FastAPI) -> None:
    """Make ``app`` serve the document of this module (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            declare_answers(document, api_routes(app))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def declare_answers(document: dict[str, Any], routes: list[APIRoute]) -> None:
    """Declare each route's statuses, error schemas and token in ``document``, in place."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _UNUSED_SCHEMAS:
        schemas.pop(name, None)
    _, definitions = models_json_schema(
        [(ErrorBody, "serialization"), (RowErrorsBody, "serialization"),
         (PlainReadings, "validation"), (EventBatch, "validation")],
        ref_template="#/components/schemas/{model}")
    schemas.update(definitions["$defs"])
    document["components"]["securitySchemes"] = _SECURITY_SCHEMES
    for route in (route for route in routes if route.include_in_schema):
        token = _token_scheme(route)
        statuses = sorted({*SHARED, *ROUTE_ERRORS[route.name], *((401,) if token else ())})
        error = "RowErrorsBody" if route.name == "import_csv" else "ErrorBody"
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            responses.pop("422", None)
            responses.update({str(status): _response(status, error) for status in statuses})
            if token:
                operation["security"] = [{token: []}]
            if route.name in _BODIES:
                operation["requestBody"] = {"required": True, "content": _BODIES[route.name]}
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _PARAMETERS.get(route.name, {}).get(
                    parameter["name"], parameter["schema"])


def _response(status: int, error: str) -> dict[str, Any]:
    described: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if status == 304:
        return described
    described["content"] = {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{error if status == 400 else 'ErrorBody'}"}}}
    if status == 429:
        described["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                "description": "seconds to wait"}}
    return described


def _token_scheme(route: APIRoute) -> str | None:
    for dependant in dependants(route):
        if dependant.call in _TOKENS:
            return _TOKENS[dependant.call]
    return None


def dependants(route: APIRoute) -> Iterator[Dependant]:
    """The route's handler and every dependency it pulls in, depth first."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        yield dependant
        pending.extend(reversed(dependant.dependencies))
