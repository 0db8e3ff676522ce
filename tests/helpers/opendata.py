"""Open-data checks against the published schemas, offline, and a territory that publishes.

Validators: the national car-park Table Schema through Frictionless; the Smart Data Models'
JSON Schemas through jsonschema, every remote ``$ref`` resolved from tests/data/opendata
(a registry that refuses anything else, so no test can reach the network). NGSI-LD
normalized entities are checked as NGSI-LD (each attribute a Property or GeoProperty with a
value) and then, as key values, against the same JSON Schema.

World: territory ``coast`` counts two car parks on ``gw-parks`` (``P-gare``: 2,000 readings,
the newest 120 over a capacity of 100; ``P-port``: 30 of 200) and one without details
(``P-nodetail``); ``gw-env`` sends a water level, a flow, an air-quality station and an
energy meter read over the last months. Territory ``inland`` has a car park and publishes
nothing. Every record goes through the gateway push route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from frictionless import Report, Resource, Schema
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from edge_agent.records import Event, Reading, now_ms
from tests.helpers.field import push
from tests.helpers.hub import HubProcess

__all__ = ["DATA", "PLACES", "SDM_REGISTRY", "OpenWorld", "key_values_of", "open_world",
           "sdm_errors", "table_report"]

DATA = Path(__file__).resolve().parents[1] / "data" / "opendata"
_REMOTE = {
    "https://smart-data-models.github.io/data-models/common-schema.json":
        "sdm-common-schema.json",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "Environment-schema.json": "sdm-Environment-schema.json",
}


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _refuse(uri: str) -> Any:
    raise NoSuchResource(uri)


SDM_REGISTRY: Registry[Any] = Registry(retrieve=_refuse).with_resources(  # type: ignore[call-arg]
    (uri, DRAFT202012.create_resource(_load(name))) for uri, name in _REMOTE.items())


def table_report(csv_bytes: bytes) -> Report:
    """``csv_bytes`` validated by Frictionless against the national car-park schema."""
    schema = Schema.from_descriptor(_load("stationnement-schema.json"))
    return Resource(csv_bytes, format="csv", schema=schema).validate()


def sdm_errors(entity: dict[str, Any]) -> list[str]:
    """What the Smart Data Models schema of ``entity``'s type finds wrong (key values)."""
    schema = _load(f"sdm-{entity['type']}-schema.json")
    validator = Draft202012Validator(schema, registry=SDM_REGISTRY,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(entity)]


def key_values_of(entity: dict[str, Any]) -> dict[str, Any]:
    """A normalized NGSI-LD entity as key values; AssertionError if it is not normalized."""
    flat: dict[str, Any] = {}
    for name, value in entity.items():
        if name in ("id", "type", "@context"):
            flat[name] = value
            continue
        assert isinstance(value, dict), (name, value)
        assert value["type"] in ("Property", "GeoProperty", "Relationship"), (name, value)
        assert ("object" if value["type"] == "Relationship" else "value") in value, name
        inner = value.get("value", value.get("object"))
        # A JSON-LD typed value ({"@type": "DateTime", "@value": ...}) is its lexical value.
        flat[name] = inner["@value"] if isinstance(inner, dict) and "@value" in inner else inner
    return flat


#: Details the operator gives, by (gateway, device).
PLACES: dict[tuple[str, str], dict[str, Any]] = {
    ("gw-parks", "P-gare"): {
        "name": "PARKING DE LA GARE", "longitude": 5.929671, "latitude": 43.128462,
        "address": "Place de l'Europe, 83000 Toulon", "national_id": "83137-P-001",
        "insee": "83137", "users": "tous", "free": False, "max_height": "190",
        "siret": "21830137600016", "disabled_spaces": 4, "structure": "ouvrage"},
    ("gw-parks", "P-port"): {
        "longitude": 5.9341, "latitude": 43.1203, "national_id": "83137-P-002",
        "insee": "83137", "users": "abonnés", "free": True, "max_height": "N/A",
        "siret": "21830137600016", "url": "https://example.org/port"},
    ("gw-env", "level-1"): {"longitude": 0.54, "latitude": 49.52, "name": "Seine à Caudebec"},
    ("gw-env", "flow-1"): {"longitude": 0.55, "latitude": 49.53},
    ("gw-env", "air-1"): {"longitude": 0.56, "latitude": 49.54,
                          "address": "Rue du Port, 76170 Lillebonne"},
}


