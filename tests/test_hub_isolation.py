"""Territory isolation over real HTTP: the territory comes from the token, never the request.

Two territories, alpha and bravo, each with a gateway that pushed readings and events and a
published policy bundle. Every cross-territory attempt is refused, and the answers leak
nothing: naming bravo's gateway answers exactly like naming one that exists nowhere, and no
answer given to alpha's tokens holds any of bravo's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select, update

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_events, encode_readings
from edge_agent.records import Event, Reading
from sync_server import admin
from sync_server.bundles import publish_bundle
from sync_server.db.schema import gateways, operator_tokens, series, territories
from sync_server.keys import load_signing_key
from tests.helpers.hub import HubProcess

_T0 = 1_764_000_000_000
_BRAVO_NAMES = ("bravo", "bravo-site", "bravo-gw", "bravo-meter", "bravo-secret")
_NOWHERE = "nowhere-gw"


@dataclass
class World:
    """Two territories' tokens; alpha's gateway is ``alpha-gw``, bravo's ``bravo-gw``."""

    hub: HubProcess
    alpha_gateway: str
    bravo_gateway: str
    alpha_operator: str
    bravo_operator: str
    admin: str

    def get(self, token: str, path: str, params: Mapping[str, str | int] | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(f"{self.hub.url}{path}", params=params, timeout=10,
                         headers={"Authorization": f"Bearer {token}", **(headers or {})})


def _populate(hub: HubProcess, name: str) -> str:
    token = hub.enroll(name, f"{name}-gw")["token"]
    auth = {"Authorization": f"Bearer {token}"}
    readings = [Reading(f"{name}-meter", "voltage", _T0 + i * 1000, 230.0 + i) for i in range(3)]
    events = [Event("device.offline", f"{name}-meter", _T0 + 5000, {"owner": name})]
    for stream, content_type, body in (
        ("readings", READINGS_TYPE, encode_readings(1, readings)),
        ("events", EVENTS_TYPE, encode_events(1, events)),
    ):
        answer = httpx.post(f"{hub.url}/v1/gateway/streams/{stream}/batches", content=body,
                            headers={**auth, "Content-Type": content_type}, timeout=10)
        assert answer.status_code == 200, answer.text
    key = load_signing_key(hub.data_dir / "signing-key.pem", demo=False)
    publish_bundle(hub.engine, key, name, "policy", {"owner": name, "secret": f"{name}-secret"},
                   expires_in_s=3600)
    return token


@pytest.fixture(scope="module")
def world(hub: HubProcess) -> World:
    alpha, bravo = _populate(hub, "alpha"), _populate(hub, "bravo")
    return World(hub, alpha, bravo, hub.territory("alpha").operator_token,
                hub.territory("bravo").operator_token,
                admin.add_operator_token(hub.engine, None, "admin"))


_SERIES: dict[str, str | int] = {"device": "bravo-meter", "quantity": "voltage",
                                 "from_ms": _T0, "to_ms": _T0 + 60_000}
_QUERIES: list[tuple[str, dict[str, str | int]]] = [
    ("/v1/latest", {}),
    ("/v1/latest", {"device": "bravo-meter"}),
    ("/v1/latest", {"device": "bravo-meter", "quantity": "voltage"}),
    ("/v1/series", _SERIES),
    ("/v1/events", {}),
    ("/v1/events", {"kind": "device.offline", "device": "bravo-meter"}),
    ("/v1/gateways", {}),
    ("/v1/alarms", {}),
    ("/v1/alarms", {"device": "bravo-meter", "state": "open"}),
    ("/v1/car-parks", {}),
]


@pytest.mark.parametrize(("path", "params"), _QUERIES)
def test_another_territorys_gateway_looks_like_one_that_does_not_exist(
    world: World, path: str, params: dict[str, str | int]
) -> None:
    elsewhere = world.get(world.alpha_operator, path, {**params, "gateway": "bravo-gw"})
    nowhere = world.get(world.alpha_operator, path, {**params, "gateway": _NOWHERE})
    assert elsewhere.status_code == nowhere.status_code
    if path == "/v1/gateways":  # takes no gateway filter: alpha's list either way
        assert elsewhere.status_code == 200
    else:  # docs/sync-protocol.md: "answers exactly like one that does not exist (404)"
        assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found")
    assert elsewhere.content == nowhere.content
    assert elsewhere.headers.get("content-length") == nowhere.headers.get("content-length")
    assert not any(name in elsewhere.text for name in _BRAVO_NAMES), elsewhere.text


@pytest.mark.parametrize(
    ("path", "params"),
    [("/v1/latest", {"device": "bravo-meter"}), ("/v1/events", {"device": "bravo-meter"}),
     ("/v1/events", {"kind": "device.offline"})],
)
def test_another_territorys_device_looks_like_one_that_does_not_exist(
    world: World, path: str, params: dict[str, str]
) -> None:
    elsewhere = world.get(world.alpha_operator, path, params)
    nowhere = world.get(world.alpha_operator, path,
                        {k: v.replace("bravo", "nowhere") for k, v in params.items()})
    assert elsewhere.status_code == 200
    assert not any(name in elsewhere.text for name in _BRAVO_NAMES), elsewhere.text
    if "kind" not in params:
        assert elsewhere.content == nowhere.content


@pytest.mark.parametrize(
    ("token", "path", "params"),
    [("alpha_operator", path, params) for path, params in _QUERIES if path != "/v1/series"]
    + [("alpha_operator", "/v1/series", {**_SERIES, "gateway": "alpha-gw"}),
       ("alpha_operator", "/v1/series", {**_SERIES, "device": "alpha-meter",
                                          "gateway": "alpha-gw"}),
       ("alpha_gateway", "/v1/gateway/streams", {}),
       ("alpha_gateway", "/v1/gateway/bundles/policy", {}),
       ("alpha_gateway", "/v1/gateway/bundles/config", {})],
)
def test_answers_to_alpha_never_hold_bravos_names(
    world: World, token: str, path: str, params: dict[str, str | int]
) -> None:
    for headers in ({}, {"X-Territory": "bravo"}, {"X-Ponton-Territory": "bravo",
                                                   "X-Ponton-Gateway": "bravo-gw"}):
        answer = world.get(getattr(world, token), path, params, headers)
        assert answer.status_code in (200, 404), answer.text
        assert not any(name in answer.text for name in _BRAVO_NAMES), answer.text


def test_alpha_sees_its_own_data(world: World) -> None:
    latest = world.get(world.alpha_operator, "/v1/latest", {"quantity": "voltage"}).json()
    assert [(v["territory"], v["gateway"], v["device"], v["value"]) for v in latest["values"]] == [
        ("alpha", "alpha-gw", "alpha-meter", 232.0)]
    events = world.get(world.alpha_operator, "/v1/events").json()["events"]
    assert [(e["gateway"], e["attrs"]) for e in events] == [("alpha-gw", {"owner": "alpha"})]
    listed = world.get(world.alpha_operator, "/v1/gateways").json()["gateways"]
    assert [(g["territory"], g["gateway"]) for g in listed] == [("alpha", "alpha-gw")]


def test_an_admin_token_sees_both_territories(world: World) -> None:
    listed = world.get(world.admin, "/v1/gateways").json()["gateways"]
    assert [(g["territory"], g["site"], g["gateway"]) for g in listed
            if g["territory"] != "charlie"] == [
        ("alpha", "alpha-site", "alpha-gw"), ("bravo", "bravo-site", "bravo-gw")]
    latest = world.get(world.admin, "/v1/latest", {"quantity": "voltage"}).json()["values"]
    assert [v["device"] for v in latest] == ["alpha-meter", "bravo-meter"]
    events = world.get(world.admin, "/v1/events", {"gateway": "bravo-gw"}).json()["events"]
    assert [e["attrs"] for e in events] == [{"owner": "bravo"}]
    buckets = world.get(world.admin, "/v1/series",
                        {**_SERIES, "gateway": "bravo-gw"}).json()["buckets"]
    assert [b["count"] for b in buckets] == [3]


@pytest.mark.parametrize("path", ["/v1/latest", "/v1/events", "/v1/gateways", "/v1/series",
                                  "/v1/alarms", "/v1/car-parks"])
@pytest.mark.parametrize("token", ["alpha_gateway", "bravo_gateway"])
def test_gateway_tokens_cannot_read_operator_routes(world: World, token: str, path: str) -> None:
    answer = world.get(getattr(world, token), path, _SERIES | {"gateway": "alpha-gw"})
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


@pytest.mark.parametrize("token", ["alpha_operator", "admin"])
def test_operator_tokens_cannot_push_or_pull(world: World, token: str) -> None:
    auth = {"Authorization": f"Bearer {getattr(world, token)}"}
    push = httpx.post(f"{world.hub.url}/v1/gateway/streams/readings/batches",
                      content=encode_readings(1, [Reading("m", "voltage", _T0, 1.0)]),
                      headers={**auth, "Content-Type": READINGS_TYPE}, timeout=10)
    assert (push.status_code, push.json()["error"]) == (401, "invalid_token")
    for path in ("/v1/gateway/streams", "/v1/gateway/bundles/policy"):
        answer = world.get(getattr(world, token), path)
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


@pytest.mark.parametrize(("token", "territory"), [("alpha_gateway", "alpha"),
                                                  ("bravo_gateway", "bravo")])
def test_a_gateway_pulls_only_its_territorys_bundle(
    world: World, token: str, territory: str
) -> None:
    other = "bravo" if territory == "alpha" else "alpha"
    other_token = getattr(world, f"{other}_gateway")
    for params, headers in (({}, {}), ({"token": other_token, "territory": other},
                                       {"X-Territory": other})):
        answer = world.get(getattr(world, token), "/v1/gateway/bundles/policy", params, headers)
        assert answer.status_code == 200
        assert answer.json()["bundle"]["territory"] == territory
        assert answer.json()["bundle"]["payload"]["owner"] == territory
        assert other not in answer.text


def test_a_push_is_stored_as_the_token_says_whatever_the_request_says(world: World) -> None:
    answer = httpx.post(
        f"{world.hub.url}/v1/gateway/streams/extra/batches",
        params={"gateway": "bravo-gw", "territory": "bravo", "token": world.bravo_gateway},
        content=encode_readings(1, [Reading("probe", "current", _T0, 1.0)]),
        headers={"Authorization": f"Bearer {world.alpha_gateway}",
                 "Content-Type": READINGS_TYPE, "X-Territory": "bravo",
                 "X-Ponton-Gateway": "bravo-gw"}, timeout=10)
    assert answer.status_code == 200, answer.text
    with world.hub.engine.connect() as conn:
        owner = conn.execute(
            select(territories.c.name, gateways.c.name)
            .join_from(series, gateways, series.c.gateway_id == gateways.c.id)
            .join(territories, series.c.territory_id == territories.c.id)
            .where(series.c.device == "probe")).all()
    assert [tuple(row) for row in owner] == [("alpha", "alpha-gw")]
    bravo = world.get(world.bravo_operator, "/v1/latest", {"device": "probe"}).json()
    assert bravo == {"values": []}


@pytest.mark.parametrize("path", ["/v1/latest", "/v1/gateway/streams"])
def test_a_token_in_the_query_string_is_not_a_credential(world: World, path: str) -> None:
    token = world.alpha_gateway if "gateway" in path else world.alpha_operator
    for name in ("token", "access_token", "authorization"):
        answer = httpx.get(f"{world.hub.url}{path}", params={name: token}, timeout=10)
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


def test_revoked_and_unknown_tokens_answer_alike(world: World) -> None:
    hub = world.hub
    revoked = admin.add_operator_token(hub.engine, "alpha", "revoked")
    assert world.get(revoked, "/v1/latest").status_code == 200
    with hub.engine.begin() as conn:
        conn.execute(update(operator_tokens).where(operator_tokens.c.name == "revoked")
                     .values(revoked_ms=1))
    unknown = world.get("pop_" + "x" * 43, "/v1/latest")
    answer = world.get(revoked, "/v1/latest")
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")
    assert answer.content == unknown.content

    old = hub.enroll("charlie", "charlie-gw")["token"]
    admin.add_gateway(hub.engine, "charlie", "charlie-site", "charlie-gw", reissue=True)
    refused = world.get(old, "/v1/gateway/streams")
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
    assert refused.content == world.get("pgw_" + "x" * 43, "/v1/gateway/streams").content


def test_a_push_token_reissued_after_it_was_seen_valid_stores_nothing(world: World) -> None:
    """The hub remembers push tokens it found valid, so its door asks nothing of the database;
    the storing transaction checks the token again, and a reissue refuses the old one there."""
    hub = world.hub
    old = hub.enroll("delta", "delta-gw")["token"]

    def push(token: str, first_seq: int) -> httpx.Response:
        body = encode_readings(first_seq, [Reading("delta-meter", "voltage", _T0, 231.0)])
        return httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches", content=body,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": READINGS_TYPE}, timeout=10)

    def last_seen() -> tuple[object, ...]:
        with hub.engine.connect() as conn:
            return tuple(conn.execute(select(gateways.c.last_seen_ms, gateways.c.incarnation)
                                      .where(gateways.c.name == "delta-gw")).one())

    assert push(old, 1).status_code == 200
    admin.add_gateway(hub.engine, "delta", "delta-site", "delta-gw", reissue=True)
    before = last_seen()
    unknown = push("pgw_" + "x" * 43, 2)
    for _ in range(2):  # refused in the transaction, then at the door: alike
        refused = push(old, 2)
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
        assert refused.content == unknown.content
    assert last_seen() == before  # the refused pushes touched nothing
    assert before[1] == 2


def test_a_reissued_push_token_has_one_body_read_whatever_its_bodies_are(world: World) -> None:
    """A body that fails before the store's check (it does not decode) is refused 400, not
    401; the door must still stop believing the token after it, or a reissued token (a box
    stolen, then replaced) would have every body it sends read and decoded, for good."""
    hub = world.hub

    def push(token: str, body: bytes) -> httpx.Response:
        return httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches", content=body,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": READINGS_TYPE}, timeout=10)

    good = encode_readings(1, [Reading("echo-meter", "voltage", _T0, 231.0)])
    old = hub.enroll("echo", "echo-gw")["token"]
    assert push(old, good).status_code == 200  # found valid: remembered by the door
    assert push(old, b"not a batch").status_code == 400
    assert push(old, good).status_code == 200, "a token in force still pushes after a 400"

    admin.add_gateway(hub.engine, "echo", "echo-site", "echo-gw", reissue=True)
    first = push(old, b"not a batch")
    assert first.status_code == 400, "read and refused before the store's check: once"
    for _ in range(3):
        refused = push(old, b"not a batch")
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
