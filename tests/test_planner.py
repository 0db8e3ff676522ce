"""The read planner: every point covered, no request over the limit, fewest requests."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.codecs.modbus_values import ValueType
from edge_agent.drivers.modbus.bus import next_slot
from edge_agent.drivers.modbus.planner import ReadRequest, plan_reads, split_at_holes
from edge_agent.profiles import Limits, Point, RegisterKind, load_profile

_TYPES = [ValueType.UINT16, ValueType.FLOAT32, ValueType.INT64]


def _point(address: int, value_type: ValueType = ValueType.FLOAT32,
           kind: RegisterKind = RegisterKind.INPUT, index: int = 0) -> Point:
    if kind.is_bit:
        return Point(quantity=f"relay_state_{index % 16 + 1}", address=address, kind=kind,
                     type=ValueType.BOOL, unit="bool")
    return Point(quantity=f"voltage_{index % 16 + 1}", address=address, kind=kind,
                 type=value_type, unit="V")


@st.composite
def point_sets(draw: st.DrawFn, *, even: bool = False) -> list[Point]:
    """Non-overlapping register points, as a valid profile would have."""
    points, address = [], draw(st.integers(0, 40))
    for index in range(draw(st.integers(1, 30))):
        address += draw(st.integers(0, 40))
        value_type = draw(st.sampled_from(_TYPES))
        if even:
            address += address % 2
        points.append(_point(address, value_type, index=index))
        address += points[-1].count
    return points


limits_strategy = st.builds(
    Limits,
    max_registers_per_request=st.integers(4, 125),
    max_gap_registers=st.integers(0, 60),
    even_address=st.booleans(),
)


def _covered(requests: list[ReadRequest], point: Point) -> bool:
    return any(r.kind == point.kind and r.address <= point.address
               and point.end <= r.address + r.count and point in r.points for r in requests)


def _group_is_valid(points: list[Point], limits: Limits) -> bool:
    """Could one request read ``points`` (sorted) under the gap and size rules?"""
    start, end = points[0].address, points[0].end
    for before_end, point in zip([p.end for p in points], points[1:], strict=False):
        if point.address - max(before_end, end) > limits.max_gap_registers:
            return False
        end = max(end, point.end)
    if limits.even_address:
        start, end = start - start % 2, end + end % 2
    return end - start <= limits.max_registers_per_request


def _fewest_requests(points: list[Point], limits: Limits) -> int:
    """Brute force over contiguous groups of sorted points (dynamic programming)."""
    ordered = sorted(points, key=lambda p: p.address)

    @cache
    def best(i: int) -> int:
        if i == len(ordered):
            return 0
        return min(1 + best(j) for j in range(i + 1, len(ordered) + 1)
                   if _group_is_valid(ordered[i:j], limits))

    return best(0)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), limits=limits_strategy)
def test_plan_covers_every_point_within_limits_with_fewest_requests(
    data: st.DataObject, limits: Limits
) -> None:
    points = data.draw(point_sets(even=limits.even_address))
    requests = plan_reads(points, limits)
    assert all(_covered(requests, p) for p in points)
    assert sum(len(r.points) for r in requests) == len(points)
    for request in requests:
        assert 1 <= request.count <= limits.max_registers_per_request
        if limits.even_address:
            assert request.address % 2 == 0
            assert request.count % 2 == 0
    assert len(requests) == _fewest_requests(points, limits)


@settings(max_examples=100, deadline=None)
@given(points=point_sets(), limits=limits_strategy)
def test_split_at_holes_reads_only_contiguous_runs(points: list[Point], limits: Limits) -> None:
    limits = limits.model_copy(update={"even_address": False})
    for request in plan_reads(points, limits):
        parts = split_at_holes(request, limits)
        assert [p for part in parts for p in part.points] == list(request.points)
        assert not any(part.has_holes for part in parts)


def test_bits_are_merged_across_small_holes_and_split_at_the_bit_limit() -> None:
    coils = [_point(a, kind=RegisterKind.COIL, index=a) for a in (0, 1, 2, 40, 3000)]
    requests = plan_reads(coils, Limits(max_bits_per_request=2000, max_gap_registers=4))
    assert [(r.address, r.count) for r in requests] == [(0, 41), (3000, 1)]


def test_tables_never_share_a_request() -> None:
    points = [_point(0, kind=RegisterKind.INPUT), _point(2, kind=RegisterKind.HOLDING)]
    requests = plan_reads(points, Limits())
    assert sorted(r.kind for r in requests) == [RegisterKind.HOLDING, RegisterKind.INPUT]


def test_sdm120_full_snapshot_takes_two_requests() -> None:
    """0x0000–0x004F in one 80-register read, the totals at 0x0156 in another."""
    profile = load_profile("eastron-sdm120")
    requests = plan_reads(profile.points.values(), profile.limits)
    assert [(r.address, r.count) for r in requests] == [(0x0000, 80), (0x0156, 4)]


@pytest.mark.parametrize("gap", [0, 1, 5])
def test_a_hole_larger_than_the_gap_setting_splits(gap: int) -> None:
    points = [_point(0, ValueType.UINT16), _point(1 + gap + 1, ValueType.UINT16, index=1)]
    requests = plan_reads(points, Limits(max_gap_registers=gap))
    assert len(requests) == 2


@given(due=st.floats(0, 1e6), interval=st.floats(0.05, 3600), late=st.floats(0, 1e5))
def test_next_slot_stays_on_the_grid_and_in_the_future(
    due: float, interval: float, late: float
) -> None:
    now = due + late
    slot = next_slot(due, interval, now)
    assert now < slot <= now + interval * 1.000001
    assert abs(((slot - due) / interval) - round((slot - due) / interval)) < 1e-6


def test_next_slot_with_no_interval_is_now() -> None:
    assert next_slot(5.0, 0.0, 7.0) == 7.0
