"""The rule engine: readings and clock ticks in, alarm transitions and actions out. Pure.

No I/O and no clock of its own: the caller passes readings (with their timestamps) and the
time of each tick, so the same engine serves the running gateway and the dry run of
``edge-agent rules test``, and tests drive it through hours in microseconds.

A threshold rule raises when its value has been beyond the threshold for ``for_s`` and
clears when it has been back past ``clear_at`` for ``for_s``: between the two levels nothing
changes, so a value wobbling around the threshold cannot make the alarm flap. A rate rule
does the same with the change over its window. A stale rule raises on a tick once its
device (or quantity) has been silent for ``after_s`` and clears at the next reading. A NaN
or INVALID reading is counted and otherwise ignored: it neither raises, clears, nor counts
as a sign of life.

Latches are held per relay channel with the set of raised rules holding them, so two rules
closing one barrier release it only when both have cleared.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_agent.records import Event, Quality, Reading
from edge_agent.rules.intents import Downlink, Intent, RelayPulse, RelaySet, Transition
from edge_agent.rules.models import (
    DownlinkAction,
    LatchAction,
    PulseAction,
    RuleConfig,
    fingerprint,
)

__all__ = ["MAX_WINDOW_SAMPLES", "RuleEngine", "RuleState", "SavedRule"]

#: Samples a rate rule keeps in its window; older ones go first beyond it.
MAX_WINDOW_SAMPLES = 4096


@dataclass(frozen=True, slots=True)
class SavedRule:
    """A rule's state as the state file keeps it across restarts."""

    fingerprint: str
    raised: bool
    #: What the rule watched, to word a clearing event if the rule is gone at restart.
    device: str = ""
    kind: str = ""
    quantity: str | None = None
    severity: str = ""
    since_ms: int | None = None
    raised_ms: int | None = None
    value: float | None = None
    raises: int = 0
    clears: int = 0


@dataclass(slots=True)
class RuleState:
    """Where one rule stands, and its counters for ``status``."""

    raised: bool = False
    #: When the condition that would change ``raised`` began to hold (pending), else None.
    since_ms: int | None = None
    raised_ms: int | None = None
    #: The last valid value of the watched quantity.
    value: float | None = None
    #: The last sign of life (stale rules), or when the rule started watching.
    last_seen_ms: int = 0
    #: rate rules: the change over the window at the last reading.
    change: float | None = None
    readings: int = 0
    ignored: int = 0
    raises: int = 0
    clears: int = 0
    window: deque[tuple[int, float]] = field(default_factory=deque)

    def label(self) -> str:
        """``ok``, ``pending``, ``raised`` or ``clearing``, for people."""
        if self.raised:
            return "raised" if self.since_ms is None else "clearing"
        return "ok" if self.since_ms is None else "pending"


@dataclass(slots=True)
class _Watch:
    rule: RuleConfig
    fingerprint: str
    state: RuleState


@dataclass(slots=True)
class _Latch:
    on: bool
    holders: set[str]


