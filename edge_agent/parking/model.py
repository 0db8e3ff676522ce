"""One car park's occupancy: lanes and spot sensors in, readings, events and the sign out. Pure.

No I/O and no clock of its own: the caller passes readings and the time, so tests drive a
day in microseconds. Occupancy stays in 0..capacity: a count that would leave the range is
clamped and the clamp counted (a missed entry shows as an exit from an empty car park).
``parking_occupancy`` goes out on change at most once per :data:`PUBLISH_EVERY_MS`: a change
inside the window is held and the latest value goes out when the window closes (or at
:meth:`CarPark.flush`), so the last value is never lost. Full and available are decided at
once, with hysteresis, and drive the sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_agent.parking.config import CarParkConfig
from edge_agent.parking.counting import LaneCounter
from edge_agent.parking.schedule import next_reset_ms
from edge_agent.records import Event, Quality, Reading

__all__ = ["OCCUPANCY", "PUBLISH_EVERY_MS", "RESET_GRACE_MS", "CarPark", "Output", "Saved"]

OCCUPANCY = "parking_occupancy"
_CAPACITY = "parking_capacity"
_SPOT = "spot_occupied"
#: ``parking_occupancy`` goes out at most once per this.
PUBLISH_EVERY_MS = 10_000
#: A daily reset is done only this soon after its time; later (the gateway was down, its
#: clock was stepped) it is skipped: by 10:00 a car park is no longer empty.
RESET_GRACE_MS = 15 * 60_000
#: A wall clock further back than this before the next reset was stepped back: plan again.
_DAY_MS = 86_400_000


@dataclass(slots=True)
class Saved:
    """A car park's state as the state file keeps it across restarts."""

    occupancy: int = 0
    full: bool = False
    entries: int = 0
    exits: int = 0
    clamps: int = 0
    resets: int = 0
    counter_resets: int = 0
    #: Last value per lane, keyed ``device/quantity``: pulses counted while the gateway was
    #: down are counted at its first reading after the restart.
    lanes: dict[str, float] = field(default_factory=dict)
    #: Last known state of each spot sensor (sensors report only on change).
    spots: dict[str, bool] = field(default_factory=dict)


@dataclass(slots=True)
class Output:
    """What the car park asks the gateway to store and do."""

    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: The sign's new state (True: on), None when it does not change.
    sign: bool | None = None

    def __bool__(self) -> bool:
        return bool(self.readings or self.events or self.sign is not None)


