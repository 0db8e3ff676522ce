"""The car-park model on a virtual clock: counting from counters and edges, clamping, counter
resets and wraps, the 10 s coalescing, full and available with hysteresis, daily resets at a
local time across both daylight-saving changes, and spot sensors taking over from counting."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from edge_agent.parking.config import CarParkConfig, SourceConfig
from edge_agent.parking.counting import LaneCounter
from edge_agent.parking.model import PUBLISH_EVERY_MS, RESET_GRACE_MS, CarPark, Output, Saved
from edge_agent.parking.schedule import next_reset_ms
from edge_agent.records import Quality, Reading
from edge_agent.schema import validate

T0 = 1_764_000_000_000
PARIS = "Europe/Paris"


def park(**fields: Any) -> CarPark:
    config: dict[str, Any] = {
        "name": "P-gare", "capacity": 10,
        "entries": [{"device": "sfar", "quantity": "pulse_count_1"}],
        "exits": [{"device": "sfar", "quantity": "pulse_count_2"}], **fields}
    return CarPark(validate(CarParkConfig, config))


def counts(entries: float, exits: float) -> list[Reading]:
    return [Reading("sfar", "pulse_count_1", 0, entries),
            Reading("sfar", "pulse_count_2", 0, exits)]


def occupancy(out: Output) -> list[float]:
    return [r.value for r in out.readings if r.quantity == "parking_occupancy"]


def test_counters_count_their_increase_from_the_first_reading_on() -> None:
    p = park()
    start = p.start(T0)
    assert [(r.quantity, r.value) for r in start.readings] == [
        ("parking_capacity", 10), ("parking_occupancy", 0)]
    assert not p.feed(counts(5000, 7000), T0 + 20_000)  # a baseline, not 5000 vehicles
    assert occupancy(p.feed(counts(5004, 7001), T0 + 40_000)) == [3]
    assert (p.state.entries, p.state.exits, p.state.occupancy) == (4, 1, 3)


def test_occupancy_is_clamped_to_0_and_the_capacity_and_each_clamp_is_counted() -> None:
    p = park()
    p.start(T0)
    p.feed(counts(0, 0), T0)
    p.feed(counts(0, 2), T0 + 20_000)  # exits from an empty car park: missed entries
    assert (p.state.occupancy, p.state.clamps) == (0, 1)
    p.feed(counts(14, 2), T0 + 40_000)
    assert (p.state.occupancy, p.state.clamps) == (10, 2)
    assert p.report()["free"] == 0


def test_a_counter_going_back_is_a_restart_or_a_wrap_never_negative_traffic() -> None:
    lane = LaneCounter("pulse_count_1", capacity=100, last=20_000)
    count = lane.feed(3)  # the SFAR lost power and counted 3 since
    assert (count.vehicles, count.went_back) == (3, True)
    assert lane.feed(5).vehicles == 2
    lane.last = 12_000  # another module put in, its counter at 10,000: beyond the capacity
    assert lane.feed(10_000).vehicles == 0
    assert lane.feed(600).vehicles == 0  # then 600 is no plausible count: re-baseline only
    lane.last = 2**32 - 2
    count = lane.feed(3)
    assert (count.vehicles, count.went_back) == (5, False)  # 32-bit wrap
    lane.last = 65_534
    assert lane.feed(1).vehicles == 3  # 16-bit wrap


def test_inputs_count_rising_edges_only() -> None:
    p = CarPark(CarParkConfig(name="P", capacity=5, entries=[
        SourceConfig(device="board", quantity="input_state_1")], exits=[
        SourceConfig(device="board", quantity="input_state_2")]))
    p.start(T0)
    states = [(1, 0), (1, 0), (0, 0), (1, 0), (0, 1), (0, 1), (0, 0)]
    for second, (entry, leaving) in enumerate(states):
        p.feed([Reading("board", "input_state_1", 0, entry),
                Reading("board", "input_state_2", 0, leaving)], T0 + second * 1000)
    # The first reading is a baseline even when closed; then one rise on each input.
    assert (p.state.entries, p.state.exits, p.state.occupancy) == (1, 1, 0)
    p.feed([Reading("board", "input_state_1", 0, 1, Quality.INVALID)], T0 + 9000)
    assert p.state.entries == 1


def test_changes_go_out_at_most_once_per_10_s_and_the_last_value_is_never_lost() -> None:
    p = park(capacity=100)
    p.start(T0)
    p.feed(counts(0, 0), T0)
    sent: list[tuple[int, float]] = []
    for second in range(1, 26):  # a car every second for 25 s
        now = T0 + second * 1000
        for out in (p.feed(counts(second, 0), now), p.tick(now)):
            sent += [(r.ts_ms - T0, r.value) for r in out.readings]
    assert sent == [(10_000, 10), (20_000, 20)]
    assert not p.tick(T0 + 29_999)
    assert [(r.ts_ms - T0, r.value) for r in p.tick(T0 + 30_000).readings] == [(30_000, 25)]
    assert not p.tick(T0 + 60_000)  # nothing held any more
    p.feed(counts(26, 0), T0 + 60_500)  # window open again: at once
    p.feed(counts(27, 0), T0 + 61_000)
    assert occupancy(p.flush(T0 + 61_500)) == [27]  # the gateway stops: sent now
    assert not p.flush(T0 + 61_600)
    assert PUBLISH_EVERY_MS == 10_000
    p.feed(counts(28, 0), T0 + 62_000)
    assert occupancy(p.feed(counts(29, 0), T0 + 2000)) == [29]  # the clock was stepped back


def test_full_and_available_with_hysteresis_and_the_sign() -> None:
    p = park(capacity=10, full_at=9, available_below=7, sign={"board": "relays", "channel": 2})
    p.start(T0)
    p.feed(counts(0, 0), T0)
    outs = [p.feed(counts(entries, exits), T0 + k * 20_000) for k, (entries, exits) in
            enumerate([(8, 0), (9, 0), (10, 1), (10, 2), (10, 3), (10, 4)], start=1)]
    kinds = [(e.kind, e.attrs["occupancy"]) for out in outs for e in out.events]
    assert kinds == [("car_park.full", 9), ("car_park.available", 6)]
    assert [out.sign for out in outs] == [None, True, None, None, None, False]
    full = outs[1].events[0]
    assert full.device == "P-gare"
    assert full.attrs == {"occupancy": 9, "capacity": 10, "free": 1, "full_at": 9,
                          "available_below": 7}


def test_defaults_full_at_capacity_available_two_spaces_below() -> None:
    config = validate(CarParkConfig, {"name": "P", "capacity": 120, "entries": [
        {"device": "sfar", "quantity": "pulse_count_1"}]})
    assert (config.full_level(), config.available_level()) == (120, 119)


def local_ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(("after", "expected"), [
    ("2026-06-10T12:00+02:00", "2026-06-11T04:00+02:00"),  # summer: 02:00 UTC
    ("2026-12-10T03:59+01:00", "2026-12-10T04:00+01:00"),  # winter: 03:00 UTC
    # The night of the spring change: 04:00 exists, in summer time.
    ("2026-03-28T12:00+01:00", "2026-03-29T04:00+02:00"),
    ("2026-10-24T12:00+02:00", "2026-10-25T04:00+01:00"),
])
def test_the_reset_time_is_local_time_across_daylight_saving(after: str, expected: str) -> None:
    at = dt.time(4, 0)
    assert next_reset_ms(local_ms(after), at, PARIS) == local_ms(expected)


def test_a_reset_time_skipped_or_repeated_by_the_clock_change() -> None:
    skipped = next_reset_ms(local_ms("2026-03-28T12:00+01:00"), dt.time(2, 30), PARIS)
    assert skipped == local_ms("2026-03-29T03:30+02:00")  # an hour later that day
    first = next_reset_ms(local_ms("2026-10-24T12:00+02:00"), dt.time(2, 30), PARIS)
    assert first == local_ms("2026-10-25T02:30+02:00")  # the first of the two 02:30
    assert next_reset_ms(first, dt.time(2, 30), PARIS) == local_ms("2026-10-26T02:30+01:00")


def test_the_daily_reset_corrects_drift_and_a_missed_one_is_skipped() -> None:
    p = park(capacity=50, reset_at="04:00", reset_to=2)
    start = local_ms("2026-03-28T23:00+01:00")
    p.start(start)
    p.feed(counts(0, 0), start)
    p.feed(counts(7, 0), start + 60_000)  # 7 in, none seen leaving: drift
    due = local_ms("2026-03-29T04:00+02:00")
    assert p.next_reset_ms == due
    assert not p.tick(due - 1000)
    out = p.tick(due + 500)
    (reset,) = [e for e in out.events if e.kind == "car_park.reset"]
    assert reset.attrs == {"occupancy": 2, "capacity": 50, "before": 7, "drift": 5}
    assert occupancy(out) == [2]
    assert p.next_reset_ms == local_ms("2026-03-30T04:00+02:00")
    # The gateway's clock jumps past the next reset by hours (it was down, or stepped):
    # that reset is skipped, the one after is planned.
    p.feed(counts(9, 0), due + 60_000)
    late = local_ms("2026-03-30T04:00+02:00") + RESET_GRACE_MS + 1
    assert not [e for e in p.tick(late).events if e.kind == "car_park.reset"]
    assert (p.state.occupancy, p.state.resets) == (4, 1)
    assert p.next_reset_ms == local_ms("2026-03-31T04:00+02:00")


def test_spot_sensors_take_over_once_every_spot_has_reported() -> None:
    spots = [f"spot-{n}" for n in range(1, 5)]
    p = park(capacity=4, spots=spots, occupancy_from_spots=True)
    p.start(T0)
    p.feed(counts(0, 0), T0)
    p.feed(counts(3, 0), T0 + 20_000)  # counting until every spot has spoken
    assert p.state.occupancy == 3
    for k, spot in enumerate(spots[:3]):
        p.feed([Reading(spot, "spot_occupied", 0, float(k != 1))], T0 + 30_000)
    assert p.state.occupancy == 3
    out = p.feed([Reading(spots[3], "spot_occupied", 0, 0.0)], T0 + 40_000)
    assert occupancy(out) == [2]  # the spots' truth: 2 occupied
    p.feed(counts(5, 0), T0 + 60_000)  # counted, but the spots decide
    assert (p.state.occupancy, p.state.entries) == (2, 5)
    assert p.report()["from_spots"] is True


def test_a_restored_state_is_clamped_to_a_smaller_capacity() -> None:
    config = validate(CarParkConfig, {"name": "P", "capacity": 10, "exits": [
        {"device": "sfar", "quantity": "pulse_count_2"}]})
    p = CarPark(config, Saved(occupancy=40, full=True, spots={"gone": True}))
    assert p.state.occupancy == 10
    assert p.state.spots == {}
    assert [e.kind for e in p.start(T0).events] == []  # still full: nothing new to say
