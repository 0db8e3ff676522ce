"""The read planner: every point covered, no request over the limit, fewest requests."""

from __future__ import annotations

from functools import cache

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.codecs.modbus_values import ValueType, WordOrder
from edge_agent.drivers.modbus.bus import next_slot, wake_time
from edge_agent.drivers.modbus.cost import factory_cost, serial_cost, tcp_cost
from edge_agent.drivers.modbus.decoding import point_value, readings_from_response
from edge_agent.drivers.modbus.planner import ReadRequest, plan_reads, split_at_holes
from edge_agent.profiles import Limits, Point, RegisterKind, load_profile

_TYPES = [ValueType.UINT16, ValueType.FLOAT32, ValueType.INT64]
TCP = tcp_cost()
#: Six values of an SDM120 whose registers leave a 56-register hole (0x000E-0x0045).
SDM120_SUBSET = ["voltage", "current", "active_power", "frequency", "active_energy_import",
                 "active_energy_total"]


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
        if point.address - max(before_end, end) > (limits.max_gap_registers or 0):
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
    requests = plan_reads(points, limits, TCP)
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
    limits = msgspec.structs.replace(limits, even_address=False)
    for request in plan_reads(points, limits, TCP):
        parts = split_at_holes(request, limits)
        assert [p for part in parts for p in part.points] == list(request.points)
        assert not any(part.has_holes for part in parts)


def test_bits_are_merged_across_small_holes_and_split_at_the_bit_limit() -> None:
    coils = [_point(a, kind=RegisterKind.COIL, index=a) for a in (0, 1, 2, 40, 3000)]
    requests = plan_reads(coils, Limits(max_bits_per_request=2000, max_gap_registers=4),
                          TCP)
    assert [(r.address, r.count) for r in requests] == [(0, 41), (3000, 1)]


def test_tables_never_share_a_request() -> None:
    points = [_point(0, kind=RegisterKind.INPUT), _point(2, kind=RegisterKind.HOLDING)]
    requests = plan_reads(points, Limits(), TCP)
    assert sorted(r.kind for r in requests) == [RegisterKind.HOLDING, RegisterKind.INPUT]


def _sdm120_plan(cost_line: str, quantities: list[str] | None = None) -> list[tuple[int, int]]:
    profile = load_profile("eastron-sdm120")
    silence_s = profile.limits.min_silence_ms / 1000
    cost = {"tcp": tcp_cost(silence_s), "9600": serial_cost(9600, "N", 1, silence_s),
            "factory": factory_cost(profile)}[cost_line]
    points = [profile.points[q] for q in quantities or profile.points]
    return [(r.address, r.count) for r in plan_reads(points, profile.limits, cost)]


@pytest.mark.parametrize("line", ["tcp", "9600"])
def test_sdm120_full_snapshot_takes_two_requests(line: str) -> None:
    """0x0000–0x004F in one 80-register read, the totals at 0x0156 in another."""
    assert _sdm120_plan(line) == [(0x0000, 80), (0x0156, 4)]


def test_sdm120_subset_on_tcp_reads_its_56_register_hole() -> None:
    """A request costs a round trip, a register almost nothing: six values in two requests,
    as many as the whole profile, not three."""
    assert _sdm120_plan("tcp", SDM120_SUBSET) == [(0x0000, 0x4A), (0x0156, 2)]


def test_sdm120_subset_at_9600_baud_skips_the_hole() -> None:
    """At 9600 baud 56 registers take 117 ms on the wire, a request 91 ms (framing, gaps, a
    10 ms turnaround and the meter's 60 ms silence): three requests are the cheaper plan."""
    assert _sdm120_plan("9600", SDM120_SUBSET) == [(0x0000, 14), (0x0046, 4), (0x0156, 2)]


def test_sdm120_at_its_factory_2400_baud_reads_no_38_register_hole() -> None:
    assert _sdm120_plan("factory") == [(0x0000, 0x20), (0x0046, 10), (0x0156, 4)]


def test_line_costs_price_a_hole_against_a_request() -> None:
    assert serial_cost(9600, "N", 1, 0.060).max_gap_registers == 43
    assert serial_cost(2400, "N", 1, 0.060).max_gap_registers == 18
    assert serial_cost(19200, "E", 1).max_gap_registers == 18  # (13 + 7 + 17.5) / 2
    assert tcp_cost().max_gap_registers == 124
    assert serial_cost(9600).line == "RTU 9600 8N1"


def test_a_profile_gap_overrides_the_line() -> None:
    points = [_point(0, ValueType.UINT16), _point(40, ValueType.UINT16, index=1)]
    assert len(plan_reads(points, Limits(), TCP)) == 1
    assert len(plan_reads(points, Limits(max_gap_registers=0), TCP)) == 2


@settings(max_examples=200, deadline=None)
@given(data=st.data(), max_count=st.integers(4, 125), even=st.booleans())
def test_on_tcp_a_subset_never_takes_more_requests_than_the_whole(
    data: st.DataObject, max_count: int, even: bool
) -> None:
    limits = Limits(max_registers_per_request=max_count, even_address=even)
    points = data.draw(point_sets(even=even))
    subset = data.draw(st.lists(st.sampled_from(points), min_size=1, unique=True))
    assert len(plan_reads(subset, limits, TCP)) <= len(plan_reads(points, limits, TCP))


@pytest.mark.parametrize("gap", [0, 1, 5])
def test_a_hole_larger_than_the_gap_setting_splits(gap: int) -> None:
    points = [_point(0, ValueType.UINT16), _point(1 + gap + 1, ValueType.UINT16, index=1)]
    requests = plan_reads(points, Limits(max_gap_registers=gap), TCP)
    assert len(requests) == 2


@given(due=st.floats(0, 1e6), interval=st.floats(0.05, 3600), late=st.floats(0, 1e5))
def test_next_slot_stays_on_the_grid_and_never_idles_behind_it(
    due: float, interval: float, late: float
) -> None:
    now = due + late
    slot = next_slot(due, interval, now)
    assert slot > due
    assert abs(((slot - due) / interval) - round((slot - due) / interval)) < 1e-6
    if late < interval:  # on time: the next slot of the grid
        assert slot == pytest.approx(due + interval)
    else:  # overran: the latest slot begun, polled at once; none later has begun
        assert now - interval * 1.000001 < slot <= now + interval * 1e-6


def test_next_slot_with_no_interval_is_now() -> None:
    assert next_slot(5.0, 0.0, 7.0) == 7.0


@settings(max_examples=200, deadline=None)
@given(data=st.data(), little=st.booleans())
def test_one_struct_decodes_a_request_as_point_by_point_decoding_does(
    data: st.DataObject, little: bool
) -> None:
    points = [msgspec.structs.replace(
                  p, word_order=WordOrder.LITTLE if little else WordOrder.BIG, scale=0.1)
              for p in data.draw(point_sets())]
    for request in plan_reads(points, Limits(), TCP):
        assert (request.layout is None) == (little and any(p.count > 1 for p in request.points))
        words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=request.count,
                                   max_size=request.count))
        readings = readings_from_response(request, words, device="d", ts_ms=1)
        expected = [point_value(p, request, words) for p in request.points]
        assert [r.value for r in readings] == pytest.approx(expected, nan_ok=True)


@given(due=st.floats(0, 1e6), tick=st.sampled_from([0.0, 0.005, 0.05, 0.5]))
def test_buses_wake_on_a_shared_tick_never_before_they_are_due(due: float, tick: float) -> None:
    wake = wake_time(due, tick)
    assert due <= wake <= due + tick
    if tick:
        assert abs(wake / tick - round(wake / tick)) < 1e-6