class RuleEngine:
    """Every rule of one gateway and the latches they hold."""

    def __init__(self, rules: Iterable[RuleConfig], now_ms: int) -> None:
        self._watches: dict[str, _Watch] = {}
        self._by_series: dict[tuple[str, str], list[_Watch]] = {}
        self._by_device: dict[str, list[_Watch]] = {}
        self._latches: dict[tuple[str, int], _Latch] = {}
        self.install(rules, now_ms)

    @property
    def rules(self) -> list[RuleConfig]:
        """The rules in force."""
        return [watch.rule for watch in self._watches.values()]

    def install(self, rules: Iterable[RuleConfig], now_ms: int) -> list[Transition]:
        """Put ``rules`` in force; an unchanged rule keeps its state.

        A raised rule that is gone or was changed is cleared (reason ``rule_removed`` or
        ``rule_changed``) and its latches are released; its ``on_clear`` actions do not run.
        """
        old, watches = self._watches, {}
        for rule in rules:
            print_ = fingerprint(rule)
            kept = old.get(rule.name)
            if kept is not None and kept.fingerprint == print_:
                watches[rule.name] = kept
            else:
                watches[rule.name] = _Watch(rule, print_, RuleState(last_seen_ms=now_ms))
        self._watches = watches  # one assignment: the status thread sees old or new
        transitions = []
        for name, watch in old.items():
            if watch.state.raised and watches.get(name) is not watch:
                reason = "rule_changed" if name in watches else "rule_removed"
                transitions.append(self._clear(watch, now_ms, reason, run_actions=False))
        self._index()
        return transitions

    def restore(self, saved: Mapping[str, SavedRule], now_ms: int) -> list[Transition]:
        """Take up the states of the last run; raised rules hold their latches again.

        A saved raised rule that is gone or changed is cleared without actions: its relays
        were switched off at start.
        """
        transitions = []
        for name, record in saved.items():
            watch = self._watches.get(name)
            if watch is None or watch.fingerprint != record.fingerprint:
                if record.raised:
                    transitions.append(Transition(Event("alarm.cleared", record.device, now_ms, {
                        "rule": name, "kind": record.kind, "severity": record.severity,
                        "quantity": record.quantity, "value": record.value, "threshold": None,
                        "reason": "rule_removed" if watch is None else "rule_changed",
                        "raised_ms": record.raised_ms})))
                continue
            state = watch.state
            state.raised, state.since_ms, state.raised_ms = (record.raised, record.since_ms,
                                                             record.raised_ms)
            state.value, state.raises, state.clears = record.value, record.raises, record.clears
            if record.raised:
                self._hold_latches(watch)
        return transitions

    def feed(self, readings: Iterable[Reading]) -> list[Transition]:
        """Evaluate the rules watching each reading, in order; the transitions that follow."""
        transitions: list[Transition] = []
        by_series, by_device = self._by_series, self._by_device
        for reading in readings:
            series = by_series.get((reading.device, reading.quantity))
            whole = by_device.get(reading.device)
            if series is None and whole is None:
                continue
            valid = reading.quality is not Quality.INVALID and math.isfinite(reading.value)
            for watch in (*(series or ()), *(whole or ())):
                if not valid:
                    watch.state.ignored += 1
                    continue
                transition = self._observe(watch, reading)
                if transition is not None:
                    transitions.append(transition)
        return transitions

    def tick(self, now_ms: int) -> list[Transition]:
        """Raise silent devices and complete pending raises and clears due by ``now_ms``."""
        transitions = []
        for watch in self._watches.values():
            rule, state = watch.rule, watch.state
            if rule.kind == "stale":
                assert rule.after_s is not None
                if not state.raised and now_ms - state.last_seen_ms >= rule.after_s * 1000:
                    transitions.append(self._raise(watch, now_ms))
            elif state.since_ms is not None and now_ms - state.since_ms >= rule.for_s * 1000:
                transitions.append(self._clear(watch, now_ms, "recovered") if state.raised
                                   else self._raise(watch, now_ms))
        return transitions

    def shift(self, delta_ms: int) -> None:
        """Move every remembered instant by ``delta_ms``: the wall clock was stepped.

        A Raspberry Pi has no real-time clock; NTP may move it by hours after boot. Without
        this, every silence would look hours long and every stale rule would raise at once.
        """
        for watch in list(self._watches.values()):
            state = watch.state
            state.last_seen_ms += delta_ms
            if state.since_ms is not None:
                state.since_ms += delta_ms
            state.window = deque((ts + delta_ms, value) for ts, value in state.window)

    def next_due(self) -> int | None:
        """The earliest time a tick would change something, if nothing is read before it."""
        due = []
        for watch in self._watches.values():
            rule, state = watch.rule, watch.state
            if rule.kind == "stale":
                assert rule.after_s is not None
                if not state.raised:
                    due.append(state.last_seen_ms + math.ceil(rule.after_s * 1000))
            elif state.since_ms is not None:
                due.append(state.since_ms + math.ceil(rule.for_s * 1000))
        return min(due, default=None)

    def held_latches(self) -> dict[tuple[str, int], bool]:
        """The relay states the raised rules hold now, by (board, channel)."""
        return {key: latch.on for key, latch in list(self._latches.items())}

    def snapshot(self) -> dict[str, SavedRule]:
        """Every rule's state, for the state file."""
        return {name: SavedRule(w.fingerprint, w.state.raised, w.rule.device, w.rule.kind,
                                w.rule.quantity, w.rule.severity, w.state.since_ms,
                                w.state.raised_ms, w.state.value, w.state.raises, w.state.clears)
                for name, w in self._watches.items()}

    def report(self) -> list[dict[str, Any]]:
        """Each rule's state and counters, for ``status.json`` (safe from the status thread)."""
        return [{"name": name, "kind": w.rule.kind, "device": w.rule.device,
                 "quantity": w.rule.quantity, "severity": w.rule.severity,
                 "state": w.state.label(), "raised_ms": w.state.raised_ms,
                 "value": w.state.value, "readings": w.state.readings,
                 "ignored": w.state.ignored, "raises": w.state.raises,
                 "clears": w.state.clears}
                for name, w in list(self._watches.items())]

    # -- evaluation ---------------------------------------------------------------------------

    def _index(self) -> None:
        self._by_series, self._by_device = {}, {}
        for watch in self._watches.values():
            rule = watch.rule
            if rule.quantity is None:
                self._by_device.setdefault(rule.device, []).append(watch)
            else:
                self._by_series.setdefault((rule.device, rule.quantity), []).append(watch)

    def _observe(self, watch: _Watch, reading: Reading) -> Transition | None:
        rule, state = watch.rule, watch.state
        state.readings += 1
        state.value = reading.value
        ts = reading.ts_ms
        if rule.kind == "stale":
            # The clearing event tells the silence that ended: last_seen moves after it.
            transition = self._clear(watch, ts, "recovered") if state.raised else None
            state.last_seen_ms = max(state.last_seen_ms, ts)
            return transition
        measure = reading.value if rule.kind != "rate" else _change(rule, state, reading)
        if measure is None:
            return None
        wanted = _past_clear_level(rule, measure) if state.raised else _beyond(rule, measure)
        if not wanted:
            state.since_ms = None
            return None
        if state.since_ms is None:
            state.since_ms = ts
        if ts - state.since_ms < rule.for_s * 1000:
            return None
        return self._clear(watch, ts, "recovered") if state.raised else self._raise(watch, ts)

    def _raise(self, watch: _Watch, ts: int) -> Transition:
        state = watch.state
        state.raised, state.since_ms, state.raised_ms = True, None, ts
        state.raises += 1
        intents: list[Intent] = [*self._hold_latches(watch)]
        intents += [_intent(watch.rule.name, action) for action in watch.rule.on_raise
                    if not isinstance(action, LatchAction)]
        return Transition(Event("alarm.raised", watch.rule.device, ts,
                                self._attrs(watch, ts)), tuple(intents))

    def _clear(self, watch: _Watch, ts: int, reason: str, *, run_actions: bool = True
               ) -> Transition:
        state = watch.state
        attrs = {**self._attrs(watch, ts), "reason": reason, "raised_ms": state.raised_ms}
        state.raised, state.since_ms, state.raised_ms = False, None, None
        state.clears += 1
        intents = self._release_latches(watch.rule.name)
        if run_actions:
            intents += [_intent(watch.rule.name, action) for action in watch.rule.on_clear
                        if not isinstance(action, LatchAction)]
        return Transition(Event("alarm.cleared", watch.rule.device, ts, attrs), tuple(intents))

    def _attrs(self, watch: _Watch, ts: int) -> dict[str, Any]:
        rule, state = watch.rule, watch.state
        attrs: dict[str, Any] = {"rule": rule.name, "kind": rule.kind, "severity": rule.severity,
                                 "quantity": rule.quantity, "value": state.value}
        if rule.kind == "stale":
            attrs |= {"threshold": rule.after_s, "silence_s": (ts - state.last_seen_ms) / 1000,
                      "last_seen_ms": state.last_seen_ms}
        elif rule.kind == "rate":
            attrs |= {"threshold": rule.delta, "change": state.change,
                      "window_s": rule.window_s, "clear_at": rule.clear_level()}
        else:
            attrs |= {"threshold": rule.threshold, "clear_at": rule.clear_level(),
                      "for_s": rule.for_s}
        return attrs

    # -- latches ------------------------------------------------------------------------------

    def _hold_latches(self, watch: _Watch) -> list[Intent]:
        intents: list[Intent] = []
        for action in watch.rule.on_raise:
            if not isinstance(action, LatchAction):
                continue
            key = (action.board, action.channel)
            latch = self._latches.get(key)
            if latch is None:
                self._latches[key] = _Latch(action.on, {watch.rule.name})
                intents.append(RelaySet(watch.rule.name, action.board, action.channel,
                                        action.on))
            else:
                latch.holders.add(watch.rule.name)
        return intents

    def _release_latches(self, name: str) -> list[Intent]:
        intents: list[Intent] = []
        for (board, channel), latch in list(self._latches.items()):
            if name not in latch.holders:
                continue
            latch.holders.discard(name)
            if not latch.holders:
                del self._latches[board, channel]
                intents.append(RelaySet(name, board, channel, not latch.on))
        return intents


