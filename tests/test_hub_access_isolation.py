"""Access control is territory-scoped and hostile requests get the error shape, never a 500.

Two territories, alpha and bravo, with rules, badges and pushed sessions. Alpha's operator
never sees or touches bravo's badges or reports: a bravo pseudonym answers exactly like one
that exists nowhere.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from edge_agent.codecs.access_policy import parse_policy
from edge_agent.codecs.batch import EVENTS_TYPE, encode_events
from edge_agent.codecs.bundle import verify_bundle
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.records import Event
from sync_server import admin
from tests.helpers.hub import ACCESS_RULES, HubProcess

_T0 = 1_764_000_000_000
_CARD = {"alpha": "A1A1A1A1A1", "bravo": "B2B2B2B2B2"}
_NOWHERE = "00" * 16


@dataclass
class Pair:
    """Both territories' clients and identities."""

    hub: HubProcess
    clients: dict[str, httpx.Client]
    identities: dict[str, dict[str, str]]
    admin: httpx.Client

    def card(self, territory: str) -> str:
        """The pseudonym of ``territory``'s registered card, under its own key."""
        key = base64.b64decode(self.identities[territory]["badge_key"])
        return pseudonym(key, bytes.fromhex(_CARD[territory])).hex()


@pytest.fixture(scope="module")
def pair(hub: HubProcess) -> Iterator[Pair]:
    identities, clients = {}, {}
    for name in ("alpha", "bravo"):
        identities[name] = hub.enroll(name, f"{name}-gw")
        clients[name] = hub.operator(name)
        assert clients[name].put("/v1/policy/rules", json=ACCESS_RULES).status_code == 200
        added = clients[name].post("/v1/badges", json={
            "number": _CARD[name], "category": "resident", "label": f"{name}-label"})
        assert added.status_code == 200, added.text
        session = Event("session.closed", f"{name}-pedestal", _T0, {
            "badge": added.json()["pseudonyms"][0], "started_ms": _T0 - 60_000,
            "ended_ms": _T0, "kwh": 1.5, "m3": None})
        pushed = httpx.post(f"{hub.url}/v1/gateway/streams/events/batches",
                            content=encode_events(1, [session]), timeout=10,
                            headers={"Authorization": f"Bearer {identities[name]['token']}",
                                     "Content-Type": EVENTS_TYPE})
        assert pushed.status_code == 200, pushed.text
    token = admin.add_operator_token(hub.engine, None, "access-admin")
    with httpx.Client(base_url=hub.url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as admin_client:
        yield Pair(hub, clients, identities, admin_client)
    for client in clients.values():
        client.close()


def test_each_operator_lists_only_its_badges(pair: Pair) -> None:
    for name, other in (("alpha", "bravo"), ("bravo", "alpha")):
        answer = pair.clients[name].get("/v1/badges", params={"territory": other},
                                        headers={"X-Territory": other})
        assert [b["pseudonym"] for b in answer.json()["badges"]] == [pair.card(name)]
        assert other not in answer.text


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/badges/{bravo}", None),
    ("POST", "/v1/badges/revoke", {"pseudonym": "{bravo}"}),
])
def test_a_bravo_badge_answers_alpha_like_one_that_does_not_exist(
    pair: Pair, method: str, path: str, body: dict[str, str] | None
) -> None:
    def ask(name: str) -> httpx.Response:
        filled = None if body is None else {k: v.format(bravo=name) for k, v in body.items()}
        return pair.clients["alpha"].request(method, path.format(bravo=name), json=filled)

    elsewhere, nowhere = ask(pair.card("bravo")), ask(_NOWHERE)
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found")
    assert elsewhere.content == nowhere.content
    assert pair.clients["bravo"].get(f"/v1/badges/{pair.card('bravo')}").json()[
        "revoked_ms"] is None


def test_bravos_card_number_names_nothing_for_alpha(pair: Pair) -> None:
    answer = pair.clients["alpha"].post("/v1/badges/revoke", json={"number": _CARD["bravo"]})
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    assert pair.clients["bravo"].get("/v1/badges", params={"revoked": "true"}).json() == {
        "badges": []}


def test_reports_hold_only_the_callers_territory(pair: Pair) -> None:
    for path in ("/v1/reports/consumption?by=badge", "/v1/reports/consumption?by=pedestal",
                 "/v1/reports/services", "/v1/policy/rules"):
        answer = pair.clients["alpha"].get(path, params={"territory": "bravo"},
                                           headers={"X-Territory": "bravo"})
        assert answer.status_code == 200, answer.text
        assert "bravo" not in answer.text
        assert pair.card("bravo") not in answer.text
    rows = pair.clients["alpha"].get("/v1/reports/consumption").json()["rows"]
    assert [(r["badge"], r["label"], r["kwh"]) for r in rows] == [
        (pair.card("alpha"), "alpha-label", 1.5)]


