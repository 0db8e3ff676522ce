"""Which values of a frame become readings (pure, clock given by the caller).

A Linky sends a frame every one to two seconds; storing each would fill the outbox with
copies. Indexes (cumulative quantities) are kept every ``index_interval_s``, all together.
Power and current are kept when they moved by at least their deadband since the last kept
value: the larger of ``deadband_pct`` of that value and the absolute deadband of the unit
(``deadband_va`` for VA and W, ``deadband_a``); voltage, which the grid keeps within ±10 %,
by ``deadband_v`` alone. States (tariff period, subscribed power, the day's maximum) are
kept on any change. Every value is kept at least every ``max_interval_s``, so a flat line
still shows the meter is alive.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.quantities import lookup_quantity
from edge_agent.records import Quality

__all__ = ["Sampler", "SamplingPolicy"]

_ON_CHANGE = frozenset({"tariff_period", "subscribed_power", "apparent_power_max"})


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """How often a TIC line's values are kept (docs/configuration.md, ``[[tic]]``)."""

    index_interval_s: float = 60.0
    max_interval_s: float = 300.0
    deadband_pct: float = 5.0
    deadband_va: float = 50.0
    deadband_a: float = 1.0
    deadband_v: float = 3.0

    def deadband(self, unit: str, last: float) -> float:
        """The smallest change of a value in ``unit`` worth a reading."""
        if unit == "V":
            return self.deadband_v
        absolute = {"VA": self.deadband_va, "W": self.deadband_va, "A": self.deadband_a}
        return max(absolute.get(unit, 0.0), abs(last) * self.deadband_pct / 100)


class Sampler:
    """Remembers what was kept, and when, to decide about the next frame."""

    def __init__(self, policy: SamplingPolicy) -> None:
        self.policy = policy
        #: Quantity → (value, monotonic seconds) of its last reading.
        self._kept: dict[str, tuple[float, float]] = {}
        self._indexes_at: float | None = None

    def select(self, values: dict[str, float], now_s: float
               ) -> list[tuple[str, float, Quality]]:
        """The values to store now, with their quality (an index gone backwards is suspect)."""
        policy = self.policy
        indexes_due = (self._indexes_at is None
                       or now_s - self._indexes_at >= policy.index_interval_s)
        chosen: list[tuple[str, float, Quality]] = []
        for quantity, value in values.items():
            kept = self._kept.get(quantity)
            quality = Quality.GOOD
            if _cumulative(quantity):
                if not indexes_due:
                    continue
                if kept is not None and value < kept[0]:
                    quality = Quality.SUSPECT
            elif kept is not None and now_s - kept[1] < policy.max_interval_s and (
                    not self._moved(quantity, value, kept[0])):
                continue
            self._kept[quantity] = (value, now_s)
            chosen.append((quantity, value, quality))
        if indexes_due and any(_cumulative(quantity) for quantity in values):
            self._indexes_at = now_s
        return chosen

    def _moved(self, quantity: str, value: float, last: float) -> bool:
        """Whether ``value`` is far enough from the last kept one to be kept."""
        change = abs(value - last)
        spec = lookup_quantity(quantity)
        if change == 0 or spec is None or spec.name in _ON_CHANGE:
            return change != 0
        return change >= self.policy.deadband(spec.unit, last)


def _cumulative(quantity: str) -> bool:
    spec = lookup_quantity(quantity)
    return spec is not None and spec.cumulative
