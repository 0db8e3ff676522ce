"""Vehicles counted from one lane's readings: counter increases and rising edges. Pure.

A pulse counter that goes backwards is never negative traffic: a value just past the top of
a 16- or 32-bit range is a wrap (the pulses across it are counted), anything else a counter
restarted from zero (power loss, a technician's reset), whose new value is what it counted
since; a new value beyond the capacity is no plausible count after a restart (another
counter was put in), so it only becomes the new baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.parking.config import source_kind

__all__ = ["Count", "LaneCounter"]

_WIDTHS = (16, 32)


@dataclass(frozen=True, slots=True)
class Count:
    """What one reading of a lane says: vehicles that went through, and whether it went back."""

    vehicles: int = 0
    went_back: bool = False


class LaneCounter:
    """The last value seen on one lane's input, and the vehicles each new value means."""

    def __init__(self, quantity: str, capacity: int, last: float | None = None) -> None:
        self.edges = source_kind(quantity) == "edge"
        self.capacity = capacity
        #: The last counter value or input state (1.0 closed); None until the first reading.
        self.last = last

    def feed(self, value: float) -> Count:
        """The vehicles ``value`` adds since the previous reading (none for the first)."""
        previous, self.last = self.last, value
        if previous is None:
            return Count()
        if self.edges:
            return Count(1 if value >= 0.5 > previous else 0)
        if value >= previous:
            return Count(round(value - previous))
        for width in _WIDTHS:
            top = float(2**width)
            if top * 15 / 16 <= previous < top and value < top / 16:
                return Count(round(value + top - previous))
        return Count(round(value) if value <= self.capacity else 0, went_back=True)
