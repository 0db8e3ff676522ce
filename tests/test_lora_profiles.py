"""LoRa sensor profiles: the shipped files load and say what they measure, broken files give
errors an installer can act on, the object map, and which of bytes or object is decoded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.codecs.lora_payload import DecodedValue
from edge_agent.errors import CodecError, ProfileError
from edge_agent.profiles import (
    PROFILE_DIR,
    LoraProfile,
    available_lora_profiles,
    available_profiles,
    available_reader_profiles,
    is_lora_profile,
    load_lora_profile,
    load_lora_profile_file,
    load_profile,
    lora_profile_json_schema,
)
from edge_agent.quantities import lookup_quantity
from tests.test_profiles import Broken

BROKEN = Path(__file__).parent / "data" / "broken_lora_profiles"
README = PROFILE_DIR / "README.md"

REQUIRED = (
    "dragino-ldds75", "milesight-em500-udl", "milesight-em310-udl", "milesight-am307",
    "milesight-am319", "elsys-ers-co2", "bosch-tps110", "nwave-nps405", "milesight-em300-di",
    "milesight-ws301", "dragino-lds02",
)


def test_required_lora_profiles_are_shipped() -> None:
    assert set(available_lora_profiles()) == set(REQUIRED)


def test_lora_profiles_are_neither_modbus_devices_nor_readers() -> None:
    lora = set(available_lora_profiles())
    assert not lora & set(available_profiles())
    assert not lora & set(available_reader_profiles())
    assert all(is_lora_profile(PROFILE_DIR / f"{pid}.yaml") for pid in lora)


@pytest.mark.parametrize("profile_id", available_lora_profiles())
def test_shipped_lora_profile_loads_and_declares_interval_and_battery(profile_id: str) -> None:
    profile = load_lora_profile(profile_id)
    assert profile.id == profile_id
    assert profile.category == "lora_sensor"
    assert profile.uplink_interval_s >= 600
    assert profile.quantities()
    for name in profile.quantities():
        assert lookup_quantity(name) is not None
    if profile.battery_low is not None:
        assert profile.battery_low.quantity in profile.quantities()
    source = (PROFILE_DIR / f"{profile_id}.yaml").read_text(encoding="utf-8")
    assert source.startswith("# Source:"), "say where the layout comes from"
    assert "uplink_interval_s" in source
    assert "battery_low" in source


def test_battery_free_devices_say_so() -> None:
    assert load_lora_profile("milesight-am319").battery_low is None
    assert load_lora_profile("bosch-tps110").battery_low is None


def test_a_loaded_profile_is_kept_compiled() -> None:
    assert load_lora_profile("milesight-am319") is load_lora_profile("milesight-am319")


def test_quantities_are_listed_once_in_declaration_order() -> None:
    assert load_lora_profile("nwave-nps405").quantities() == [
        "spot_occupied", "previous_state_duration", "battery_voltage", "temperature"]


def test_unknown_lora_profile_suggests_the_closest() -> None:
    with pytest.raises(ProfileError, match="did you mean 'dragino-ldds75'"):
        load_lora_profile("dragino-ldds57")


def test_a_modbus_id_is_not_a_lora_profile() -> None:
    with pytest.raises(ProfileError, match="'eastron-sdm120' is not a LoRa sensor profile"):
        load_lora_profile("eastron-sdm120")


def test_a_lora_id_is_not_a_modbus_device() -> None:
    with pytest.raises(ProfileError, match="is a LoRaWAN sensor, not a Modbus device; try "
                                           "`edge-agent lora decode --profile dragino-ldds75`"):
        load_profile("dragino-ldds75")


def test_a_site_profile_overrides_a_shipped_one(tmp_path: Path) -> None:
    shipped = (PROFILE_DIR / "dragino-ldds75.yaml").read_text(encoding="utf-8")
    site = shipped.replace("uplink_interval_s: 1200", "uplink_interval_s: 300")
    (tmp_path / "dragino-ldds75.yaml").write_text(site, encoding="utf-8")
    assert load_lora_profile("dragino-ldds75", extra_dirs=[tmp_path]).uplink_interval_s == 300


def test_json_schema_describes_a_lora_profile() -> None:
    schema = json.loads(lora_profile_json_schema())
    assert {"id", "uplink_interval_s", "battery_low", "ports", "object"} <= set(
        schema["properties"])
    assert {"id", "category", "uplink_interval_s", "battery_low"} <= set(schema["required"])


# --- broken profiles ------------------------------------------------------------------------


BROKEN_CASES = [
    Broken("unknown-field", ("unknown-field.yaml:11", "ports.2.fields.distance.scael",
                             "did you mean 'scale'")),
    Broken("unknown-quantity", ("unknown-quantity.yaml:11", "ports.2.fields.distanse",
                                "did you mean 'distance'")),
    Broken("wrong-unit", ("wrong-unit.yaml:16", "ports.85.channels.1.values.distance",
                          "not 'mm'", "set unit: m and a scale")),
    Broken("bool-not-a-bit", ("bool-not-a-bit.yaml:11", "ports.10.fields.door_open",
                              "read one bit", "enum: {0: 0, 1: 1}")),
    Broken("mask-too-wide", ("mask-too-wide.yaml:11", "ports.1.fields.spot_occupied",
                             "mask 0x100 or shift 8 does not fit in a 8-bit uint8")),
    Broken("value-past-channel", ("value-past-channel.yaml:15",
                                  "ports.85.channels.0.values.temperature.offset",
                                  "past the record's length 2", "check offset and length")),
    Broken("short-min-length", ("short-min-length.yaml:10", "ports.2.min_length",
                                "set min_length: 4")),
    Broken("milesight-without-channel", ("milesight-without-channel.yaml:11",
                                         "ports.85.channels.0", "needs channel:")),
    Broken("elsys-with-channel", ("elsys-with-channel.yaml:11", "ports.5.channels.0.channel",
                                  "remove channel:")),
    Broken("duplicate-record", ("duplicate-record.yaml:12", "ports.5.channels.1.type",
                                "declared twice; keep one")),
    Broken("bad-fport", ("bad-fport.yaml:8", "ports.0", "use 1 to 223")),
    Broken("battery-not-produced", ("battery-not-produced.yaml:6", "battery_low.quantity",
                                    "no layout produces", "set battery_low: null")),
    Broken("no-layouts", ("no-layouts.yaml", "needs ports", "or object")),
    Broken("float-with-mask", ("float-with-mask.yaml:15", "values.water_volume",
                               "a float32 takes no mask", "use an integer type")),
    Broken("overlapping-segments", ("overlapping-segments.yaml:11",
                                    "fields.previous_state_duration",
                                    "segments 0..89 and 80..119 overlap")),
    Broken("fixed-with-channels", ("fixed-with-channels.yaml:10", "ports.2.channels",
                                   "set layout: milesight or elsys")),
    Broken("channels-with-fields", ("channels-with-fields.yaml:10", "ports.85.min_length",
                                    "for fixed layouts only")),
    Broken("missing-interval", ("missing-interval.yaml", "uplink_interval_s",
                                "Field required")),
    Broken("id-mismatch", ("id-mismatch.yaml:1", "must match the file name 'id-mismatch'")),
    Broken("bad-object-path", ("bad-object-path.yaml:8", "object.temperature",
                               "has an empty part; write a.b.c")),
    Broken("unknown-layout", ("unknown-layout.yaml:9", "ports.85.layout",
                              "'fixed', 'milesight' or 'elsys'")),
]


@pytest.mark.parametrize("case", BROKEN_CASES, ids=lambda case: case.name)
def test_broken_lora_profile_error_names_file_line_field_and_fix(case: Broken) -> None:
    path = BROKEN / f"{case.name}.yaml"
    with pytest.raises(ProfileError) as caught:
        load_lora_profile_file(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in case.says:
        assert fragment in message


def test_every_broken_lora_file_is_exercised() -> None:
    assert {path.stem for path in BROKEN.glob("*.yaml")} == {case.name for case in BROKEN_CASES}


# --- object maps and the decode rule ---------------------------------------------------------

HEAD = """id: {id}
manufacturer: Test
model: T1
category: lora_sensor
uplink_interval_s: 600
battery_low: {{quantity: battery_voltage, level: 3.0}}
"""

OBJECT_MAP = """object:
  distance: {path: Distance_mm, scale: 0.001, unit: m}
  battery_voltage: {path: status.Bat, unit: V}
  door_open: {path: magnet_status, enum: {open: 1, close: 0}, unit: bool}