def _beyond(rule: RuleConfig, measure: float) -> bool:
    """Whether ``measure`` is past the raising level."""
    if rule.kind == "above":
        assert rule.threshold is not None
        return measure > rule.threshold
    if rule.kind == "below":
        assert rule.threshold is not None
        return measure < rule.threshold
    assert rule.delta is not None
    return measure > rule.delta if rule.delta > 0 else measure < rule.delta


def _past_clear_level(rule: RuleConfig, measure: float) -> bool:
    """Whether ``measure`` is back on the safe side of the clearing level."""
    level = rule.clear_level()
    assert level is not None
    rising = rule.kind == "above" or (rule.kind == "rate" and (rule.delta or 0) > 0)
    return measure < level if rising else measure > level


def _change(rule: RuleConfig, state: RuleState, reading: Reading) -> float | None:
    """The rise (or fall) within the window that ends at ``reading``; None with one sample."""
    assert rule.window_s is not None
    assert rule.delta is not None
    window = state.window
    window.append((reading.ts_ms, reading.value))
    oldest = reading.ts_ms - rule.window_s * 1000
    while window and (window[0][0] < oldest or len(window) > MAX_WINDOW_SAMPLES):
        window.popleft()
    if len(window) < 2:
        state.change = None
        return None
    values = [value for _, value in window]
    state.change = reading.value - (min(values) if rule.delta > 0 else max(values))
    return state.change


def _intent(rule: str, action: PulseAction | DownlinkAction) -> Intent:
    if isinstance(action, DownlinkAction):
        return Downlink(rule, action.device, action.fport, action.data(), action.confirmed)
    return RelayPulse(rule, action.board, action.channel, action.ms)

