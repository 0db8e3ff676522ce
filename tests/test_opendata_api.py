"""Open data over real HTTP, on SQLite and PostgreSQL: opt-in per dataset, the national car-park
file (Frictionless), NGSI-LD entities (Smart Data Models' schemas), the DCAT-AP catalogue,
monthly energy, caching headers. Records come through the gateways' push route
(tests/helpers/opendata.py tells the world)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from edge_agent.records import Reading, now_ms
from sync_server import admin
from sync_server.opendata.caching import LIVE_MAX_AGE_S
from sync_server.opendata.datasets import published_datasets
from sync_server.opendata.dcat import LICENCE
from sync_server.opendata.ngsi import iso
from tests.helpers.field import push
from tests.helpers.hub import HubProcess
from tests.helpers.opendata import OpenWorld, key_values_of, open_world, sdm_errors, table_report

NGSI = "/ngsi-ld/v1/entities"
ALL = ("car-parks", "car-parks-live", "water", "air-quality", "energy-monthly", "services")


@pytest.fixture(scope="module")
def world(hub: HubProcess) -> OpenWorld:
    return open_world(hub)


@pytest.fixture(scope="module")
def public(world: OpenWorld) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.hub.url, timeout=30) as client:
        yield client


def _publish(world: OpenWorld, *names: str, territory: str = "coast") -> None:
    with world.hub.operator(territory) as client:
        for name in names:
            answer = client.put(f"/v1/open-data/{name}")
            assert answer.status_code == 200, answer.text


def _unpublish(world: OpenWorld, *names: str) -> None:
    with world.hub.operator("coast") as client:
        for name in names:
            assert client.delete(f"/v1/open-data/{name}").status_code == 200


def _entities(public: httpx.Client, entity_type: str, **params: str) -> list[dict[str, Any]]:
    answer = public.get(NGSI, params={"type": entity_type, **params},
                        headers={"NGSILD-Tenant": "coast"})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_nothing_is_public_until_an_operator_publishes_it(world: OpenWorld,
                                                          public: httpx.Client) -> None:
    _unpublish(world, *ALL)
    paths = ["/v1/open/{t}/catalog.jsonld", "/v1/open/{t}/car-parks.csv",
             "/v1/open/{t}/energy-monthly.csv"]
    for path in paths:
        unpublished = public.get(path.format(t="coast"))
        unknown = public.get(path.format(t="atlantis"))
        assert unpublished.status_code == unknown.status_code == 404
        assert unpublished.content == unknown.content
        assert unpublished.json()["error"] == "not_found"
    unpublished = public.get(NGSI, params={"type": "OffStreetParking"},
                             headers={"NGSILD-Tenant": "coast"})
    unknown = public.get(NGSI, params={"type": "OffStreetParking"},
                         headers={"NGSILD-Tenant": "atlantis"})
    assert unpublished.status_code == unknown.status_code == 404
    assert unpublished.content == unknown.content
    assert unpublished.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


def test_the_car_park_file_follows_the_national_schema(world: OpenWorld,
                                                       public: httpx.Client) -> None:
    _publish(world, "car-parks")
    answer = public.get("/v1/open/coast/car-parks.csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    report = table_report(answer.content)
    assert report.valid, report.flatten(["rowNumber", "fieldName", "note"])
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["id"], r["nom"], r["nb_places"], r["gratuit"], r["type_usagers"])
            for r in rows] == [("83137-P-001", "PARKING DE LA GARE", "100", "false", "tous"),
                               ("83137-P-002", "P-port", "200", "true", "abonnés")]
    assert (rows[0]["Xlong"], rows[0]["Ylat"], rows[0]["nb_pmr"]) == ("5.929671", "43.128462",
                                                                      "4")
    assert rows[1]["tarif_1h"] == rows[1]["nb_pmr"] == ""  # what the hub does not know


def test_operators_see_what_keeps_a_car_park_out_of_the_file(world: OpenWorld) -> None:
    with world.hub.operator("coast") as client:
        parks = {p["car_park"]: p for p in client.get("/v1/open-data/car-parks").json()[
            "car_parks"]}
    assert parks["P-gare"]["missing"] == []
    assert parks["P-nodetail"]["missing"] == ["national_id", "insee", "users", "free",
                                              "max_height", "siret", "longitude", "latitude"]


def test_live_car_parks_are_valid_off_street_parking_entities(world: OpenWorld,
                                                              public: httpx.Client) -> None:
    _publish(world, "car-parks-live")
    normalized = _entities(public, "OffStreetParking")
    key_values = _entities(public, "OffStreetParking", options="keyValues")
    assert [e["id"] for e in normalized] == [
        "urn:ngsi-ld:OffStreetParking:gw-parks:P-gare",
        "urn:ngsi-ld:OffStreetParking:gw-parks:P-port"]  # P-nodetail: no location
    for entity in normalized:
        assert sdm_errors(key_values_of(entity)) == []
    for entity in key_values:
        assert sdm_errors(entity) == []
    gare = key_values[0]
    assert (gare["totalSpotNumber"], gare["availableSpotNumber"], gare["occupiedSpotNumber"],
            gare["occupancy"]) == (100, 0, 120, 1.0)
    assert gare["location"] == {"type": "Point", "coordinates": [5.929671, 43.128462]}
    port = normalized[1]
    assert port["availableSpotNumber"] == {"type": "Property", "value": 170,
                                           "observedAt": iso(world.now_ms - 1000)}
    assert port["occupancy"]["value"] == 0.15
    assert port["location"]["type"] == "GeoProperty"


def test_json_ld_carries_the_context_and_json_links_it(world: OpenWorld,
                                                       public: httpx.Client) -> None:
    _publish(world, "car-parks-live")
    plain = public.get(NGSI, params={"type": "OffStreetParking"},
                       headers={"NGSILD-Tenant": "coast", "Accept": "application/json"})
    assert plain.headers["content-type"] == "application/json"
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in plain.headers["link"]
    assert "dataModel.Parking" in plain.headers["link"]
    assert all("@context" not in e for e in plain.json())
    linked = public.get(NGSI, params={"type": "OffStreetParking"},
                        headers={"NGSILD-Tenant": "coast", "Accept": "application/ld+json"})
    assert linked.headers["content-type"] == "application/ld+json"
    assert "link" not in linked.headers
    assert all(e["@context"][-1].startswith("https://uri.etsi.org/ngsi-ld/")
               for e in linked.json())
    assert plain.headers["ngsild-tenant"] == "coast"


def test_one_entity_by_id_and_paging(world: OpenWorld, public: httpx.Client) -> None:
    _publish(world, "car-parks-live")
    urn = "urn:ngsi-ld:OffStreetParking:gw-parks:P-port"
    one = public.get(f"{NGSI}/{urn}", headers={"NGSILD-Tenant": "coast"})
    assert one.status_code == 200, one.text
    assert one.json()["id"] == urn
    assert [e["id"] for e in _entities(public, "OffStreetParking", id=urn)] == [urn]
    paged = public.get(NGSI, params={"type": "OffStreetParking", "limit": "1", "offset": "1",
                                     "count": "true"}, headers={"NGSILD-Tenant": "coast"})
    assert [e["id"] for e in paged.json()] == [urn]
    assert paged.headers["ngsild-results-count"] == "2"
    other = public.get(f"{NGSI}/{urn}", headers={"NGSILD-Tenant": "inland"})
    missing = public.get(f"{NGSI}/urn:ngsi-ld:OffStreetParking:gw-parks:P-nodetail",
                         headers={"NGSILD-Tenant": "coast"})
    assert (other.status_code, missing.status_code) == (404, 404)


def test_water_and_air_sensors_are_valid_observations(world: OpenWorld,
                                                      public: httpx.Client) -> None:
    _publish(world, "water", "air-quality")
    water = _entities(public, "WaterObserved", options="keyValues")
    assert [(e["id"], e.get("waterLevel"), e.get("flow")) for e in water] == [
        ("urn:ngsi-ld:WaterObserved:gw-env:flow-1", None, 12.5),
        ("urn:ngsi-ld:WaterObserved:gw-env:level-1", 1.234, None)]
    air = _entities(public, "AirQualityObserved")
    assert [e["id"] for e in air] == ["urn:ngsi-ld:AirQualityObserved:gw-env:air-1"]
    assert air[0]["co2"] == {"type": "Property", "value": 612.0, "unitCode": "59",
                             "observedAt": iso(world.now_ms - 3000)}
    assert air[0]["relativeHumidity"]["value"] == 0.615
    for entity in water:
        assert sdm_errors(entity) == []
    for entity in [*air, *_entities(public, "WaterObserved")]:
        assert sdm_errors(key_values_of(entity)) == []
    assert sdm_errors(_entities(public, "AirQualityObserved", options="keyValues")[0]) == []


def test_monthly_energy_per_site(world: OpenWorld, public: httpx.Client) -> None:
    _publish(world, "energy-monthly")
    answer = public.get("/v1/open/coast/energy-monthly.csv")
    assert answer.status_code == 200, answer.text
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    # The first month read counts its own rise only (40.5 kWh); the next ones add the 100 kWh
    # used between two months' readings. Per-tariff indexes (``_1``) are not added again.
    (first, _, _), *later = world.meter_months
    assert [(r["site"], r["month"], r["kwh"], r["meters"]) for r in rows] == [
        ("coast-site", first, "40.500", "1"),
        *[("coast-site", month, "140.500", "1") for month, _, _ in later]]


def test_the_catalogue_lists_every_published_dataset(world: OpenWorld,
                                                     public: httpx.Client) -> None:
    _publish(world, *ALL)
    answer = public.get("/v1/open/coast/catalog.jsonld")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/ld+json"
    catalog = answer.json()
    assert catalog["@type"] == "dcat:Catalog"
    assert catalog["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
    found = {d["dct:identifier"]: d for d in catalog["dcat:dataset"]}
    assert set(found) == {f"coast/{name}" for name in ALL}
    for dataset in found.values():
        assert dataset["dct:license"]["@id"] == LICENCE
        assert dataset["dct:accrualPeriodicity"]["@id"].startswith(
            "http://publications.europa.eu/resource/authority/frequency/")
        for distribution in dataset["dcat:distribution"]:
            assert distribution["dcat:mediaType"]["@id"].startswith(
                "http://www.iana.org/assignments/media-types/")
    car_parks = found["coast/car-parks"]["dcat:distribution"][0]
    assert car_parks["dcat:downloadURL"]["@id"] == f"{world.hub.url}/v1/open/coast/car-parks.csv"
    assert public.get(car_parks["dcat:downloadURL"]["@id"]).status_code == 200
    services = found["coast/services"]["dcat:distribution"][0]
    assert "dcat:downloadURL" not in services  # it needs ?month=
    assert public.get(services["dcat:accessURL"]["@id"],
                      params={"month": world.meter_months[0][0]}).status_code == 200
    live = found["coast/car-parks-live"]["dcat:distribution"]
    assert "NGSILD-Tenant: coast" in live[0]["dct:description"]
    assert live[1]["dcat:accessURL"]["@id"].endswith("options=keyValues")
    _unpublish(world, "energy-monthly")
    assert "coast/energy-monthly" not in {
        d["dct:identifier"] for d in public.get("/v1/open/coast/catalog.jsonld").json()[
            "dcat:dataset"]}


def test_etags_and_cache_control(world: OpenWorld, public: httpx.Client) -> None:
    _publish(world, "car-parks", "car-parks-live")
    first = public.get("/v1/open/coast/car-parks.csv")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=3600"
    again = public.get("/v1/open/coast/car-parks.csv", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    stale = public.get("/v1/open/coast/car-parks.csv", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200
    live = public.get(NGSI, params={"type": "OffStreetParking"},
                      headers={"NGSILD-Tenant": "coast"})
    assert live.headers["cache-control"] == f"public, max-age={LIVE_MAX_AGE_S}"
    assert LIVE_MAX_AGE_S <= 60
    revalidated = public.get(NGSI, params={"type": "OffStreetParking"},
                             headers={"NGSILD-Tenant": "coast",
                                      "If-None-Match": f'W/{live.headers["etag"]}'})
    assert revalidated.status_code == 304
    assert "NGSILD-Tenant" in live.headers["vary"]


_PROBLEM = "https://uri.etsi.org/ngsi-ld/errors/"


_COAST = {"NGSILD-Tenant": "coast"}


@pytest.mark.parametrize(("params", "headers", "status", "problem"), [
    ({"type": "OffStreetParking"}, {}, 400, "BadRequestData"),  # no tenant
    ({"type": "OffStreetParking"}, {"NGSILD-Tenant": "x' OR '1'='1"}, 404, "ResourceNotFound"),
    ({"type": "OffStreetParking"}, {"NGSILD-Tenant": "c" * 5000}, 404, "ResourceNotFound"),
    ({"type": "Offstreet'; DROP TABLE readings; --"}, _COAST, 400, "BadRequestData"),
    ({}, _COAST, 400, "BadRequestData"),  # no type
    ({"type": "Vehicle"}, _COAST, 404, "ResourceNotFound"),
    ({"type": "OffStreetParking,WaterObserved"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "limit": "-1"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "limit": "9" * 30}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "offset": "1e3"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "offset": "\u00b2"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "limit": "1" * 5000}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "q": "availableSpotNumber>0"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "options": "sysAttrs"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "count": "yes"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking", "id": "not a uri"}, _COAST, 400, "BadRequestData"),
    ({"type": "OffStreetParking"}, {**_COAST, "Accept": "text/html"}, 406, "InvalidRequest"),
])
def test_hostile_ngsi_queries_get_problem_details(
    world: OpenWorld, public: httpx.Client, params: dict[str, str], headers: dict[str, str],
    status: int, problem: str,
) -> None:
    _publish(world, "car-parks-live")
    answer = public.get(NGSI, params=params, headers=headers)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["type"] == _PROBLEM + problem
    assert set(body) == {"type", "title", "detail"}
    assert body["detail"]
    assert _entities(public, "OffStreetParking")  # nothing was harmed


@pytest.mark.parametrize("entity_id", ["no-scheme", "urn:ngsi-ld:OffStreetParking:x",
                                       "urn:ngsi-ld:OffStreetParking:gw-parks:%27%20OR%201=1"])
def test_hostile_entity_ids_get_problem_details(world: OpenWorld, public: httpx.Client,
                                                entity_id: str) -> None:
    _publish(world, "car-parks-live")
    answer = public.get(f"{NGSI}/{entity_id}", headers={"NGSILD-Tenant": "coast"})
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["type"].startswith(_PROBLEM)


def test_operators_publish_only_their_own_territory(world: OpenWorld,
                                                    public: httpx.Client) -> None:
    with world.hub.operator("inland") as inland:
        listed = inland.get("/v1/open-data").json()
        assert listed["territory"] == "inland"
        assert {d["dataset"] for d in listed["datasets"]} == set(ALL)
        unknown = inland.put("/v1/open-data/everything")
        assert (unknown.status_code, unknown.json()["error"]) == (400, "unknown_dataset")
        elsewhere = inland.put("/v1/open-data/places/gw-parks/P-gare", json={"latitude": 1})
        nowhere = inland.put("/v1/open-data/places/gw-none/P-gare", json={"latitude": 1})
        assert elsewhere.status_code == nowhere.status_code == 404
        assert elsewhere.content == nowhere.content
    anonymous = public.put("/v1/open-data/car-parks")
    assert anonymous.status_code == 401


@pytest.mark.parametrize(("fields", "wrong"), [
    ({"latitude": 91}, "latitude"),
    ({"national_id": "P-001"}, "national_id"),
    ({"siret": "21830137600012"}, "siret"),  # check digit
    ({"users": "everyone"}, "users"),
    ({"max_height": "2m"}, "max_height"),
    ({"colour": "red"}, "colour"),
    ({"url": "javascript:alert(1)"}, "url"),
])
def test_bad_place_details_are_refused_field_by_field(world: OpenWorld, fields: dict[str, Any],
                                                      wrong: str) -> None:
    with world.hub.operator("coast") as client:
        answer = client.put("/v1/open-data/places/gw-parks/P-gare", json=fields)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_place"
    assert answer.json()["detail"].startswith(wrong)


def test_the_dashboard_lists_what_a_territory_publishes(world: OpenWorld,
                                                        public: httpx.Client) -> None:
    _unpublish(world, *ALL)
    _publish(world, "car-parks", "air-quality")
    with world.hub.engine.connect() as conn:
        territory = admin.territory_id(conn, "coast")
        listed = published_datasets(conn, territory, "coast", world.hub.url)
        assert published_datasets(conn, admin.territory_id(conn, "inland"), "inland",
                                  world.hub.url) == []
    assert [(d["name"], d["tenant"]) for d in listed] == [
        ("catalog", ""), ("car-parks", ""), ("air-quality", "coast")]
    for entry in listed:
        headers = {"Accept": entry["media_type"]}
        if entry["tenant"]:
            headers["NGSILD-Tenant"] = entry["tenant"]
        answer = public.get(entry["url"], headers=headers)
        assert answer.status_code == 200, (entry, answer.text)
        assert answer.headers["content-type"].startswith(entry["media_type"])


def test_live_data_is_read_at_each_request(world: OpenWorld, public: httpx.Client) -> None:
    """No copy at the hub: a count pushed now is in the next answer, with a new ETag."""
    _publish(world, "car-parks-live")
    urn = "urn:ngsi-ld:OffStreetParking:gw-parks:P-port"
    before = public.get(f"{NGSI}/{urn}", headers={"NGSILD-Tenant": "coast"})
    token = world.hub.enroll("coast", "gw-late")["token"]
    with world.hub.operator("coast") as client:
        assert client.put("/v1/open-data/places/gw-late/P-late",
                          json={"longitude": 5.9, "latitude": 43.1}).status_code == 200
    push(world.hub, token, "readings", [Reading("P-late", "parking_capacity", now_ms(), 50.0),
                                        Reading("P-late", "parking_occupancy", now_ms(), 8.0)])
    late = _entities(public, "OffStreetParking", options="keyValues",
                     id="urn:ngsi-ld:OffStreetParking:gw-late:P-late")
    assert [(e["availableSpotNumber"], e["occupancy"]) for e in late] == [(42, 0.16)]
    after = public.get(f"{NGSI}/{urn}", headers={"NGSILD-Tenant": "coast",
                                                 "If-None-Match": before.headers["etag"]})
    assert after.status_code == 304  # P-port itself did not change


@pytest.mark.parametrize("territory", ["coast' OR '1'='1", "..%2Fcoast", "COAST", "c" * 128])
def test_hostile_territory_names_are_not_found(world: OpenWorld, public: httpx.Client,
                                               territory: str) -> None:
    _publish(world, "car-parks")
    answer = public.get(f"/v1/open/{territory}/car-parks.csv")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found"  # a path that routes nowhere says so too


def test_a_territory_name_with_nul_is_refused_before_routing(world: OpenWorld,
                                                             public: httpx.Client) -> None:
    _publish(world, "car-parks")
    answer = public.get("/v1/open/coast%00/car-parks.csv")
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(("gateway", "device"), [("gw-parks", "P%00gare"), ("gw%00", "P-gare"),
                                                 ("gw-parks", "P%07bell")])
def test_control_characters_in_place_names_are_refused(world: OpenWorld, gateway: str,
                                                       device: str) -> None:
    with world.hub.operator("coast") as client:
        answer = client.put(f"/v1/open-data/places/{gateway}/{device}", json={"latitude": 1})
    assert answer.status_code in (400, 404), answer.text
    assert set(answer.json()) == {"error", "detail"}