"""

PORT_2 = """ports:
  2:
    layout: fixed
    fields:
      battery_voltage: {offset: 0, type: uint16, mask: 0x3FFF, scale: 0.001, unit: V}
"""


def site_profile(tmp_path: Path, profile_id: str, body: str) -> LoraProfile:
    path = tmp_path / f"{profile_id}.yaml"
    path.write_text(HEAD.format(id=profile_id) + body, encoding="utf-8")
    return load_lora_profile_file(path)


def test_object_map_takes_values_by_path_with_scale_and_words(tmp_path: Path) -> None:
    profile = site_profile(tmp_path, "by-object", OBJECT_MAP)
    decoded = {"Distance_mm": 2025.0, "status": {"Bat": 3.338}, "magnet_status": "open"}
    values = profile.decode(7, b"", decoded)
    assert {v.quantity: v.value for v in values} == pytest.approx(
        {"distance": 2.025, "battery_voltage": 3.338, "door_open": 1})
    assert profile.quantities() == ["distance", "battery_voltage", "door_open"]


def test_object_fields_that_are_absent_or_null_are_skipped(tmp_path: Path) -> None:
    profile = site_profile(tmp_path, "by-object", OBJECT_MAP)
    values = profile.decode(7, b"", {"Distance_mm": None, "status": "n/a"})
    assert values == []


@pytest.mark.parametrize(("decoded", "message"), [
    ({"Distance_mm": "2025 mm"}, "object field Distance_mm: '2025 mm' is not a number"),
    ({"magnet_status": "ajar"}, "object field magnet_status: 'ajar' is not one of"),
    ({"Distance_mm": [1, 2]}, "is not a number"),
    ([1, 2, 3], "the decoded object is a list, not a mapping"),
])
def test_object_values_that_do_not_fit_are_codec_errors(
        tmp_path: Path, decoded: object, message: str) -> None:
    profile = site_profile(tmp_path, "by-object", OBJECT_MAP)
    with pytest.raises(CodecError, match=message):
        profile.decode(7, b"", decoded)  # type: ignore[arg-type]


@pytest.mark.parametrize(("sent", "value"), [(1.0, 1.0), (0, 0.0), (True, 1.0), (False, 0.0)])
def test_numbers_and_booleans_pass_through_a_field_with_words(
        tmp_path: Path, sent: object, value: float) -> None:
    profile = site_profile(tmp_path, "by-object", OBJECT_MAP)
    assert profile.decode(7, b"", {"magnet_status": sent}) == [DecodedValue("door_open", value)]


def test_an_object_only_profile_needs_chirpstack_to_decode(tmp_path: Path) -> None:
    profile = site_profile(tmp_path, "by-object", OBJECT_MAP)
    with pytest.raises(CodecError, match="no decoded object from ChirpStack; set a codec"):
        profile.decode(7, b"\x01")


def test_bytes_win_where_a_layout_exists_and_the_object_serves_other_ports(
        tmp_path: Path) -> None:
    profile = site_profile(tmp_path, "both", PORT_2 + OBJECT_MAP)
    decoded = {"Distance_mm": 100.0, "status": {"Bat": 9.9}}
    on_layout = profile.decode(2, bytes.fromhex("0D0A"), decoded)
    assert {v.quantity: v.value for v in on_layout} == pytest.approx({"battery_voltage": 3.338})
    elsewhere = profile.decode(3, b"\xff", decoded)
    assert {v.quantity: v.value for v in elsewhere} == pytest.approx(
        {"distance": 0.1, "battery_voltage": 9.9})


# --- README ---------------------------------------------------------------------------------


def test_readme_lists_every_shipped_lora_profile() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## LoRaWAN sensor profiles"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {row.split("`")[1] for row in rows}
    assert set(available_lora_profiles()) <= listed