def test_each_gateway_gets_only_its_territorys_badges(pair: Pair) -> None:
    for name in ("alpha", "bravo"):
        identity = pair.identities[name]
        answer = httpx.get(f"{pair.hub.url}/v1/gateway/bundles/policy", timeout=10,
                           headers={"Authorization": f"Bearer {identity['token']}"})
        bundle = verify_bundle(answer.content, base64.b64decode(identity["signing_public_key"]),
                               kind="policy", territory=name)
        policy = parse_policy(bundle.payload, version=bundle.version,
                              expires_at_ms=bundle.expires_at_ms)
        assert [record.pseudonym.hex() for record in policy.badges] == [pair.card(name)]
        assert f"{name}-label" not in answer.text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/badges"), ("POST", "/v1/badges/import"), ("GET", "/v1/policy/rules"),
    ("GET", "/v1/reports/consumption"), ("POST", "/v1/policy/publish"),
])
def test_admin_tokens_change_and_report_no_territory(pair: Pair, method: str, path: str) -> None:
    answer = pair.admin.request(method, path, content=b"number,category\n")
    assert (answer.status_code, answer.json()["error"]) == (400, "territory_required")


@pytest.mark.parametrize("path", ["/v1/badges", "/v1/policy/rules", "/v1/reports/services"])
def test_gateway_tokens_cannot_use_operator_routes(pair: Pair, path: str) -> None:
    answer = httpx.get(f"{pair.hub.url}{path}", timeout=10, headers={
        "Authorization": f"Bearer {pair.identities['alpha']['token']}"})
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


_DEEP = b'{"categories": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "error"), [
    ("POST", "/v1/badges/import", {"content": b"\xff\xfe\x00garbage"}, 400, "invalid_request"),
    ("POST", "/v1/badges/import", {"content": b"number,category\n01\x0002,resident\n"},
     400, "invalid_rows"),
    ("POST", "/v1/badges/import", {"content": b"number,category\n" + b"0102,resident\n" * 100_001},
     400, "invalid_rows"),
    ("POST", "/v1/badges/import", {"content": b"x" * (9 * 2**20)}, 413, "too_large"),
    ("POST", "/v1/badges/import", {"content": b"number,category\n" + b"9" * 200_000 + b",r\n"},
     400, "invalid_rows"),
    ("POST", "/v1/badges/import", {"content": b"number,category\n0102,resident\n",
                                   "params": {"partial": "maybe"}}, 400, "invalid_request"),
    ("POST", "/v1/badges/import", {"content": b"colour\nred\n", "params": {"partial": "true"}},
     400, "invalid_rows"),
    ("POST", "/v1/badges", {"json": {"number": 12, "category": "resident"}},
     400, "invalid_request"),
    ("POST", "/v1/badges", {"json": {"number": "0102", "category": "resident", "extra": 1}},
     400, "invalid_request"),
    ("POST", "/v1/badges", {"json": {"number": "0102", "category": "x\u0000"}},
     400, "invalid_field"),
    ("POST", "/v1/badges", {"json": {"number": "0102", "category": "resident",
                                     "label": "a\u0000b"}}, 400, "invalid_field"),
    ("POST", "/v1/badges", {"json": {"number": "0102", "category": "resident",
                                     "valid_from": "yesterday"}}, 400, "invalid_field"),
    ("POST", "/v1/badges", {"content": b"not json", "headers": {"Content-Type":
                                                                "application/json"}},
     400, "invalid_request"),
    ("POST", "/v1/badges/revoke", {"json": {}}, 400, "invalid_request"),
    ("POST", "/v1/badges/revoke", {"json": {"number": "0102", "pseudonym": _NOWHERE}},
     400, "invalid_request"),
    ("GET", "/v1/badges/not-hex", {}, 404, "not_found"),  # not a pseudonym: no such path
    ("GET", "/v1/badges", {"params": {"category": "a\u0000"}}, 400, "invalid_request"),
    ("GET", "/v1/badges", {"params": {"limit": 10**9}}, 400, "invalid_request"),
    ("PUT", "/v1/policy/rules", {"json": ["categories"]}, 400, "invalid_request"),
    ("PUT", "/v1/policy/rules", {"json": {"categories": [f"c{i}" for i in range(300)]}},
     400, "invalid_policy"),
    ("PUT", "/v1/policy/rules", {"json": {"timezone": "Europe/Paris\u0000"}},
     400, "invalid_policy"),
    ("PUT", "/v1/policy/rules", {"content": _DEEP, "headers": {"Content-Type":
                                                               "application/json"}},
     400, "invalid_request"),
])
def test_hostile_requests_get_a_4xx_in_the_error_shape(
    pair: Pair, method: str, path: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    answer = pair.clients["alpha"].request(method, path, **kwargs)
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text[:500]
    assert answer.json()["detail"]
    summary = pair.clients["alpha"].get("/v1/policy/rules").json()
    assert (summary["badges"], summary["rules"]) == (1, ACCESS_RULES)
