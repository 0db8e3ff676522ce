"""The rule engine on its own: hysteresis, durations, rates, staleness, bad readings, latches.

The engine is pure, so hours of readings are replayed in microseconds with explicit
timestamps; nothing here sleeps.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from edge_agent.records import Quality, Reading
from edge_agent.rules.engine import RuleEngine
from edge_agent.rules.intents import Downlink, RelayPulse, RelaySet, Transition
from edge_agent.rules.models import RuleConfig
from edge_agent.schema import Invalid, validate

T0 = 1_764_000_000_000
MIN = 60_000


def rule(**fields: Any) -> RuleConfig:
    base: dict[str, Any] = {"name": "flood", "device": "level-1", "quantity": "water_level",
                            "kind": "above", "threshold": 1.2, "clear_at": 1.1}
    return validate(RuleConfig, base | fields)


def level(ts_ms: int, value: float, *, device: str = "level-1", quantity: str = "water_level",
          quality: Quality = Quality.GOOD) -> Reading:
    return Reading(device, quantity, ts_ms, value, quality)


def kinds(transitions: list[Transition]) -> list[str]:
    return [t.event.kind for t in transitions]


def replay(engine: RuleEngine, values: list[float], *, step_ms: int = MIN) -> list[Transition]:
    out: list[Transition] = []
    for index, value in enumerate(values):
        ts = T0 + index * step_ms
        out += engine.tick(ts)
        out += engine.feed([level(ts, value)])
    return out


def test_hysteresis_keeps_a_wobbling_level_from_flapping() -> None:
    engine = RuleEngine([rule()], T0)
    wobble = [1.0, 1.25, 1.19, 1.21, 1.15, 1.22, 1.11, 1.3, 1.12, 1.09, 1.15, 1.19, 1.0]
    transitions = replay(engine, wobble)
    assert kinds(transitions) == ["alarm.raised", "alarm.cleared"]
    raised, cleared = transitions
    assert raised.event.ts_ms == T0 + 1 * MIN
    assert cleared.event.ts_ms == T0 + 9 * MIN
    assert raised.event.device == "level-1"
    assert raised.event.attrs == {"rule": "flood", "kind": "above", "severity": "warning",
                                  "quantity": "water_level", "value": 1.25, "threshold": 1.2,
                                  "clear_at": 1.1, "for_s": 0}
    assert cleared.event.attrs["reason"] == "recovered"
    assert cleared.event.attrs["raised_ms"] == T0 + MIN
    assert cleared.event.attrs["value"] == 1.09


def test_without_clear_at_the_threshold_itself_clears() -> None:
    engine = RuleEngine([rule(clear_at=None)], T0)
    assert kinds(replay(engine, [1.3, 1.2, 1.19])) == ["alarm.raised", "alarm.cleared"]


def test_below_is_the_mirror_of_above() -> None:
    engine = RuleEngine([rule(kind="below", threshold=0.5, clear_at=0.6)], T0)
    transitions = replay(engine, [0.7, 0.4, 0.55, 0.45, 0.61, 0.3])
    assert kinds(transitions) == ["alarm.raised", "alarm.cleared", "alarm.raised"]


def test_a_short_spike_does_not_raise_when_a_duration_is_required() -> None:
    engine = RuleEngine([rule(for_s=300)], T0)
    # 4 minutes above, a dip, then above again: raised 5 minutes into the second run.
    values = [1.3] * 4 + [1.0] + [1.3] * 7
    transitions = replay(engine, values)
    assert kinds(transitions) == ["alarm.raised"]
    assert transitions[0].event.ts_ms == T0 + (5 + 5) * MIN


def test_a_duration_completes_on_a_tick_between_sparse_readings() -> None:
    """A LoRa sensor every 10 minutes: the alarm is due 2 minutes after the first high one."""
    engine = RuleEngine([rule(for_s=120)], T0)
    assert engine.feed([level(T0, 1.5)]) == []
    assert engine.tick(T0 + 119_000) == []
    (raised,) = engine.tick(T0 + 120_000)
    assert raised.event.kind == "alarm.raised"
    assert raised.event.attrs["value"] == 1.5
    # Clearing waits its duration too.
    assert engine.feed([level(T0 + 10 * MIN, 1.0)]) == []
    assert engine.tick(T0 + 11 * MIN) == []
    assert kinds(engine.tick(T0 + 12 * MIN)) == ["alarm.cleared"]


def test_a_water_rise_of_more_than_the_delta_within_the_window_raises() -> None:
    engine = RuleEngine([rule(kind="rate", threshold=None, clear_at=None, delta=0.2,
                              window_s=900)], T0)
    # +0.05 every 5 minutes: 0.15 in 15 minutes, no alarm; then +0.1 per 5 minutes; then the
    # level steadies, and once the rise within 15 minutes is under half the delta, it clears.
    values = [1.0, 1.05, 1.10, 1.15, 1.20, 1.30, 1.40, 1.41, 1.42, 1.42]
    transitions = replay(engine, values, step_ms=5 * MIN)
    assert kinds(transitions) == ["alarm.raised", "alarm.cleared"]
    raised, cleared = transitions
    assert raised.event.ts_ms == T0 + 6 * 5 * MIN
    assert raised.event.attrs["threshold"] == 0.2
    assert raised.event.attrs["change"] == pytest.approx(0.25)
    assert raised.event.attrs["window_s"] == 900
    assert cleared.event.ts_ms == T0 + 9 * 5 * MIN
    assert cleared.event.attrs["change"] == pytest.approx(0.02)


def test_a_fall_rule_watches_the_drop() -> None:
    engine = RuleEngine([rule(kind="rate", threshold=None, clear_at=None, delta=-0.5,
                              window_s=600)], T0)
    assert kinds(replay(engine, [3.0, 2.8, 2.4], step_ms=5 * MIN)) == ["alarm.raised"]


def test_a_silent_device_raises_and_its_next_reading_clears() -> None:
    stale = rule(name="quiet", quantity=None, kind="stale", threshold=None, clear_at=None,
                 after_s=600)
    engine = RuleEngine([stale], T0)
    assert engine.tick(T0 + 599_000) == []
    assert engine.feed([level(T0 + 500_000, 1.0, quantity="battery_level")]) == []
    assert engine.tick(T0 + 1_099_000) == []  # any quantity of the device is a sign of life
    (raised,) = engine.tick(T0 + 1_100_000)
    assert raised.event.attrs["silence_s"] == 600
    assert raised.event.attrs["threshold"] == 600
    assert raised.event.attrs["last_seen_ms"] == T0 + 500_000
    assert engine.tick(T0 + 2_000_000) == []  # raised once
    assert kinds(engine.feed([level(T0 + 2_100_000, 1.0)])) == ["alarm.cleared"]


def test_a_stale_quantity_ignores_the_device_s_other_quantities() -> None:
    stale = rule(name="no-level", kind="stale", threshold=None, clear_at=None, after_s=60)
    engine = RuleEngine([stale], T0)
    engine.feed([level(T0 + 30_000, 80, quantity="battery_level")])
    assert kinds(engine.tick(T0 + 60_000)) == ["alarm.raised"]
    assert engine.feed([level(T0 + 61_000, 80, quantity="battery_level")]) == []
    assert kinds(engine.feed([level(T0 + 62_000, 1.0)])) == ["alarm.cleared"]


def test_a_clock_step_is_no_silence() -> None:
    """NTP moves a clock that started in 1970 by decades: no stale rule raises for it."""
    stale = rule(name="quiet", quantity=None, kind="stale", threshold=None, clear_at=None,
                 after_s=60)
    high = rule(for_s=120)
    engine = RuleEngine([stale, high], T0)
    engine.feed([level(T0 + 10_000, 1.5)])
    day = 86_400_000
    engine.shift(day)
    assert engine.tick(T0 + day + 59_000) == []
    assert kinds(engine.tick(T0 + day + 70_000)) == ["alarm.raised"]  # quiet, 60 s after
    assert kinds(engine.tick(T0 + day + 130_000)) == ["alarm.raised"]  # high, 120 s after


@pytest.mark.parametrize("bad", [
    level(T0, math.nan), level(T0, math.inf), level(T0, 5.0, quality=Quality.INVALID)])
def test_nan_and_invalid_readings_neither_raise_nor_clear(bad: Reading) -> None:
    engine = RuleEngine([rule()], T0)
    assert engine.feed([bad]) == []
    engine.feed([level(T0, 1.5)])
    shifted = Reading(bad.device, bad.quantity, T0 + MIN, bad.value if bad.quality
                      else -math.inf, bad.quality)
    assert engine.feed([shifted]) == []
    assert engine.report()[0]["state"] == "raised"
    assert engine.report()[0]["ignored"] == 2


def test_invalid_readings_are_no_sign_of_life() -> None:
    stale = rule(name="quiet", quantity=None, kind="stale", threshold=None, clear_at=None,
                 after_s=60)
    engine = RuleEngine([stale], T0)
    engine.feed([level(T0 + 30_000, math.nan)])
    assert kinds(engine.tick(T0 + 60_000)) == ["alarm.raised"]


def test_latches_are_held_while_raised_and_released_by_the_last_holder() -> None:
    barrier = [{"type": "latch", "board": "relays", "channel": 1}]
    engine = RuleEngine([
        rule(name="high", on_raise=[*barrier, {"type": "pulse", "board": "relays",
                                               "channel": 4, "ms": 500}],
             on_clear=[{"type": "downlink", "device": "siren", "fport": 10, "payload": "00"}]),
        rule(name="rising", kind="rate", threshold=None, clear_at=None, delta=0.2,
             window_s=600, on_raise=barrier),
    ], T0)
    first = engine.feed([level(T0, 1.0)]) + engine.feed([level(T0 + MIN, 1.3)])
    assert [t.event.attrs["rule"] for t in first] == ["high", "rising"]
    assert first[0].intents == (RelaySet("high", "relays", 1, True),
                                RelayPulse("high", "relays", 4, 500))
    assert first[1].intents == ()  # the barrier is closed already
    assert engine.held_latches() == {("relays", 1): True}
    # "high" clears, "rising" still holds the barrier.
    cleared = engine.feed([level(T0 + 2 * MIN, 1.0)])
    assert [t.event.attrs["rule"] for t in cleared] == ["high", "rising"]
    assert cleared[0].intents == (Downlink("high", "siren", 10, b"\x00", False),)
    assert cleared[1].intents == (RelaySet("rising", "relays", 1, False),)
    assert engine.held_latches() == {}


def test_rules_installed_again_keep_their_state_and_a_removed_raised_rule_clears() -> None:
    kept, gone = rule(name="kept"), rule(name="gone", on_raise=[
        {"type": "latch", "board": "relays", "channel": 2, "on": False}])
    engine = RuleEngine([kept, gone], T0)
    engine.feed([level(T0, 1.5)])
    transitions = engine.install([kept], T0 + MIN)
    assert [(t.event.kind, t.event.attrs["rule"], t.event.attrs["reason"])
            for t in transitions] == [("alarm.cleared", "gone", "rule_removed")]
    assert transitions[0].intents == (RelaySet("gone", "relays", 2, True),)
    assert engine.report()[0]["state"] == "raised"
    changed = engine.install([rule(name="kept", threshold=1.4)], T0 + 2 * MIN)
    assert [t.event.attrs["reason"] for t in changed] == ["rule_changed"]


def test_restore_takes_up_raised_rules_and_their_latches() -> None:
    barrier = rule(on_raise=[{"type": "latch", "board": "relays", "channel": 1}])
    engine = RuleEngine([barrier, rule(name="other")], T0)
    engine.feed([level(T0, 1.5)])
    saved = engine.snapshot()
    again = RuleEngine([barrier], T0 + MIN)
    transitions = again.restore(saved, T0 + MIN)
    assert again.held_latches() == {("relays", 1): True}
    assert [(t.event.device, t.event.attrs["rule"], t.event.attrs["reason"])
            for t in transitions] == [("level-1", "other", "rule_removed")]
    assert kinds(again.feed([level(T0 + 2 * MIN, 1.0)])) == ["alarm.cleared"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"threshold": None}, "kind 'above' needs threshold"),
    ({"kind": "rate", "threshold": None, "clear_at": None}, "kind 'rate' needs delta"),
    ({"kind": "rate", "threshold": None, "clear_at": None, "delta": 0, "window_s": 60},
     "delta must not be 0"),
    ({"kind": "stale", "clear_at": None, "after_s": 5}, "takes no threshold"),
    ({"clear_at": 1.3}, "clear_at 1.3 is above the raising level 1.2"),
    ({"kind": "below", "clear_at": 1.0}, "clear_at 1 is below the raising level 1.2"),
    ({"quantity": "water_levle"}, "did you mean 'water_level'"),
    ({"quantity": None}, "only a stale rule may watch a whole device"),
    ({"on_clear": [{"type": "latch", "board": "r", "channel": 1}]}, "on_clear takes no latch"),
    ({"on_raise": [{"type": "downlink", "device": "s", "fport": 1, "payload": "zz"}]},
     "not hex bytes"),
    ({"on_raise": [{"type": "pulse", "board": "r", "channel": 1, "ms": 0}]},
     "greater than or equal to 100"),
    ({"threshold": math.nan}, "finite number"),
])
def test_invalid_rules_say_which_field_and_how_to_fix_it(fields: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(Invalid, match=message):
        rule(**fields)