@dataclass
class OpenWorld:
    """The hub, and when the live readings were taken."""

    hub: HubProcess
    now_ms: int
    meter_months: list[tuple[str, float, float]]


def _months_back(count: int) -> list[tuple[str, int]]:
    """(YYYY-MM, UTC ms of its 10th at noon, Paris time) for the ``count`` months before now."""
    now = datetime.now(ZoneInfo("Europe/Paris"))
    index = now.year * 12 + now.month - 1
    months = []
    for m in range(index - count, index):
        day = datetime(m // 12, m % 12 + 1, 10, 12, tzinfo=ZoneInfo("Europe/Paris"))
        months.append((day.strftime("%Y-%m"), int(day.astimezone(UTC).timestamp() * 1000)))
    return months


def open_world(hub: HubProcess) -> OpenWorld:
    """Push the world's records through the gateways' push route."""
    now = now_ms() - 5000
    parks, env = (hub.enroll("coast", name)["token"] for name in ("gw-parks", "gw-env"))
    inland = hub.enroll("inland", "gw-inland")["token"]
    push(hub, parks, "readings", [
        *[Reading("P-gare", "parking_occupancy", now - 3_000_000 + k * 1000, float(k % 97))
          for k in range(2000)],
        Reading("P-gare", "parking_occupancy", now, 120.0),
        Reading("P-gare", "parking_capacity", now - 3_000_000, 100.0),
        Reading("P-port", "parking_occupancy", now - 1000, 30.0),
        Reading("P-port", "parking_capacity", now - 2000, 200.0),
        Reading("P-nodetail", "parking_occupancy", now, 3.0),
        Reading("P-nodetail", "parking_capacity", now, 10.0)])
    push(hub, parks, "events", [Event("car_park.full", "P-gare", now)])
    # Three ended months of a meter: read on the 10th and the 11th; the index rises.
    months = _months_back(3)
    meter = []
    index = 1000.0
    month_rises = []
    for month, ts in months:
        start = index
        meter += [Reading("meter-1", "active_energy_import", ts, index),
                  Reading("meter-1", "active_energy_import", ts + 86_400_000, index + 40.5),
                  Reading("meter-1", "active_energy_import_1", ts, 99.0)]
        index += 40.5
        month_rises.append((month, start, index))
        index += 100.0  # used between the 11th and the next month's 10th
    push(hub, env, "readings", [
        Reading("level-1", "water_level", now - 60_000, 1.5),
        Reading("level-1", "water_level", now - 1000, 1.234),
        Reading("level-1", "distance", now - 1000, 2.766),
        Reading("flow-1", "flow_rate", now - 2000, 12.5),
        Reading("air-1", "co2", now - 3000, 612.0),
        Reading("air-1", "pm2_5", now - 3000, 8.0),
        Reading("air-1", "pm10", now - 3000, 14.0),
        Reading("air-1", "temperature", now - 3000, 18.4),
        Reading("air-1", "humidity", now - 3000, 61.5),
        Reading("room-1", "temperature", now - 3000, 21.0),  # no air marker: not published
        *meter])
    push(hub, inland, "readings", [Reading("P-inland", "parking_occupancy", now, 5.0),
                                   Reading("P-inland", "parking_capacity", now, 10.0)])
    with hub.operator("coast") as client:
        for (gateway, device), fields in PLACES.items():
            answer = client.put(f"/v1/open-data/places/{gateway}/{device}", json=fields)
            assert answer.status_code == 200, answer.text
    return OpenWorld(hub, now, month_rises)
