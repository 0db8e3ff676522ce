"""Device profiles: the shipped files load, their maps match the vendor documents, broken files
give errors an installer can act on, and the README vocabulary cannot drift from the code."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.codecs.modbus_values import ValueType, WordOrder, decode_registers
from edge_agent.errors import ProfileError
from edge_agent.profiles import (
    PROFILE_DIR,
    RegisterKind,
    available_profiles,
    load_profile,
    load_profile_file,
    profile_json_schema,
)
from edge_agent.quantities import QUALIFIERS, QUANTITIES, lookup_quantity

BROKEN = Path(__file__).parent / "data" / "broken_profiles"
README = PROFILE_DIR / "README.md"

REQUIRED = (
    "eastron-sdm120",
    "eastron-sdm630",
    "schneider-iem3155",
    "isma-sfar-4di",
    "waveshare-relay-8ch",
)


def test_required_profiles_are_shipped() -> None:
    assert set(REQUIRED) <= set(available_profiles())


@pytest.mark.parametrize("profile_id", available_profiles())
def test_shipped_profile_loads(profile_id: str) -> None:
    profile = load_profile(profile_id)
    assert profile.id == profile_id
    for name, point in profile.points.items():
        spec = lookup_quantity(name)
        assert spec is not None
        assert point.quantity == name
        assert point.unit == spec.unit


# --- register maps, row by row from reference/modbus.md §3 --------------------------------


@dataclass(frozen=True)
class Row:
    """One documented register: where it is and how it decodes."""

    quantity: str
    address: int
    kind: RegisterKind
    type: ValueType
    word_order: WordOrder = WordOrder.BIG
    scale: float = 1.0


INPUT, HOLDING = RegisterKind.INPUT, RegisterKind.HOLDING
COIL, DISCRETE = RegisterKind.COIL, RegisterKind.DISCRETE_INPUT
F32, U32, I64, BOOL = ValueType.FLOAT32, ValueType.UINT32, ValueType.INT64, ValueType.BOOL

DOCUMENTED: dict[str, list[Row]] = {
    "eastron-sdm120": [
        Row("voltage", 0x0000, INPUT, F32),
        Row("active_power", 0x000C, INPUT, F32),
        Row("frequency", 0x0046, INPUT, F32),
        Row("active_energy_import", 0x0048, INPUT, F32),
        Row("active_energy_total", 0x0156, INPUT, F32),
    ],
    "eastron-sdm630": [
        Row("voltage_l1", 0x0000, INPUT, F32),
        Row("voltage_l3", 0x0004, INPUT, F32),
        Row("current_l1", 0x0006, INPUT, F32),
        Row("active_power_l1", 0x000C, INPUT, F32),
        Row("apparent_power_l1", 0x0012, INPUT, F32),
        Row("reactive_power_l1", 0x0018, INPUT, F32),
        Row("power_factor_l1", 0x001E, INPUT, F32),
        Row("phase_angle_l1", 0x0024, INPUT, F32),
        Row("phase_angle_l3", 0x0028, INPUT, F32),
        Row("voltage", 0x002A, INPUT, F32),
        Row("current", 0x002E, INPUT, F32),
        Row("active_power", 0x0034, INPUT, F32),
        Row("apparent_power", 0x0038, INPUT, F32),
        Row("reactive_power", 0x003C, INPUT, F32),
        Row("power_factor", 0x003E, INPUT, F32),
        Row("phase_angle", 0x0042, INPUT, F32),
        Row("frequency", 0x0046, INPUT, F32),
        Row("active_energy_import", 0x0048, INPUT, F32),
        Row("active_energy_export", 0x004A, INPUT, F32),
        Row("reactive_energy_import", 0x004C, INPUT, F32),
        Row("reactive_energy_export", 0x004E, INPUT, F32),
        Row("apparent_energy", 0x0050, INPUT, F32),
        Row("charge", 0x0052, INPUT, F32),
        Row("active_power_demand", 0x0054, INPUT, F32),
        Row("active_power_demand_max", 0x0056, INPUT, F32),
        Row("voltage_l1_l2", 0x00C8, INPUT, F32),
        Row("voltage_l3_l1", 0x00CC, INPUT, F32),
        Row("current_n", 0x00E0, INPUT, F32),
        Row("voltage_thd_l1", 0x00EA, INPUT, F32),
        Row("current_thd_l1", 0x00F0, INPUT, F32),
        Row("active_energy_total", 0x0156, INPUT, F32),
        Row("reactive_energy_total", 0x0158, INPUT, F32),
        Row("active_energy_import_l1", 0x015A, INPUT, F32),
        Row("active_energy_export_l1", 0x0160, INPUT, F32),
        Row("active_energy_total_l1", 0x0166, INPUT, F32),
        Row("active_energy_total_l3", 0x016A, INPUT, F32),
    ],
    "schneider-iem3155": [
        Row("current_l1", 2999, HOLDING, F32),
        Row("current", 3009, HOLDING, F32),
        Row("voltage_l1_l2", 3019, HOLDING, F32),
        Row("voltage_l1", 3027, HOLDING, F32),
        Row("voltage", 3035, HOLDING, F32),
        Row("active_power_l1", 3053, HOLDING, F32, scale=1000),
        Row("active_power", 3059, HOLDING, F32, scale=1000),
        Row("reactive_power", 3067, HOLDING, F32, scale=1000),
        Row("apparent_power", 3075, HOLDING, F32, scale=1000),
        Row("frequency", 3109, HOLDING, F32),
        Row("active_energy_import", 3203, HOLDING, I64, scale=0.001),
        Row("active_energy_export", 3207, HOLDING, I64, scale=0.001),
        Row("active_energy_import_l1", 45111, HOLDING, F32),
        Row("active_energy_import_l3", 45115, HOLDING, F32),
    ],
    "isma-sfar-4di": [
        Row(f"pulse_count_{n}", 0x34 + 2 * (n - 1), HOLDING, U32, WordOrder.LITTLE)
        for n in range(1, 5)
    ],
    "waveshare-relay-8ch": [
        *(Row(f"relay_state_{n}", n - 1, COIL, BOOL) for n in range(1, 9)),
        *(Row(f"input_state_{n}", n - 1, DISCRETE, BOOL) for n in range(1, 9)),
    ],
}


@pytest.mark.parametrize(
    ("profile_id", "row"),
    [(profile_id, row) for profile_id, rows in DOCUMENTED.items() for row in rows],
    ids=lambda value: value if isinstance(value, str) else value.quantity,
)
def test_point_matches_the_vendor_register_map(profile_id: str, row: Row) -> None:
    point = load_profile(profile_id).points[row.quantity]
    assert (point.address, point.kind, point.type) == (row.address, row.kind, row.type)
    assert point.word_order is row.word_order
    assert not point.byte_swap
    assert point.scale == row.scale


def test_point_sets_are_complete_where_the_device_is_simple() -> None:
    assert set(load_profile("isma-sfar-4di").points) == {f"pulse_count_{n}" for n in range(1, 5)}
    relay = load_profile("waveshare-relay-8ch")
    assert set(relay.points) == {
        f"{base}_{n}" for base in ("relay_state", "input_state") for n in range(1, 9)
    }


@pytest.mark.parametrize(
    ("profile_id", "baudrate", "parity"),
    [
        ("eastron-sdm120", 2400, "N"),
        ("eastron-sdm630", 9600, "N"),
        ("schneider-iem3155", 19200, "E"),
        ("isma-sfar-4di", 19200, "N"),
        ("waveshare-relay-8ch", 9600, "N"),
    ],
)
def test_serial_factory_defaults(profile_id: str, baudrate: int, parity: str) -> None:
    serial = load_profile(profile_id).serial
    assert (serial.baudrate, serial.parity, serial.stopbits) == (baudrate, parity, 1)


def test_sdm630_limits_follow_the_protocol_document() -> None:
    limits = load_profile("eastron-sdm630").limits
    assert limits.max_registers_per_request == 80
    assert limits.even_address
    assert limits.min_silence_ms == 60


def test_iem3155_odd_wire_addresses_are_allowed() -> None:
    profile = load_profile("schneider-iem3155")
    assert not profile.limits.even_address
    assert all(point.kind is HOLDING for point in profile.points.values())


def test_isma_counter_decodes_low_word_first() -> None:
    point = load_profile("isma-sfar-4di").points["pulse_count_1"]
    # 40053 (LSR) = 0x5678, 40054 (MSR) = 0x1234.
    raw = decode_registers([0x5678, 0x1234], point.type, point.word_order)
    assert raw * point.scale == 0x12345678


def test_iem3155_energy_scales_wh_to_kwh() -> None:
    point = load_profile("schneider-iem3155").points["active_energy_import"]
    raw = decode_registers([0, 0, 0x0001, 0xE240], point.type, point.word_order)  # 123456 Wh
    assert raw * point.scale == pytest.approx(123.456)


# --- broken profiles ------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """A broken profile and what its error message must say."""

    name: str
    #: Substrings the message must contain: where, which field, and the fix.
    says: tuple[str, ...]


BROKEN_CASES = [
    Broken("unknown-field", ("unknown-field.yaml:6", "limits.max_register_per_request",
                             "did you mean 'max_registers_per_request'")),
    Broken("unknown-quantity", ("unknown-quantity.yaml:8", "points.voltag_l2",
                                "did you mean 'voltage_l2'")),
    Broken("wrong-unit", ("wrong-unit.yaml:8", "points.active_power", "not 'kW'",
                          "set unit: W and a scale")),
    Broken("bool-register", ("bool-register.yaml:6", "points.relay_state_1",
                             "type 'bool' does not fit a holding point",
                             "registers are numeric types")),
    Broken("numeric-coil", ("numeric-coil.yaml:6", "points.relay_state_1",
                            "type 'uint16' does not fit a coil point",
                            "coils and discrete inputs are type bool")),
    Broken("overlap", ("overlap.yaml:", "points", "voltage and current overlap",
                       "at address 1")),
    Broken("odd-address", ("odd-address.yaml", "even_address", "current")),
    Broken("too-big", ("too-big.yaml", "active_energy_import", "max_registers_per_request")),
    Broken("duplicate-key", ("duplicate-key.yaml", "line 9", "'voltage' appears twice")),
    Broken("invalid-syntax", ("invalid-syntax.yaml", "invalid YAML", "line 6",
                              "expected ',' or '}'")),
    Broken("id-mismatch", ("id-mismatch.yaml", "id 'eastron-sdm120'",
                           "must match the file name 'id-mismatch'")),
    Broken("missing-field", ("missing-field.yaml:8", "points.current.address",
                             "Field required")),
    Broken("not-a-mapping", ("not-a-mapping.yaml", "a profile is a YAML mapping")),
]


@pytest.mark.parametrize("case", BROKEN_CASES, ids=lambda case: case.name)
def test_broken_profile_error_names_file_line_field_and_fix(case: Broken) -> None:
    path = BROKEN / f"{case.name}.yaml"
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in case.says:
        assert fragment in message


def test_every_broken_file_is_exercised() -> None:
    assert {path.stem for path in BROKEN.glob("*.yaml")} == {case.name for case in BROKEN_CASES}


# Profile-wide checks (overlap, even_address, point size) must still point at the offending
# point's line, not at the top of the file.
CULPRIT_CASES = [
    Broken("overlap", ("overlap.yaml:8", "points.current")),
    Broken("odd-address", ("odd-address.yaml:9", "points.current.address")),
    Broken("too-big", ("too-big.yaml:7", "points.active_energy_import")),
]


@pytest.mark.parametrize("case", CULPRIT_CASES, ids=lambda case: case.name)
def test_profile_wide_error_points_at_the_culprit(case: Broken) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile_file(BROKEN / f"{case.name}.yaml")
    for fragment in case.says:
        assert fragment in str(caught.value)


def test_unknown_profile_id_suggests_the_closest() -> None:
    with pytest.raises(ProfileError, match="did you mean 'eastron-sdm630'"):
        load_profile("eastron-sdm63")


def test_json_schema_describes_points_defaults_and_limits() -> None:
    schema = json.loads(profile_json_schema())
    assert {"id", "points", "defaults", "limits", "serial"} <= set(schema["properties"])
    assert {"id", "manufacturer", "model", "category", "points"} <= set(schema["required"])


# --- README vocabulary ----------------------------------------------------------------------


def _table_after(heading: str) -> list[list[str]]:
    """Cells of the first markdown table after ``heading``, without header and backticks."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append([cell.strip().replace("`", "") for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_readme_vocabulary_matches_quantities() -> None:
    rows = _table_after("## The vocabulary")
    documented = {
        name: (unit, float(resolution), {"yes": True, "no": False}[cumulative], meaning)
        for name, unit, resolution, cumulative, meaning in rows
    }
    assert len(documented) == len(rows), "a quantity is listed twice"
    expected = {
        spec.name: (spec.unit, spec.resolution, spec.cumulative, spec.description)
        for spec in QUANTITIES.values()
    }
    assert documented == expected


def test_readme_qualifiers_match_qualifiers() -> None:
    documented: list[str] = []
    for cell, *_ in _table_after("### Qualifiers"):
        if span := re.fullmatch(r"(\d+) to (\d+)", cell):
            documented += [str(n) for n in range(int(span[1]), int(span[2]) + 1)]
        else:
            documented.append(cell)
    assert documented == list(QUALIFIERS)
