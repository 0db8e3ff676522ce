"""Text the stores cannot hold, in every path and query parameter of every route: 400, never 500.

PostgreSQL's ``text`` cannot hold NUL, and no store can hold a lone surrogate (percent-encoded
UTF-8 of one is not valid UTF-8). The routes are walked from the application itself, so a
route added later is covered without touching this file; each of its text parameters gets
each hostile value over real HTTP, with a token that reaches the handler.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from sync_server.api.context import gateway_caller, pushing_gateway
from sync_server.api.openapi import api_routes, dependants
from sync_server.app import create_app
from sync_server.settings import HubSettings
from tests.helpers.hub import HubProcess

#: Percent-encoded values no store can hold: NUL alone and inside text, an encoded lone
#: surrogate (U+D800 as UTF-8 bytes), and bytes that are not UTF-8 at all.
HOSTILE = {"nul": "a%00", "only-nul": "%00", "surrogate": "x%ED%A0%80", "not-utf8": "%FF%FE"}
#: Valid values for the parameters a request needs besides the one under test.
_FILLERS = {"month": "2026-01", "territory": "params", "kind": "policy"}


@dataclass(frozen=True)
class TextParam:
    """One text parameter of one route."""

    method: str
    path: str
    name: str
    where: str  # "query" or "path"
    gateway: bool  # the route takes a gateway token (else an operator token)
    required_query: tuple[str, ...]

    def url(self, value: str) -> str:
        path = self.path
        for segment in _path_names(path):
            path = path.replace(f"{{{segment}}}", value if (self.where, self.name) == (
                "path", segment) else _FILLERS.get(segment, "x"))
        query = [f"{name}={_FILLERS.get(name, 'x')}" for name in self.required_query
                 if name != self.name]
        if self.where == "query":
            query.append(f"{self.name}={value}")
        return f"{path}?{'&'.join(query)}" if query else path


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def text_params(hub: HubProcess) -> list[TextParam]:
    """Every ``str`` path and query parameter of every route of an app on ``hub``'s store."""
    app = create_app(HubSettings(data_dir=hub.data_dir, database_url=hub.database_url,
                                 demo=True))
    app.state.hub.engine.dispose()
    found: list[TextParam] = []
    for route in api_routes(app):
        pulled = list(dependants(route))
        gateway = any(d.call in (gateway_caller, pushing_gateway) for d in pulled)
        query = [f for d in pulled for f in d.query_params]
        required = tuple(f.alias for f in query if f.field_info.is_required())
        for where, fields in (("query", query),
                              ("path", [f for d in pulled for f in d.path_params])):
            for field in fields:
                if str in _types(field.field_info.annotation):
                    found.extend(TextParam(method, route.path_format, field.alias, where, gateway,
                                           required) for method in sorted(route.methods or ()))
    return found


def _types(annotation: object) -> tuple[object, ...]:
    return getattr(annotation, "__args__", None) or (annotation,)


@pytest.fixture(scope="module")
def tokens(hub: HubProcess) -> dict[bool, str]:
    """An operator token (False) and a gateway token (True) of one territory."""
    gateway = hub.enroll("params")["token"]
    return {False: hub.territory("params").operator_token, True: gateway}


def test_the_walk_finds_the_filters_of_the_finding(hub: HubProcess) -> None:
    names = {(p.path, p.name) for p in text_params(hub)}
    for path in ("/v1/latest", "/v1/events"):
        assert {(path, "gateway"), (path, "device")} <= names
    assert {("/v1/events", "kind"), ("/v1/series", "quantity"), ("/v1/latest", "quantity"),
            ("/v1/open/{territory}/services", "territory"),
            ("/v1/gateway/streams/{stream}/batches", "stream"),
            ("/v1/badges/{pseudonym}", "pseudonym"), ("/v1/alarms/{alarm_id}", "alarm_id")} <= names


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_every_text_parameter_refuses_what_the_store_cannot_hold(
    hub: HubProcess, tokens: dict[bool, str], value: str
) -> None:
    wrong = []
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        for param in text_params(hub):
            answer = client.request(param.method, param.url(value),
                                    headers={"Authorization": f"Bearer {tokens[param.gateway]}"})
            body = answer.json()
            if (answer.status_code, set(body), body.get("error")) != (
                    400, {"error", "detail"}, "invalid_request"):
                wrong.append(f"{param.method} {param.url(value)}: {answer.status_code} {body}")
    assert wrong == []


def test_the_refusal_names_the_part(hub: HubProcess) -> None:
    with hub.operator("params") as client:
        answer = client.get("/v1/events?kind=a%00")
        path = client.get("/v1/alarms/a%00b")
    assert answer.status_code == 400
    assert "query" in answer.json()["detail"]
    assert path.status_code == 400
    assert "path" in path.json()["detail"]


@pytest.mark.parametrize("value", ["capteur-%C3%A9t%C3%A9", "a+b", "a%2Bb", "%E2%82%AC", ""])
def test_text_the_store_holds_passes(hub: HubProcess, value: str) -> None:
    with hub.operator("params") as client:
        for path in ("/v1/latest?device=", "/v1/events?kind=", "/v1/alarms?device="):
            answer = client.get(path + value)
            assert answer.status_code == 200, answer.text
