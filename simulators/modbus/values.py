"""Realistic values for a simulated device, evolving with elapsed time.

Each phase has a base load that drifts slowly (sine waves of a few minutes) with a little
noise on top; everything electrical derives from it, so a meter's readings agree with each
other: apparent power is P / PF, current is S / V, totals are the sum of the phases and the
energy counters integrate power. Counters only grow. Relays and inputs hold what was last set.

The model knows quantity names only (from the vocabulary in edge_agent.quantities); how they
are laid out in registers is the device's business.
"""

from __future__ import annotations

import cmath
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from edge_agent.quantities import lookup_quantity

__all__ = ["ValueModel"]

_PHASES = ("l1", "l2", "l3")
_HELD = frozenset({"relay_state", "input_state"})
_ELECTRICAL = frozenset({
    "current", "active_power", "apparent_power", "reactive_power", "power_factor",
    "phase_angle", "frequency", "active_power_demand", "active_power_demand_max",
    "current_demand", "current_demand_max",
})
#: Export and reactive energy move with import, at these fractions of its rate.
_EXPORT_SHARE = 0.02
_SQRT3 = math.sqrt(3.0)
_J_PER_KWH = 3.6e6


@dataclass(frozen=True, slots=True)
class _Phase:
    """The electrical state of one phase (or of the whole meter, for totals)."""

    voltage: float
    power: float
    apparent: float
    current: float

    @property
    def power_factor(self) -> float:
        return self.power / self.apparent if self.apparent else 1.0

    @property
    def reactive(self) -> float:
        return math.sqrt(max(self.apparent**2 - self.power**2, 0.0))

    @property
    def angle(self) -> float:
        return math.degrees(math.acos(max(-1.0, min(1.0, self.power_factor))))


def _split(name: str) -> tuple[str, str]:
    """Base quantity and qualifier: ``voltage_l1_l2`` gives ``("voltage", "l1_l2")``."""
    spec = lookup_quantity(name)
    if spec is None:
        raise ValueError(f"unknown quantity {name!r}")
    return spec.name, name[len(spec.name) + 1 :]


