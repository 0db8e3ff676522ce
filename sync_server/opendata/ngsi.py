"""Live data as NGSI-LD entities (ETSI GS CIM 009) in the Smart Data Models' vocabulary:
car parks as ``OffStreetParking``, water sensors as ``WaterObserved``, air sensors as
``AirQualityObserved``.

One entity per device, with its latest values (``car_parks`` and ``latest_values``: the same
queries operators read). Every entity needs a location, which only the operator knows
(sync_server/opendata/places.py): a device without one is not published. Values are rendered
normalized (each attribute a ``Property`` with ``observedAt`` and ``unitCode``) or as key
values (attribute: value), the form the Smart Data Models' JSON Schemas describe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection

from edge_agent.quantities import rounded
from sync_server.car_parks import car_parks
from sync_server.opendata.places import Place, places
from sync_server.queries import Scope, latest_values

__all__ = ["CORE_CONTEXT", "ENTITY_TYPES", "Attribute", "Entity", "EntityType", "entities",
           "entity_id", "entity_type_of", "iso", "render"]

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
_PARKING_CONTEXT = ("https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/"
                    "master/context.jsonld")
_ENVIRONMENT_CONTEXT = ("https://raw.githubusercontent.com/smart-data-models/"
                        "dataModel.Environment/master/context.jsonld")


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute: its value, when it was observed, its UN/CEFACT unit code."""

    name: str
    value: Any
    observed_ms: int | None = None
    unit_code: str | None = None
    geo: bool = False


@dataclass(slots=True)
class Entity:
    """An entity before rendering: id, type, attributes in output order."""

    id: str
    type: str
    attributes: list[Attribute] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Measure:
    """A quantity of the hub's vocabulary published as an attribute of an observation."""

    quantity: str
    attribute: str
    unit_code: str | None
    convert: Callable[[float], float | None]


def _non_negative(value: float) -> float | None:
    return value if value >= 0 else None


def _fraction(percent: float) -> float | None:
    return round(percent / 100, 3) if 0 <= percent <= 100 else None


def _any(value: float) -> float | None:
    return value


_WATER = (_Measure("water_level", "waterLevel", "MTR", _non_negative),
          _Measure("flow_rate", "flow", "MQH", _non_negative))
_AIR = (_Measure("co2", "co2", "59", _non_negative),
        _Measure("pm10", "pm10", "GQ", _non_negative),
        _Measure("pm2_5", "pm25", "GQ", _non_negative),
        _Measure("tvoc", "volatileOrganicCompoundsTotal", "GQ", _non_negative),
        _Measure("temperature", "temperature", "CEL", _any),
        _Measure("humidity", "relativeHumidity", None, _fraction),
        _Measure("pressure", "pressure", "A97", _non_negative))
#: An air sensor is a device measuring one of these; its temperature and humidity come along.
_AIR_MARKERS = frozenset({"co2", "pm10", "pm2_5", "tvoc"})


@dataclass(frozen=True, slots=True)
class EntityType:
    """A published entity type: its dataset (the opt-in) and its JSON-LD context."""

    name: str
    dataset: str
    context: str


ENTITY_TYPES: dict[str, EntityType] = {t.name: t for t in (
    EntityType("OffStreetParking", "car-parks-live", _PARKING_CONTEXT),
    EntityType("WaterObserved", "water", _ENVIRONMENT_CONTEXT),
    EntityType("AirQualityObserved", "air-quality", _ENVIRONMENT_CONTEXT),
)}


def entity_id(entity_type: str, gateway: str, device: str) -> str:
    """``urn:ngsi-ld:<type>:<gateway>:<device>``, names percent-encoded (a device name may
    hold any character); unique within a tenant, since gateway names are."""
    return f"urn:ngsi-ld:{entity_type}:{quote(gateway, safe='')}:{quote(device, safe='')}"


def entity_type_of(text: str) -> str | None:
    """The published type of an id shaped as ``entity_id`` makes; None for any other text."""
    parts = text.split(":")
    if len(parts) != 5 or parts[:2] != ["urn", "ngsi-ld"] or parts[2] not in ENTITY_TYPES:
        return None
    return parts[2]