class CarPark:
    """Occupancy, counters, thresholds and reset schedule of one ``[[car_parks]]`` entry."""

    def __init__(self, config: CarParkConfig, saved: Saved | None = None) -> None:
        self.config = config
        self.state = saved if saved is not None else Saved()
        self.state.occupancy = min(max(self.state.occupancy, 0), config.capacity)
        self.state.spots = {k: v for k, v in self.state.spots.items() if k in config.spots}
        self._lanes: dict[tuple[str, str], tuple[str, LaneCounter]] = {}
        for role, sources in (("entry", config.entries), ("exit", config.exits)):
            for source in sources:
                key = f"{source.device}/{source.quantity}"
                self._lanes[source.device, source.quantity] = (role, LaneCounter(
                    source.quantity, config.capacity, self.state.lanes.get(key)))
        #: The devices whose readings matter here.
        self.devices = {device for device, _ in self._lanes} | set(config.spots)
        #: Grows with every change of the state: the service saves when it moved.
        self.revision = 0
        self._published_ms: int | None = None
        self._pending = False
        self.next_reset_ms: int | None = None

    @property
    def name(self) -> str:
        """The car park's name: the device of its readings and events."""
        return self.config.name

    def start(self, now_ms: int) -> Output:
        """Capacity and occupancy as they stand, and the full state checked against them."""
        out = Output(readings=[Reading(self.name, _CAPACITY, now_ms,
                                       float(self.config.capacity))])
        self._publish(now_ms, out)
        self._plan_reset(now_ms)
        self._check_full(now_ms, out)
        return out

    def feed(self, readings: list[Reading], now_ms: int) -> Output:
        """Count what ``readings`` say about this car park's lanes and spots."""
        out = Output()
        before = self.state.occupancy
        for reading in readings:
            if reading.quality is Quality.INVALID:
                continue
            lane = self._lanes.get((reading.device, reading.quantity))
            if lane is not None:
                self._count(*lane, reading)
            elif reading.quantity == _SPOT and reading.device in self.config.spots:
                occupied = reading.value >= 0.5
                self.revision += self.state.spots.get(reading.device) is not occupied
                self.state.spots[reading.device] = occupied
        self._follow_spots()
        if self.state.occupancy != before:
            self._changed(now_ms, out)
        return out

    def tick(self, now_ms: int) -> Output:
        """Send a held occupancy whose window closed; do a reset whose time came."""
        out = Output()
        if self.next_reset_ms is not None and (
                now_ms >= self.next_reset_ms or self.next_reset_ms - now_ms > _DAY_MS):
            if 0 <= now_ms - self.next_reset_ms <= RESET_GRACE_MS:
                self._reset(now_ms, out)
            self._plan_reset(now_ms)
        if self._pending and self._window_closed(now_ms):
            self._publish(now_ms, out)
        return out

    def flush(self, now_ms: int) -> Output:
        """Send a held occupancy now (the gateway is stopping)."""
        out = Output()
        if self._pending:
            self._publish(now_ms, out)
        return out

    @property
    def holding(self) -> bool:
        """A changed occupancy waits for its window to close."""
        return self._pending

    def spots_occupied(self) -> tuple[int, int]:
        """Occupied spots and spots whose state is known."""
        return sum(self.state.spots.values()), len(self.state.spots)

    def report(self) -> dict[str, Any]:
        """Occupancy and counters, for ``status.json``."""
        state, capacity = self.state, self.config.capacity
        occupied, known = self.spots_occupied()
        return {"name": self.name, "occupancy": state.occupancy, "capacity": capacity,
                "free": capacity - state.occupancy, "full": state.full,
                "entries": state.entries, "exits": state.exits, "clamps": state.clamps,
                "resets": state.resets, "counter_resets": state.counter_resets,
                "spots": len(self.config.spots), "spots_known": known,
                "spots_occupied": occupied, "from_spots": self._spots_rule(),
                "next_reset_ms": self.next_reset_ms}

    def _count(self, role: str, lane: LaneCounter, reading: Reading) -> None:
        self.revision += lane.last != reading.value
        count = lane.feed(reading.value)
        self.state.lanes[f"{reading.device}/{reading.quantity}"] = reading.value
        self.state.counter_resets += count.went_back
        if not count.vehicles:
            return
        if role == "entry":
            self.state.entries += count.vehicles
        else:
            self.state.exits += count.vehicles
        if not self._spots_rule():
            self._add(count.vehicles if role == "entry" else -count.vehicles)

    def _add(self, delta: int) -> None:
        wanted = self.state.occupancy + delta
        occupancy = min(max(wanted, 0), self.config.capacity)
        self.state.clamps += occupancy != wanted
        self.state.occupancy = occupancy

    def _spots_rule(self) -> bool:
        """Whether the spot sensors decide the occupancy now (every one has reported)."""
        return self.config.occupancy_from_spots and len(self.state.spots) == len(
            self.config.spots)

    def _follow_spots(self) -> None:
        if self._spots_rule():
            self.state.occupancy = sum(self.state.spots.values())

    def _reset(self, now_ms: int, out: Output) -> None:
        if self._spots_rule():
            return  # the sensors are the truth: nothing to correct
        drift = self.state.occupancy - self.config.reset_to
        self.state.resets += 1
        self.revision += 1
        out.events.append(Event("car_park.reset", self.name, now_ms, {
            "occupancy": self.config.reset_to, "capacity": self.config.capacity,
            "before": self.state.occupancy, "drift": drift}))
        if drift:
            self.state.occupancy = self.config.reset_to
            self._changed(now_ms, out)

    def _plan_reset(self, now_ms: int) -> None:
        at = self.config.reset_time()
        if at is not None:
            self.next_reset_ms = next_reset_ms(now_ms, at, self.config.time_zone)

    def _changed(self, now_ms: int, out: Output) -> None:
        self._check_full(now_ms, out)
        if self._window_closed(now_ms):
            self._publish(now_ms, out)
        else:
            self._pending = True

    def _window_closed(self, now_ms: int) -> bool:
        """Whether a change may go out now; a wall clock stepped back closes the window."""
        last = self._published_ms
        return last is None or not 0 <= now_ms - last < PUBLISH_EVERY_MS

    def _publish(self, now_ms: int, out: Output) -> None:
        out.readings.append(Reading(self.name, OCCUPANCY, now_ms, float(self.state.occupancy)))
        self._published_ms, self._pending = now_ms, False

    def _check_full(self, now_ms: int, out: Output) -> None:
        state, config = self.state, self.config
        if not state.full and state.occupancy >= config.full_level():
            state.full = True
        elif state.full and state.occupancy < config.available_level():
            state.full = False
        else:
            return
        kind = "car_park.full" if state.full else "car_park.available"
        out.events.append(Event(kind, self.name, now_ms, {
            "occupancy": state.occupancy, "capacity": config.capacity,
            "free": config.capacity - state.occupancy, "full_at": config.full_level(),
            "available_below": config.available_level()}))
        out.sign = state.full if config.sign is not None else None