class ValueModel:
    """Current values of a set of quantities; :meth:`advance` moves them to a new time."""

    def __init__(self, quantities: Iterable[str], *, now: float, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        rng = self._rng
        self._names = {name: _split(name) for name in quantities}
        qualifiers = {qualifier for _, qualifier in self._names.values()}
        three_phase = bool(qualifiers & {"l2", "l3", "l1_l2", "l2_l3", "l3_l1"})
        self._phases = _PHASES if three_phase else _PHASES[:1]
        self._start = now
        self._last = now
        self._base_power = {p: rng.uniform(300.0, 2400.0) for p in self._phases}
        self._shift = {p: rng.uniform(0.0, math.tau) for p in self._phases}
        self._flow = {q: rng.uniform(0.2, 1.5) for q in qualifiers}
        self._pulse_rate = {q: rng.uniform(0.2, 2.0) for q in qualifiers}
        self._pinned: dict[str, float] = {}
        self._held = {name: 0.0 for name, (base, _) in self._names.items() if base in _HELD}
        self._values: dict[str, float] = {}
        self._snapshot(now)
        energy = rng.uniform(200.0, 4000.0)
        self._counters = {
            name: self._initial_counter(base, qualifier, energy)
            for name, (base, qualifier) in self._names.items()
            if self._cumulative(name)
        }
        self._values.update(self._counters)

    @staticmethod
    def _cumulative(name: str) -> bool:
        spec = lookup_quantity(name)
        return spec is not None and spec.cumulative

    def _share(self, qualifier: str) -> float:
        return 1.0 / len(self._phases) if qualifier in self._phases else 1.0

    def _initial_counter(self, base: str, qualifier: str, energy: float) -> float:
        share = self._share(qualifier)
        initial = {
            "active_energy_import": energy,
            "active_energy_export": _EXPORT_SHARE * energy,
            "active_energy_total": (1 + _EXPORT_SHARE) * energy,
            "reactive_energy_import": 0.3 * energy,
            "reactive_energy_export": 0.3 * _EXPORT_SHARE * energy,
            "reactive_energy_total": 0.3 * (1 + _EXPORT_SHARE) * energy,
            "apparent_energy": 1.1 * energy,
            "charge": energy * 1000.0 / 230.0,
        }
        if base == "pulse_count":
            return float(self._rng.randint(0, 20000))
        if base == "water_volume":
            return self._rng.uniform(10.0, 2000.0)
        return initial.get(base, 0.0) * share

    # -- public -------------------------------------------------------------------------

    def value(self, quantity: str) -> float:
        """The value at the last :meth:`advance` (or the last :meth:`set_value`)."""
        return self._values[quantity]

    def set_value(self, quantity: str, value: float) -> None:
        """Override a value: a counter jumps there and keeps growing, anything else stays put.

        Relays and inputs simply hold the value; other instantaneous quantities are pinned
        until :meth:`unpin`. A pinned active power drives the current, the apparent power and
        the counters too: pin 0 W and the meter stops.
        """
        if quantity not in self._names:
            raise KeyError(f"no quantity {quantity!r} in this model")
        if quantity in self._counters:
            self._counters[quantity] = float(value)
        elif quantity in self._held:
            self._held[quantity] = float(value)
        else:
            self._pinned[quantity] = float(value)
        self._values[quantity] = float(value)

    def unpin(self, quantity: str) -> None:
        """Let a pinned quantity evolve again from the next :meth:`advance`."""
        self._pinned.pop(quantity, None)

    def advance(self, now: float) -> None:
        """Move to time ``now``: new instantaneous values, counters grow by rate x elapsed."""
        elapsed = max(now - self._last, 0.0)
        self._last = max(now, self._last)
        self._snapshot(now)
        for name, (base, qualifier) in self._names.items():
            if name in self._counters:
                self._counters[name] += self._rate(base, qualifier) * elapsed
                self._values[name] = self._counters[name]

    # -- the physics ----------------------------------------------------------------------

    def _wave(self, t: float, period: float, phase: str, offset: float = 0.0) -> float:
        return math.sin(math.tau * t / period + self._shift.get(phase, 0.0) + offset)

    def _snapshot(self, now: float) -> None:
        t = now - self._start
        gauss = self._rng.gauss
        powers = {p: self._pinned.get(f"active_power_{p}", max(
            self._base_power[p] * (1 + 0.2 * self._wave(t, 300.0, p)) * (1 + gauss(0.0, 0.02)),
            0.0)) for p in self._phases}
        if (total := self._pinned.get("active_power")) is not None:
            # A pinned total spreads over the phases, so currents and counters follow it.
            load = sum(powers.values())
            powers = {p: total * (w / load if load else 1 / len(powers)) for p, w in powers.items()}
        states: dict[str, _Phase] = {}
        for p, power in powers.items():
            voltage = 230.0 + 2.0 * self._wave(t, 900.0, p, 1.0) + gauss(0.0, 0.3)
            pf = min(max(0.92 + 0.06 * self._wave(t, 600.0, p, 2.0) + gauss(0.0, 0.005), 0.8), 1.0)
            apparent = power / pf
            states[p] = _Phase(voltage, power, apparent, apparent / voltage)
        self._states = states
        self._frequency = 50.0 + 0.03 * self._wave(t, 120.0, "l1", 3.0) + gauss(0.0, 0.005)
        self._t = t
        for name, (base, qualifier) in self._names.items():
            if name in self._pinned:
                self._values[name] = self._pinned[name]
            elif name in self._held:
                self._values[name] = self._held[name]
            elif not self._cumulative(name):
                self._values[name] = self._instant(base, qualifier)

    def _electrical(self, qualifier: str) -> _Phase:
        """One phase, or the meter as a whole for any other qualifier."""
        if qualifier in self._states:
            return self._states[qualifier]
        phases = list(self._states.values())
        return _Phase(
            voltage=sum(s.voltage for s in phases) / len(phases),
            power=sum(s.power for s in phases),
            apparent=sum(s.apparent for s in phases),
            current=sum(s.current for s in phases) / len(phases),
        )

    def _neutral_current(self) -> float:
        currents = [s.current for s in self._states.values()]
        if len(currents) == 1:
            return currents[0]
        return abs(sum(i * cmath.exp(-1j * math.tau * k / 3) for k, i in enumerate(currents)))

    def _line_voltage(self, qualifier: str) -> float:
        ends = [self._states.get(p, self._states["l1"]).voltage for p in qualifier.split("_")]
        return _SQRT3 * sum(ends) / len(ends)

    def _base_load(self, qualifier: str) -> float:
        if qualifier in self._base_power:
            return self._base_power[qualifier]
        return sum(self._base_power.values())

    def _instant(self, base: str, qualifier: str) -> float:
        if base == "voltage":
            return self._voltage(qualifier)
        if base.startswith("current") and qualifier == "n":
            neutral = self._neutral_current()
            return 1.5 * neutral if base.endswith("_max") else neutral
        if base in _ELECTRICAL:
            return self._electrical_measure(base, qualifier)
        gauss = self._rng.gauss
        wave = self._wave(self._t, 1800.0, "l1", 4.0)
        noisy = {
            "voltage_thd": lambda: 1.5 + 0.3 * wave + gauss(0.0, 0.05),
            "current_thd": lambda: 8.0 + 2.0 * wave + gauss(0.0, 0.3),
            "flow_rate": lambda: self._flow_rate(qualifier),
        }
        return max(noisy[base](), 0.0) if base in noisy else 0.0

    def _voltage(self, qualifier: str) -> float:
        if "_" in qualifier:
            return self._line_voltage(qualifier)
        return 0.0 if qualifier == "n" else self._electrical(qualifier).voltage

    def _electrical_measure(self, base: str, qualifier: str) -> float:
        state = self._electrical(qualifier)
        load = self._base_load(qualifier)
        demand = load * (1 + 0.05 * self._wave(self._t, 1800.0, "l1", 4.0))
        measures = {
            "current": state.current,
            "active_power": state.power,
            "apparent_power": state.apparent,
            "reactive_power": state.reactive,
            "power_factor": state.power_factor,
            "phase_angle": state.angle,
            "frequency": self._frequency,
            "active_power_demand": demand,
            "active_power_demand_max": 1.25 * load,
            "current_demand": demand / 230.0,
            "current_demand_max": 1.25 * load / 230.0,
        }
        return measures[base]

    def _flow_rate(self, qualifier: str) -> float:
        wave = self._wave(self._t, 240.0, "l1", 5.0)
        return max(self._flow.get(qualifier, 0.5) * (1 + 0.3 * wave), 0.0)

    def _rate(self, base: str, qualifier: str) -> float:
        """How fast a counter grows, in its unit per second."""
        state = self._electrical(qualifier)
        per_second = {
            "active_energy_import": state.power / _J_PER_KWH,
            "active_energy_export": _EXPORT_SHARE * state.power / _J_PER_KWH,
            "active_energy_total": (1 + _EXPORT_SHARE) * state.power / _J_PER_KWH,
            "reactive_energy_import": state.reactive / _J_PER_KWH,
            "reactive_energy_export": _EXPORT_SHARE * state.reactive / _J_PER_KWH,
            "reactive_energy_total": (1 + _EXPORT_SHARE) * state.reactive / _J_PER_KWH,
            "apparent_energy": state.apparent / _J_PER_KWH,
            "charge": state.current / 3600.0,
            "pulse_count": self._pulse_rate.get(qualifier, 1.0),
            "water_volume": self._flow_rate(qualifier) / 3600.0,
        }
        return max(per_second.get(base, 0.0), 0.0)
