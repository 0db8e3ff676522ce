"""A polled Modbus device: its read plan, its schedule and its health counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from edge_agent.drivers.modbus.cost import factory_cost, line_cost
from edge_agent.drivers.modbus.planner import ReadRequest, plan_reads
from edge_agent.profiles.models import DeviceProfile
from edge_agent.quantities import lookup_quantity
from edge_agent.records import Quality, Reading

if TYPE_CHECKING:
    from edge_agent.drivers.modbus.link import LinkSettings

__all__ = ["DeviceHealth", "PolledDevice"]


@dataclass(slots=True)
class DeviceHealth:
    """Counters an installer reads in ``edge-agent status`` to find a bad device or line."""

    online: bool | None = None
    polls: int = 0
    failed_polls: int = 0
    requests: int = 0
    timeouts: int = 0
    frame_errors: int = 0
    transport_errors: int = 0
    exceptions: Counter[int] = field(default_factory=Counter)
    consecutive_failures: int = 0
    #: Slots of its grid the device was not polled at: the bus, the machine or the
    #: outbox writer could not keep up (edge_agent/overload.py).
    late: int = 0
    last_ok_ms: int | None = None
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the status file."""
        return {
            "online": self.online,
            "polls": self.polls,
            "failed_polls": self.failed_polls,
            "requests": self.requests,
            "timeouts": self.timeouts,
            "frame_errors": self.frame_errors,
            "transport_errors": self.transport_errors,
            "exceptions": {str(code): n for code, n in sorted(self.exceptions.items())},
            "consecutive_failures": self.consecutive_failures,
            "late": self.late,
            "last_ok_ms": self.last_ok_ms,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class PolledDevice:
    """One device on a bus, as the scheduler sees it."""

    name: str
    unit: int
    profile: DeviceProfile
    interval_s: float
    min_silence_s: float
    requests: list[ReadRequest]
    health: DeviceHealth = field(default_factory=DeviceHealth)
    next_due: float = 0.0
    _last_cumulative: dict[str, float] = field(default_factory=dict)
    #: The profile's cumulative quantities (energies, volumes), found once.
    _cumulative: frozenset[str] | None = None

    @classmethod
    def from_profile(
        cls,
        name: str,
        unit: int,
        profile: DeviceProfile,
        *,
        interval_s: float,
        quantities: list[str] | None = None,
        min_silence_ms: float | None = None,
        line: LinkSettings | None = None,
    ) -> PolledDevice:
        """Plan the reads of ``quantities`` (all of the profile's when None), weighing holes
        on ``line`` (the profile's factory serial line when None)."""
        wanted = quantities if quantities is not None else list(profile.points)
        points = [profile.points[q] for q in wanted]
        silence = profile.limits.min_silence_ms if min_silence_ms is None else min_silence_ms
        cost = factory_cost(profile) if line is None else line_cost(line, silence / 1000.0)
        return cls(name, unit, profile, interval_s, silence / 1000.0,
                   plan_reads(points, profile.limits, cost))

    def check_counters(self, readings: list[Reading]) -> list[Reading]:
        """Flag cumulative quantities that went backwards (meter reset, rollover or swap)."""
        cumulative = self._cumulative
        if cumulative is None:
            cumulative = self._cumulative = frozenset(
                q for q in self.profile.points
                if (spec := lookup_quantity(q)) is not None and spec.cumulative)
        return [self._check_counter(reading) if reading.quantity in cumulative else reading
                for reading in readings]

    def _check_counter(self, reading: Reading) -> Reading:
        spec = lookup_quantity(reading.quantity)
        if spec is None or not spec.cumulative or reading.quality is not Quality.GOOD:
            return reading
        previous = self._last_cumulative.get(reading.quantity)
        self._last_cumulative[reading.quantity] = reading.value
        if previous is not None and reading.value < previous:
            return replace(reading, quality=Quality.SUSPECT)
        return reading
