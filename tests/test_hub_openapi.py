"""The hub's OpenAPI says what the hub answers, and its routes match only what they serve.

The fuzzing run (tests/test_hub_openapi_fuzz.py) checks real answers against the document;
these tests check the document's promises themselves, and the badge routes' matching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from sync_server.api.openapi import ROUTE_ERRORS
from sync_server.app import create_app
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import upgrade
from sync_server.settings import HubSettings
from tests.helpers.hub import HubProcess

_METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document(hub: HubProcess) -> dict[str, Any]:
    """The OpenAPI document the running hub serves."""
    answer = httpx.get(f"{hub.url}/openapi.json", timeout=30)
    assert answer.status_code == 200
    served: dict[str, Any] = answer.json()
    return served


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation)
            for path, item in document["paths"].items()
            for method, operation in item.items() if method in _METHODS]


def test_no_operation_declares_the_422_the_hub_never_sends(document: dict[str, Any]) -> None:
    assert [(m, p) for m, p, op in _operations(document) if "422" in op["responses"]] == []
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_operation_declares_its_refusals_in_the_one_error_shape(
    document: dict[str, Any]
) -> None:
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "detail"}
    assert error["additionalProperties"] is False
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        assert {"200", "400", "413"} <= set(responses), (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in {"ErrorBody", "RowErrorsBody"}, (method, path)


def test_token_routes_declare_401_and_their_token(document: dict[str, Any]) -> None:
    schemes = {}
    for method, path, operation in _operations(document):
        security = operation.get("security")
        if path.startswith("/v1/gateway/"):
            schemes[method, path] = security
            assert security == [{"gatewayToken": []}], path
        elif path in ("/v1/health", "/healthz", "/readyz", "/v1/enroll") or path.startswith(
                "/v1/open/"):
            assert security is None, path
        else:
            assert security == [{"operatorToken": []}], path
        assert ("401" in operation["responses"]) == (
            security is not None or path == "/v1/enroll"), (method, path)
    assert schemes, "the gateway's routes are in the document"


def test_the_declared_refusals_name_the_routes_the_app_serves(document: dict[str, Any]) -> None:
    served = {op["operationId"].split("_v1_")[0] for _, _, op in _operations(document)}
    assert served == set(ROUTE_ERRORS), "a route without declared refusals, or a stale entry"


def test_routes_left_out_of_the_document_need_no_declaration(tmp_path: Path) -> None:
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    engine.dispose()
    app = create_app(HubSettings(data_dir=tmp_path, demo=True))
    pages = APIRouter()

    @pages.get("/dashboard", include_in_schema=False)
    def dashboard() -> str:
        return "a page"

    app.include_router(pages)
    try:
        assert "/dashboard" not in app.openapi()["paths"]
    finally:
        app.state.hub.engine.dispose()


def test_specific_refusals_are_declared(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert {"401", "429"} <= set(paths["/v1/enroll"]["post"]["responses"])
    assert "Retry-After" in paths["/v1/enroll"]["post"]["responses"]["429"]["headers"]
    push = paths["/v1/gateway/streams/{stream}/batches"]["post"]["responses"]
    assert {"409", "415"} <= set(push)
    assert "304" in paths["/v1/gateway/bundles/{kind}"]["get"]["responses"]
    problems = paths["/v1/badges/import"]["post"]["responses"]["400"]
    assert problems["content"]["application/json"]["schema"]["$ref"].endswith("RowErrorsBody")


@pytest.mark.parametrize(("method", "path", "status", "allow"), [
    ("GET", "/v1/badges/import", 405, "POST"),
    ("OPTIONS", "/v1/badges/import", 405, "POST"),
    ("GET", "/v1/badges/revoke", 405, "POST"),
    ("OPTIONS", "/v1/badges/" + "ab" * 16, 405, "GET"),
    ("GET", "/v1/badges/not-a-pseudonym", 404, None),
    ("GET", "/v1/badges/" + "ab" * 17, 404, None),
    ("GET", "/v1/badges/" + "ab" * 16, 404, None),
    ("GET", "/v1/badges/" + "AB" * 16, 404, None),
])
def test_badge_paths_match_only_pseudonyms(
    hub: HubProcess, method: str, path: str, status: int, allow: str | None
) -> None:
    with hub.operator("routes") as client:
        answer = client.request(method, path)
    code = {404: "not_found", 405: "method_not_allowed"}[status]
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert set(answer.json()) == {"error", "detail"}
    assert answer.headers.get("Allow") == allow


def test_a_badge_is_shown_by_its_pseudonym_in_either_case(hub: HubProcess) -> None:
    territory = "routes-show"
    with hub.operator(territory) as client:
        rules = {"categories": ["resident"], "zones": {"z": {}}, "gates": {"g": {"zone": "z"}},
                 "entitlements": [{"category": "resident", "zone": "z"}]}
        assert client.put("/v1/policy/rules", json=rules).status_code == 200
        added = client.post("/v1/badges", json={"number": "04A1B2C3", "category": "resident"})
        assert added.status_code == 200, added.text
        pseudonym = client.get("/v1/badges").json()["badges"][0]["pseudonym"]
        for shown in (pseudonym, pseudonym.upper()):
            answer = client.get(f"/v1/badges/{shown}")
            assert (answer.status_code, answer.json()["pseudonym"]) == (200, pseudonym)
