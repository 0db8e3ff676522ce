"""Alarms at the hub over real HTTP: paired raises and clears, acknowledgements, isolation.

The records are tests/helpers/field.py's story, pushed through the real push route; the
hub runs on SQLite and on PostgreSQL (conftest's ``hub`` fixture).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.records import now_ms
from sync_server import admin
from sync_server.alarms import Acknowledgement, acknowledge
from tests.helpers.field import EXPECTED_ALARMS, T0, Field, field_world
from tests.helpers.hub import HubProcess

_MISSING = "2147483647-1"  # a well-formed id no alarm has


@pytest.fixture(scope="module")
def world(hub: HubProcess) -> Field:
    return field_world(hub)


@pytest.fixture
def flood(world: Field) -> Iterator[httpx.Client]:
    with world.operator("flood") as client:
        yield client


def _alarms(client: httpx.Client, **params: str | int) -> list[dict[str, Any]]:
    answer = client.get("/v1/alarms", params=params)
    assert answer.status_code == 200, answer.text
    alarms: list[dict[str, Any]] = answer.json()["alarms"]
    return alarms


def _summary(alarms: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["gateway"], a["device"], a["rule"], a["raised_ms"] - T0,
             None if a["cleared_ms"] is None else a["cleared_ms"] - T0) for a in alarms]


def _id(client: httpx.Client, device: str, rule: str, raised: int) -> str:
    for found in _alarms(client, device=device):
        if (found["rule"], found["raised_ms"]) == (rule, T0 + raised):
            return str(found["id"])
    raise AssertionError(f"no alarm {device} {rule} at {raised}")


def test_raises_are_paired_with_the_next_clear_of_their_rule(flood: httpx.Client) -> None:
    alarms = _alarms(flood)
    assert _summary(alarms) == EXPECTED_ALARMS
    first = alarms[-1]
    assert first == {"id": first["id"], "territory": "flood", "gateway": "gw1",
                     "device": "level-1", "rule": "level-high", "kind": "above",
                     "severity": "critical", "quantity": "water_level", "value": 2.1,
                     "threshold": 2.0, "raised_ms": T0 + 1000, "cleared_ms": T0 + 5000,
                     "ack": None}
    assert (alarms[-2]["kind"], alarms[-2]["severity"], alarms[-2]["threshold"]) == (
        "rate", "warning", 0.3)
    assert alarms[0]["quantity"] is None, "an attribute the raise lacks is null"
    assert len({a["id"] for a in alarms}) == len(alarms)
    assert _alarms(flood) == alarms, "ids and pairing are stable from one read to the next"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "open"}, [e for e in EXPECTED_ALARMS if e[4] is None]),
        ({"state": "cleared"}, [e for e in EXPECTED_ALARMS if e[4] is not None]),
        ({"state": "all"}, EXPECTED_ALARMS),
        ({"gateway": "gw2"}, [e for e in EXPECTED_ALARMS if e[0] == "gw2"]),
        ({"device": "level-1", "state": "open"},
         [e for e in EXPECTED_ALARMS if e[1] == "level-1" and e[4] is None]),
        ({"from_ms": T0 + 2000, "to_ms": T0 + 12_000}, EXPECTED_ALARMS[2:7]),
        ({"limit": 2}, EXPECTED_ALARMS[:2]),
        ({"limit": 1, "state": "cleared", "to_ms": T0 + 20_000}, EXPECTED_ALARMS[2:3]),
        ({"device": "nowhere"}, []),
    ],
)
def test_alarm_filters(flood: httpx.Client, params: dict[str, str | int],
                       expected: list[tuple[Any, ...]]) -> None:
    assert _summary(_alarms(flood, **params)) == expected


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_pages_follow_one_another_without_loss_across_ties(
    flood: httpx.Client, limit: int
) -> None:
    seen: list[dict[str, Any]] = []
    while page := _alarms(flood, limit=limit, **({"before": seen[-1]["id"]} if seen else {})):
        assert len(page) <= limit
        seen += page
    assert seen == _alarms(flood)
    assert _summary(seen) == EXPECTED_ALARMS
    tied = [a for a in seen if a["raised_ms"] == T0 + 2000]
    assert [a["rule"] for a in _alarms(flood, limit=2, before=tied[0]["id"])] == [
        "level-stale", "level-high"]


def test_a_page_after_an_alarm_of_another_territory_is_not_found(world: Field) -> None:
    with world.operator("dry") as dry, world.operator("flood") as flood:
        foreign = _alarms(dry)[0]["id"]
        elsewhere = flood.get("/v1/alarms", params={"before": foreign})
        nowhere = flood.get("/v1/alarms", params={"before": _MISSING})
        assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found")
        assert elsewhere.content == nowhere.content
        malformed = flood.get("/v1/alarms", params={"before": "-1"})
        assert (malformed.status_code, malformed.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("params", [{"state": "closed"}, {"limit": 0}, {"limit": 1001},
                                    {"from_ms": -1}, {"to_ms": 2**63}, {"device": "d" * 200},
                                    {"before": "1-" + "9" * 40}])
def test_bad_alarm_queries_are_refused(flood: httpx.Client, params: dict[str, Any]) -> None:
    answer = flood.get("/v1/alarms", params=params)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request"), answer.text


def test_an_acknowledgement_records_who_when_and_why(world: Field, flood: httpx.Client,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    alarm_id = _id(flood, "level-1", "level-high", 12_000)
    before = now_ms()
    answer = flood.post(f"/v1/alarms/{alarm_id}/ack",
                        json={"comment": "Route barrée, équipe sur place ✔\nà 21 h"})
    assert answer.status_code == 200, answer.text
    acked = answer.json()
    ack = acked["ack"]
    assert (ack["by"], ack["comment"]) == ("tests", "Route barrée, équipe sur place ✔\nà 21 h")
    assert isinstance(ack["token_id"], int)
    assert before <= ack["acked_ms"] <= now_ms()
    assert acked["cleared_ms"] is None, "acknowledged is not cleared"
    log = (world.hub.data_dir / "hub.log").read_text(encoding="utf-8")
    assert (f"INFO sync_server.alarms: alarm {alarm_id} (gw1/level-1, rule 'level-high') "
            "acknowledged by 'tests'\n") in log
    assert flood.get(f"/v1/alarms/{alarm_id}").json() == acked
    assert [a for a in _alarms(flood, state="open") if a["id"] == alarm_id] == [acked]

    again = flood.post(f"/v1/alarms/{alarm_id}/ack", json={"comment": "twice"})
    assert (again.status_code, again.json()["error"]) == (409, "already_acknowledged")
    assert "tests" in again.json()["detail"]
    assert flood.get(f"/v1/alarms/{alarm_id}").json()["ack"]["comment"].startswith("Route")

    cleared_id = _id(flood, "level-1", "level-high", 1000)
    with caplog.at_level(logging.INFO, logger="sync_server.alarms"):
        done = acknowledge(world.hub.engine, admin_territory(world), cleared_id,
                           Acknowledgement("astreinte", ""))
    assert (done["ack"]["by"], done["ack"]["token_id"], done["ack"]["comment"]) == (
        "astreinte", None, "")
    assert [r.getMessage() for r in caplog.records] == [
        f"alarm {cleared_id} (gw1/level-1, rule 'level-high') acknowledged by 'astreinte'"]


def test_concurrent_acknowledgements_store_one(world: Field, flood: httpx.Client) -> None:
    alarm_id = _id(flood, "level-1", "level-rate", 1500)

    def ack(n: int) -> httpx.Response:
        with world.operator("flood") as client:
            return client.post(f"/v1/alarms/{alarm_id}/ack", json={"comment": f"try {n}"})

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(ack, range(6)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409, 409]
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {
        "already_acknowledged"}
    [won] = [a.json() for a in answers if a.status_code == 200]
    assert flood.get(f"/v1/alarms/{alarm_id}").json() == won


def admin_territory(world: Field) -> int:
    with world.hub.engine.connect() as conn:
        return admin.territory_id(conn, "flood")


_HUGE = "x" * 1001


@pytest.mark.parametrize(("kwargs", "status", "error"), [
    ({"json": {"comment": _HUGE}}, 400, "invalid_field"),
    ({"json": {"comment": "before\u0000after"}}, 400, "invalid_field"),
    ({"json": {"comment": "bell\u0007"}}, 400, "invalid_field"),
    ({"content": b'{"comment": "\\ud800 alone"}'}, 400, "invalid_field"),
    ({"content": b'{"comment": "\xff\xfe"}'}, 400, "invalid_request"),
    ({"content": b"not json"}, 400, "invalid_request"),
    ({"content": b""}, 400, "invalid_request"),
    ({"json": {"comment": 5}}, 400, "invalid_request"),
    ({"json": {"comment": None}}, 400, "invalid_request"),
    ({"json": ["comment"]}, 400, "invalid_request"),
    ({"json": {"comment": "ok", "by": "someone-else"}}, 400, "invalid_request"),
    ({"content": b'{"comment": "' + b"y" * (9 * 2**20) + b'"}'}, 413, "too_large"),
])
def test_hostile_acknowledgements_are_refused_in_the_error_shape(
    flood: httpx.Client, kwargs: dict[str, Any], status: int, error: str
) -> None:
    alarm_id = _id(flood, "level-2", "level-high", 3000)
    if "content" in kwargs:
        kwargs = {**kwargs, "headers": {"Content-Type": "application/json"}}
    answer = flood.post(f"/v1/alarms/{alarm_id}/ack", **kwargs)
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text[:300]
    assert answer.json()["detail"]
    assert flood.get(f"/v1/alarms/{alarm_id}").json()["ack"] is None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(comment=st.text(st.characters(codec=None, exclude_categories=()), max_size=1010))
def test_any_comment_is_stored_exactly_or_refused_in_the_error_shape(
    flood: httpx.Client, comment: str
) -> None:
    alarm_id = _id(flood, "level-1", "level-low", 2000)
    body = json.dumps({"comment": comment}).encode()  # \uXXXX escapes carry lone surrogates
    answer = flood.post(f"/v1/alarms/{alarm_id}/ack", content=body,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code in (200, 400, 409), answer.text[:300]
    if answer.status_code == 200:
        assert answer.json()["ack"]["comment"] == comment
    elif answer.status_code == 400:
        assert answer.json()["error"] == "invalid_field"
    else:
        assert answer.json()["error"] == "already_acknowledged"


@pytest.mark.parametrize(("alarm_id", "status"), [
    ("-1", 400), ("1--1", 400), ("abc", 400), ("1.5", 400), ("1-", 400), ("0x10-1", 400),
    ("1-1 ", 400), ("9" * 41, 400), ("1-" + "9" * 30, 400),
    ("99999999999-1", 404), ("1-99999999999999999999", 404), ("0-1", 404),
    (_MISSING, 404),
])
def test_malformed_or_impossible_ids_name_nothing(
    flood: httpx.Client, alarm_id: str, status: int
) -> None:
    for answer in (flood.get(f"/v1/alarms/{alarm_id}"),
                   flood.post(f"/v1/alarms/{alarm_id}/ack", json={"comment": "x"})):
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == ("not_found" if status == 404 else "invalid_request")
    if status == 404:
        assert answer.content == flood.post(f"/v1/alarms/{_MISSING}/ack", json={}).content


def test_another_territorys_alarm_answers_like_one_that_does_not_exist(world: Field) -> None:
    with world.operator("dry") as dry, world.operator("flood") as flood:
        [foreign] = _alarms(dry)
        assert foreign["device"] == "dry-secret"
        for path, method in (("/v1/alarms/{}/ack", "POST"), ("/v1/alarms/{}", "GET")):
            elsewhere = flood.request(method, path.format(foreign["id"]),
                                      json={"comment": "mine now"})
            nowhere = flood.request(method, path.format(_MISSING), json={"comment": "mine now"})
            assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found")
            assert elsewhere.content == nowhere.content
            assert elsewhere.headers["content-length"] == nowhere.headers["content-length"]
        assert dry.get(f"/v1/alarms/{foreign['id']}").json()["ack"] is None
        listed = flood.get("/v1/alarms", params={"device": "dry-secret"},
                           headers={"X-Territory": "dry"})
        assert listed.json() == {"alarms": []}
        assert "dry" not in flood.get("/v1/alarms").text
        refused = flood.get("/v1/alarms", params={"gateway": "dry-gw"})
        assert refused.content == flood.get("/v1/alarms", params={"gateway": "no-gw"}).content


def test_an_admin_reads_every_territorys_alarms_but_acknowledges_none(world: Field) -> None:
    token = admin.add_operator_token(world.hub.engine, None, "alarm-admin")
    with httpx.Client(base_url=world.hub.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        alarms = _alarms(client)
        assert {a["territory"] for a in alarms} == {"flood", "dry"}
        assert len(alarms) == len(EXPECTED_ALARMS) + 1
        answer = client.post(f"/v1/alarms/{alarms[0]['id']}/ack", json={"comment": "x"})
        assert (answer.status_code, answer.json()["error"]) == (400, "territory_required")


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/alarms"), ("GET", "/v1/car-parks"),
                                              ("POST", "/v1/alarms/1-1/ack")])
def test_gateway_tokens_and_no_tokens_are_refused(world: Field, method: str, path: str) -> None:
    for headers in ({"Authorization": f"Bearer {world.gateways['gw1']}"}, {}):
        answer = httpx.request(method, f"{world.hub.url}{path}", headers=headers, json={},
                               timeout=10)
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")
