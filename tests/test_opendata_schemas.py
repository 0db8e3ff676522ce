"""The validators of the open-data tests, checked on the schemas' own examples: the national
car-park file's valid example passes and its invalid one fails; the Smart Data Models'
examples pass, in both forms, with every remote ``$ref`` resolved offline, and a broken
entity fails. A validator that accepted everything would fail here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable

from tests.helpers.opendata import DATA, SDM_REGISTRY, key_values_of, sdm_errors, table_report

TYPES = ("OffStreetParking", "WaterObserved", "AirQualityObserved", "ParkingSpot")


def _example(entity_type: str, form: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (DATA / f"sdm-{entity_type}-example-{form}.jsonld").read_text(encoding="utf-8"))
    return loaded


def test_the_national_valid_example_passes() -> None:
    report = table_report((DATA / "stationnement-exemple-valide.csv").read_bytes())
    assert report.valid, report.flatten(["rowNumber", "fieldName", "note"])


def test_the_national_invalid_example_fails_on_what_is_wrong() -> None:
    report = table_report((DATA / "stationnement-exemple-invalide.csv").read_bytes())
    assert not report.valid
    assert {(row, field) for row, field in report.flatten(["rowNumber", "fieldName"])} == {
        (2, "id"), (2, "tarif_pmr")}


@pytest.mark.parametrize("entity_type", TYPES)
def test_the_smart_data_models_key_values_examples_pass(entity_type: str) -> None:
    assert sdm_errors(_example(entity_type, "keyvalues")) == []


#: What the published normalized examples get wrong against their own schema (upstream):
#: the air-quality one gives a wind direction of 186 (the schema says -180 to 180) and a
#: fractional total of suspended particles (an integer in the schema).
UPSTREAM_DEFECTS = {"AirQualityObserved": [
    "windDirection: 186 is greater than the maximum of 180",
    "tsp: 73.3 is not of type 'integer'"]}


@pytest.mark.parametrize("entity_type", TYPES)
def test_the_smart_data_models_normalized_examples_pass(entity_type: str) -> None:
    errors = sdm_errors(key_values_of(_example(entity_type, "normalized")))
    assert errors == UPSTREAM_DEFECTS.get(entity_type, [])


def test_a_broken_entity_fails_on_what_is_wrong() -> None:
    broken = {**_example("OffStreetParking", "keyvalues"), "occupancy": 1.5,
              "totalSpotNumber": "many"}
    del broken["location"]
    errors = sdm_errors(broken)
    assert any(e.startswith("occupancy:") for e in errors), errors
    assert any(e.startswith("totalSpotNumber:") for e in errors), errors
    assert any("'location' is a required property" in e for e in errors), errors


def test_a_reference_outside_the_local_files_is_refused() -> None:
    """No network: a schema pointing elsewhere fails to resolve instead of fetching."""
    validator = Draft202012Validator({"$ref": "https://example.org/elsewhere.json"},
                                     registry=SDM_REGISTRY)
    with pytest.raises(Unresolvable):
        validator.validate({})
