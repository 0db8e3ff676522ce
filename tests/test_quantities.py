"""The quantity vocabulary: names with qualifiers, and rounding for display."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.quantities import QUANTITIES, lookup_quantity, rounded, suggest_quantity


@pytest.mark.parametrize(
    ("name", "base"),
    [("voltage", "voltage"), ("voltage_l1", "voltage"), ("voltage_l1_l2", "voltage"),
     ("current_n", "current"), ("pulse_count_3", "pulse_count"),
     ("active_energy_import_l2", "active_energy_import"), ("voltage_thd_l3", "voltage_thd")],
)
def test_qualified_names_resolve_to_their_base(name: str, base: str) -> None:
    spec = lookup_quantity(name)
    assert spec is not None
    assert spec.name == base


@pytest.mark.parametrize("name", ["volts", "voltage_l4", "pulse_count_17", "voltage_", ""])
def test_names_outside_the_vocabulary_are_unknown(name: str) -> None:
    assert lookup_quantity(name) is None


def test_a_typo_gets_a_suggestion() -> None:
    assert suggest_quantity("active_enrgy_import") == "active_energy_import"


def test_rounding_follows_the_resolution() -> None:
    assert rounded("voltage", 230.76486206054688) == 230.8
    assert rounded("active_energy_import", 12345.67891) == 12345.679
    assert rounded("pulse_count_1", 41.0) == 41.0
    assert rounded("voltage", math.nan) is None
    assert rounded("voltage", math.inf) is None


@given(name=st.sampled_from(sorted(QUANTITIES)), value=st.floats(-1e9, 1e9))
def test_rounding_never_moves_a_value_by_more_than_half_the_resolution(
    name: str, value: float
) -> None:
    shown = rounded(name, value)
    assert shown is not None
    assert abs(shown - value) <= QUANTITIES[name].resolution / 2 * 1.0001 + 1e-9