def entities(conn: Connection, territory: int, entity_type: str) -> list[Entity]:
    """Every publishable entity of ``entity_type`` in ``territory``, by id."""
    described = places(conn, territory)
    if entity_type == "OffStreetParking":
        found = _car_parks(conn, territory, described)
    else:
        measures = _WATER if entity_type == "WaterObserved" else _AIR
        markers = (frozenset(m.quantity for m in _WATER) if entity_type == "WaterObserved"
                   else _AIR_MARKERS)
        found = _observations(conn, territory, described, entity_type, measures, markers)
    return sorted(found, key=lambda e: e.id)


def _place_attributes(place: Place, default_name: str) -> list[Attribute]:
    attributes = [Attribute("name", place.get("name") or default_name),
                  Attribute("location", {"type": "Point",
                                         "coordinates": [place["longitude"], place["latitude"]]},
                            geo=True)]
    if place.get("address"):
        attributes.append(Attribute("address", {"streetAddress": place["address"]}))
    return attributes


def _located(described: dict[tuple[str, str], Place], gateway: str, device: str
             ) -> Place | None:
    place = described.get((gateway, device))
    if place is None or place["longitude"] is None or place["latitude"] is None:
        return None
    return place


def _car_parks(conn: Connection, territory: int, described: dict[tuple[str, str], Place]
               ) -> Iterable[Entity]:
    for park in car_parks(conn, Scope(territory)):
        place = _located(described, park["gateway"], park["car_park"])
        if place is None:
            continue
        entity = Entity(entity_id("OffStreetParking", park["gateway"], park["car_park"]),
                        "OffStreetParking", _place_attributes(place, park["car_park"]))
        capacity, occupancy = park["capacity"], park["occupancy"]
        counted = max(filter(None, (park["occupancy_ms"], park["capacity_ms"])), default=None)
        if capacity is not None and capacity >= 0:
            entity.attributes.append(Attribute("totalSpotNumber", capacity,
                                               park["capacity_ms"]))
        if park["free"] is not None:
            entity.attributes.append(Attribute("availableSpotNumber", park["free"], counted))
        if occupancy is not None and occupancy >= 0:
            entity.attributes.append(Attribute("occupiedSpotNumber", occupancy,
                                               park["occupancy_ms"]))
            if capacity:
                entity.attributes.append(Attribute(
                    "occupancy", round(min(1.0, occupancy / capacity), 3), counted))
        if counted is not None:
            entity.attributes.append(Attribute("observationDateTime", iso(counted)))
        yield entity


def _observations(
    conn: Connection, territory: int, described: dict[tuple[str, str], Place],
    entity_type: str, measures: tuple[_Measure, ...], markers: frozenset[str],
) -> Iterable[Entity]:
    values: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for measure in measures:
        for value in latest_values(conn, Scope(territory), gateway=None, device=None,
                                   quantity=measure.quantity):
            values.setdefault((value["gateway"], value["device"]), {})[measure.quantity] = value
    for (gateway, device), latest in values.items():
        place = _located(described, gateway, device)
        if place is None or not markers & latest.keys():
            continue
        attributes = []
        for measure in measures:
            reading = latest.get(measure.quantity)
            number = None if reading is None or reading["value"] is None else rounded(
                measure.quantity, reading["value"])
            converted = None if number is None else measure.convert(number)
            if reading is not None and converted is not None:
                attributes.append(Attribute(measure.attribute, converted, reading["ts_ms"],
                                            measure.unit_code))
        if not attributes:
            continue
        observed = max(a.observed_ms or 0 for a in attributes)
        yield Entity(entity_id(entity_type, gateway, device), entity_type,
                     [*_place_attributes(place, device),
                      Attribute("dateObserved", iso(observed)), *attributes])


def iso(ms: int) -> str:
    """UTC milliseconds as NGSI-LD's DateTime: ``2026-12-03T10:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def render(entity: Entity, *, key_values: bool, context: list[str] | None) -> dict[str, Any]:
    """``entity`` as JSON: key values or normalized, with ``@context`` when given."""
    body: dict[str, Any] = {"id": entity.id, "type": entity.type}
    for attribute in entity.attributes:
        if key_values:
            body[attribute.name] = attribute.value
            continue
        rendered: dict[str, Any] = {"type": "GeoProperty" if attribute.geo else "Property",
                                    "value": attribute.value}
        if attribute.observed_ms is not None:
            rendered["observedAt"] = iso(attribute.observed_ms)
        if attribute.unit_code is not None:
            rendered["unitCode"] = attribute.unit_code
        body[attribute.name] = rendered
    if context is not None:
        body["@context"] = context
    return body
