"""The one vocabulary of quantity names and units that every reading uses.

A quantity name is a base name, optionally followed by a qualifier: a phase (``voltage_l1``),
a line-to-line pair (``voltage_l1_l2``), the neutral (``current_n``) or a channel number
(``pulse_count_3``). Each base has one canonical unit; profiles scale device values into it,
so the hub never has to guess whether ``active_power`` is in W or kW. device_profiles/README.md
lists the same table for installers; a test keeps the two in step.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

__all__ = [
    "QUALIFIERS",
    "QUANTITIES",
    "QuantitySpec",
    "lookup_quantity",
    "rounded",
    "suggest_quantity",
]


@dataclass(frozen=True, slots=True)
class QuantitySpec:
    """A base quantity: its canonical unit, the resolution worth keeping, what it means."""

    name: str
    unit: str
    resolution: float
    cumulative: bool
    description: str


def _spec(name: str, unit: str, resolution: float, description: str, *, cumulative: bool = False
          ) -> tuple[str, QuantitySpec]:
    return name, QuantitySpec(name, unit, resolution, cumulative, description)


QUANTITIES: dict[str, QuantitySpec] = dict(
    [
        _spec("voltage", "V", 0.1, "RMS voltage (phase-neutral, or line-line with a pair)"),
        _spec("current", "A", 0.001, "RMS current"),
        _spec("active_power", "W", 0.1, "active power, positive when importing"),
        _spec("apparent_power", "VA", 0.1, "apparent power"),
        _spec("reactive_power", "var", 0.1, "reactive power"),
        _spec("power_factor", "1", 0.001, "power factor, -1 to 1"),
        _spec("phase_angle", "deg", 0.1, "phase angle between voltage and current"),
        _spec("frequency", "Hz", 0.01, "grid frequency"),
        _spec("active_energy_import", "kWh", 0.001, "imported active energy", cumulative=True),
        _spec("active_energy_export", "kWh", 0.001, "exported active energy", cumulative=True),
        _spec("active_energy_total", "kWh", 0.001, "import + export active energy",
              cumulative=True),
        _spec("reactive_energy_import", "kvarh", 0.001, "imported reactive energy",
              cumulative=True),
        _spec("reactive_energy_export", "kvarh", 0.001, "exported reactive energy",
              cumulative=True),
        _spec("reactive_energy_total", "kvarh", 0.001, "total reactive energy", cumulative=True),
        _spec("apparent_energy", "kVAh", 0.001, "apparent energy", cumulative=True),
        _spec("charge", "Ah", 0.001, "charge delivered", cumulative=True),
        _spec("active_power_demand", "W", 0.1, "active power demand over the demand period"),
        _spec("active_power_demand_max", "W", 0.1, "maximum active power demand"),
        _spec("current_demand", "A", 0.001, "current demand over the demand period"),
        _spec("current_demand_max", "A", 0.001, "maximum current demand"),
        _spec("voltage_thd", "%", 0.01, "voltage total harmonic distortion"),
        _spec("current_thd", "%", 0.01, "current total harmonic distortion"),
        _spec("pulse_count", "1", 1.0, "pulses counted on an input since the counter's reset",
              cumulative=True),
        _spec("water_volume", "m3", 0.001, "water volume delivered", cumulative=True),
        _spec("flow_rate", "m3/h", 0.001, "instantaneous water flow"),
        _spec("relay_state", "bool", 1.0, "relay output: 1 energised, 0 released"),
        _spec("input_state", "bool", 1.0, "digital input: 1 closed, 0 open"),
        _spec("temperature", "°C", 0.1, "air or probe temperature"),
        _spec("humidity", "%", 0.1, "relative humidity"),
        _spec("pressure", "hPa", 0.01, "barometric pressure"),
        _spec("co2", "ppm", 1.0, "carbon dioxide concentration"),
        _spec("tvoc", "ug/m3", 1.0, "total volatile organic compounds"),
        _spec("tvoc_index", "1", 0.01, "volatile organic compounds as an air-quality level"),
        _spec("hcho", "mg/m3", 0.01, "formaldehyde concentration"),
        _spec("pm2_5", "ug/m3", 1.0, "fine particles up to 2.5 µm"),
        _spec("pm10", "ug/m3", 1.0, "particles up to 10 µm"),
        _spec("illuminance", "lx", 1.0, "light level in lux"),
        _spec("light_level", "1", 1.0, "light level as a device-specific step (0 dark)"),
        _spec("motion_detected", "bool", 1.0, "presence sensor: 1 motion seen, 0 idle"),
        _spec("motion_count", "1", 1.0, "motions counted since the previous report"),
        _spec("distance", "m", 0.001, "distance from the sensor to a surface"),
        _spec("water_level", "m", 0.001, "water height above the reference"),
        _spec("spot_occupied", "bool", 1.0, "parking spot: 1 a vehicle is on it, 0 free"),
        _spec("previous_state_duration", "s", 1.0, "how long the previous state lasted"),
        _spec("parking_occupancy", "1", 1.0, "vehicles in a car park"),
        _spec("parking_capacity", "1", 1.0, "spaces in a car park"),
        _spec("door_open", "bool", 1.0, "door or window contact: 1 open, 0 closed"),
        _spec("open_count", "1", 1.0, "openings counted by the device", cumulative=True),
        _spec("last_open_duration", "s", 1.0, "how long the last opening lasted"),
        _spec("water_leak", "bool", 1.0, "leak probe: 1 water detected, 0 dry"),
        _spec("tamper", "bool", 1.0, "tamper switch: 1 removed or opened, 0 in place"),
        _spec("battery", "%", 1.0, "battery charge"),
        _spec("battery_voltage", "V", 0.001, "battery voltage"),
        _spec("link_margin", "dB", 1.0, "radio link margin reported by the device"),
        _spec("rssi", "dBm", 1.0, "received signal strength of the last uplink"),
        _spec("snr", "dB", 0.1, "signal-to-noise ratio of the last uplink"),
        _spec("apparent_power_max", "VA", 0.1, "highest apparent power of the day"),
        _spec("subscribed_power", "VA", 0.1, "contracted apparent power"),
        _spec("tariff_period", "1", 1.0, "current tariff period index, 1-based"),
    ]
)

#: Qualifiers a base name may carry, after an underscore.
QUALIFIERS: tuple[str, ...] = (
    "l1", "l2", "l3", "n", "l1_l2", "l2_l3", "l3_l1", *(str(i) for i in range(1, 17)),
)

_NAME = re.compile(
    r"^(?P<base>[a-z][a-z0-9_]*?)(?:_(?P<qualifier>" + "|".join(
        sorted(QUALIFIERS, key=len, reverse=True)) + r"))?$"
)


def lookup_quantity(name: str) -> QuantitySpec | None:
    """The base quantity of ``name``, or None when the name is not in the vocabulary."""
    if name in QUANTITIES:
        return QUANTITIES[name]
    match = _NAME.match(name)
    if match is None or match.group("qualifier") is None:
        return None
    return QUANTITIES.get(match.group("base"))


def suggest_quantity(name: str) -> str | None:
    """The closest valid quantity name, for a "did you mean" hint."""
    candidates = list(QUANTITIES)
    candidates += [f"{base}_{q}" for base in QUANTITIES for q in QUALIFIERS]
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def rounded(quantity: str, value: float) -> float | None:
    """``value`` to the quantity's resolution, for people (230.8 V, not 230.76486206054688).

    None for NaN or infinity, which JSON cannot carry. Stored readings keep every digit.
    """
    if not math.isfinite(value):
        return None
    spec = lookup_quantity(quantity)
    if spec is None:
        return value
    decimals = max(0, -math.floor(math.log10(spec.resolution)))
    return round(value, decimals)
