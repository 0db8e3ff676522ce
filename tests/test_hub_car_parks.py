"""Car parks at the hub over real HTTP: latest occupancy and capacity, free spaces, full flag.

tests/helpers/field.py's story: ``P-gare`` (2,001 occupancy readings, the newest 120 over a
capacity of 100, full since its latest event), ``P-port`` (30 of 200, full then available),
``P-nocap`` (no capacity, no event) at ``flood``; ``dry-park`` at ``dry``.
"""

from __future__ import annotations

import httpx
import pytest

from edge_agent.records import Event, Reading
from sync_server import admin
from tests.helpers.field import T0, Field, field_world, push
from tests.helpers.hub import HubProcess


@pytest.fixture(scope="module")
def world(hub: HubProcess) -> Field:
    return field_world(hub)


def _parks(client: httpx.Client, **params: str) -> list[dict[str, object]]:
    answer = client.get("/v1/car-parks", params=params)
    assert answer.status_code == 200, answer.text
    parks: list[dict[str, object]] = answer.json()["car_parks"]
    return parks


def test_each_car_park_shows_its_latest_counts_free_spaces_and_full_flag(world: Field) -> None:
    with world.operator("flood") as flood:
        parks = _parks(flood)
    assert parks == [
        {"territory": "flood", "gateway": "gw1", "car_park": "P-gare", "occupancy": 120,
         "occupancy_ms": T0 + 3_000_000, "capacity": 100, "capacity_ms": T0, "free": 0,
         "full": True, "full_since_ms": T0 + 2_999_000},
        {"territory": "flood", "gateway": "gw1", "car_park": "P-nocap", "occupancy": 12,
         "occupancy_ms": T0 + 7000, "capacity": None, "capacity_ms": None, "free": None,
         "full": None, "full_since_ms": None},
        {"territory": "flood", "gateway": "gw1", "car_park": "P-port", "occupancy": 30,
         "occupancy_ms": T0 + 10_000, "capacity": 200, "capacity_ms": T0 + 5000, "free": 170,
         "full": False, "full_since_ms": T0 + 1000},
    ]


def test_new_counts_and_events_replace_the_old_ones(world: Field) -> None:
    token = world.hub.enroll("flood", "gw-late")["token"]
    push(world.hub, token, "readings", [
        Reading("P-late", "parking_capacity", T0, 50.0),
        Reading("P-late", "parking_occupancy", T0 + 2000, 50.0),
        Reading("P-late", "parking_occupancy", T0 + 1000, 7.0),  # older, pushed later
        Reading("P-late", "parking_occupancy", T0 + 2000, 49.0),  # same time, later record
    ])
    push(world.hub, token, "events", [Event("car_park.full", "P-late", T0 + 2000),
                                      Event("car_park.available", "P-late", T0 + 2000)])
    with world.operator("flood") as flood:
        [late] = _parks(flood, gateway="gw-late")
    assert (late["occupancy"], late["capacity"], late["free"], late["full"]) == (49, 50, 1, False)


def test_car_parks_stay_in_their_territory(world: Field) -> None:
    with world.operator("dry") as dry, world.operator("flood") as flood:
        assert [(p["car_park"], p["free"]) for p in _parks(dry)] == [("dry-park", 5)]
        answer = flood.get("/v1/car-parks", headers={"X-Territory": "dry"},
                           params={"territory": "dry"})
        assert "dry" not in answer.text
        elsewhere = flood.get("/v1/car-parks", params={"gateway": "dry-gw"})
        nowhere = flood.get("/v1/car-parks", params={"gateway": "no-gw"})
        assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found")
        assert elsewhere.content == nowhere.content
    token = admin.add_operator_token(world.hub.engine, None, "parks-admin")
    with httpx.Client(base_url=world.hub.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        assert {p["territory"] for p in _parks(client)} == {"flood", "dry"}


@pytest.mark.parametrize("params", [{"gateway": "g" * 200}, {"gateway": ""}])
def test_bad_car_park_queries_get_the_error_shape(world: Field, params: dict[str, str]) -> None:
    with world.operator("flood") as flood:
        answer = flood.get("/v1/car-parks", params=params)
    assert answer.status_code in (400, 404), answer.text
    assert set(answer.json()) == {"error", "detail"}
