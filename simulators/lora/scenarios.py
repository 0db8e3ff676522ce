"""What the simulated sensors report, step by step: a flood, a car-park day, air, hostility.

A scenario is an endless iterator of steps; the command line (and the demo) publish one step
at a time. Every sensor of a scenario is listed in ``SENSORS`` so a gateway file can be
written for them (``python -m simulators.lora --print-config``).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from simulators.lora.chirpstack import SimulatedSensor

__all__ = ["SCENARIOS", "SENSORS", "Step", "flood_distance", "scenario"]


@dataclass(frozen=True, slots=True)
class Step:
    """One message: an uplink with values, or raw bytes on an fPort, or a raw MQTT payload."""

    sensor: SimulatedSensor
    values: dict[str, float] | None = None
    f_port: int = 0
    raw: bytes | None = None
    #: Not an uplink at all: these bytes on the sensor's ``up`` topic.
    garbage: bytes | None = None


#: The sensors of every scenario: a flood-road level sensor, parking spots, air, a door.
SENSORS: dict[str, SimulatedSensor] = {
    sensor.name: sensor for sensor in (
        SimulatedSensor("level-d982", "a84041000181c061", "dragino-ldds75"),
        SimulatedSensor("spot-1", "70b3d5e75e003a01", "bosch-tps110"),
        SimulatedSensor("spot-2", "70b3d5e75e003a02", "bosch-tps110"),
        SimulatedSensor("spot-3", "70b3d5e75e003a03", "nwave-nps405"),
        SimulatedSensor("spot-4", "70b3d5e75e003a04", "nwave-nps405"),
        SimulatedSensor("air-school", "24e124707c481005", "milesight-am307"),
        SimulatedSensor("door-pump-house", "24e124538b223344", "milesight-ws301"),
    )
}
_STRANGER = SimulatedSensor("stranger", "00000000000bad00", "bosch-tps110")

#: Distance from the sensor to the water, in m: dry road at 2.0 m, a flood peak at 0.6 m.
_DRY_M, _PEAK_M = 2.0, 0.6


def flood_distance(step: int, period: int = 40) -> float:
    """The water rises (distance falls) for half a period, then recedes, and again."""
    phase = (step % period) / period
    return round(_DRY_M - (_DRY_M - _PEAK_M) * math.sin(math.pi * phase), 3)


def _flood() -> Iterator[Step]:
    sensor = SENSORS["level-d982"]
    for step in itertools.count():
        yield Step(sensor, {"distance": flood_distance(step), "battery_voltage": 3.6})


def _car_park_day(seed: int) -> Iterator[Step]:
    rng = random.Random(seed)
    spots = [SENSORS[f"spot-{i}"] for i in range(1, 5)]
    occupied = dict.fromkeys((spot.name for spot in spots), 0)
    for hour in itertools.cycle(range(24)):
        busy = 0.85 if 8 <= hour < 19 else 0.15  # the share of spots taken at that hour
        for spot in spots:
            now = int(rng.random() < busy)
            if now != occupied[spot.name]:
                occupied[spot.name] = now
                yield Step(spot, {"spot_occupied": now, "previous_state_duration": 1800})


def _air(seed: int) -> Iterator[Step]:
    rng = random.Random(seed)
    sensor = SENSORS["air-school"]
    for step in itertools.count():
        co2 = 450 + 900 * max(0.0, math.sin(math.pi * (step % 30) / 30)) + rng.uniform(-20, 20)
        yield Step(sensor, {"co2": round(co2), "temperature": 21.5, "humidity": 48,
                            "pressure": 1012.4, "battery": 90})


def _hostile(seed: int) -> Iterator[Step]:
    rng = random.Random(seed)
    spot, level = SENSORS["spot-1"], SENSORS["level-d982"]
    fixed = (
        Step(spot, garbage=b'{"deviceInfo": {"devEui": "0101010101010101"}}'),
        Step(level, f_port=99, raw=b"\x0d\x0a\x07\xe9\x00\x00\x00\x01"),  # wrong fPort
        Step(level, f_port=2, raw=b"\x0d\x0a\x07"),  # truncated
        Step(_STRANGER, {"spot_occupied": 1}),  # an unknown DevEUI
    )
    while True:
        yield Step(spot, garbage=rng.randbytes(rng.randint(0, 40)))
        yield from fixed


def _all(seed: int) -> Iterator[Step]:
    streams = [_flood(), _car_park_day(seed), _air(seed), _hostile(seed)]
    for stream in itertools.cycle(streams):
        yield next(stream)


#: Scenario names for the command line.
SCENARIOS = ("flood", "car-park", "air", "hostile", "all")


def scenario(name: str, seed: int = 1) -> Iterator[Step]:
    """The steps of scenario ``name``."""
    if name == "flood":
        return _flood()
    return {"car-park": _car_park_day, "air": _air, "hostile": _hostile, "all": _all}[name](seed)
