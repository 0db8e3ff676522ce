"""What a car park is: the ``[[car_parks]]`` entries of the gateway file.

Entries and exits come from pulse counters (an SFAR-4DI ``pulse_count_N``: the increase is
counted) or from digital inputs (a loop or barrier contact ``input_state_N``: rising edges
are counted); the kind follows from the quantity, so an installer names only the input.
Cross-checks that need the rest of the gateway (declared devices, relay channels held by
gates, pedestals and rule latches) are in :func:`car_park_problem`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from edge_agent.quantities import lookup_quantity, suggest_quantity
from edge_agent.schema import Strict, at_field

__all__ = ["CarParkConfig", "SignConfig", "SourceConfig", "car_park_problem", "source_kind"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def source_kind(quantity: str) -> Literal["counter", "edge"] | None:
    """``counter`` for a cumulative quantity, ``edge`` for a boolean one, else None."""
    spec = lookup_quantity(quantity)
    if spec is None:
        return None
    if spec.cumulative:
        return "counter"
    return "edge" if spec.unit == "bool" else None


class SourceConfig(Strict, frozen=True, kw_only=True):
    """One lane's vehicle count: a device and the quantity that counts or detects vehicles."""

    device: Annotated[str, Meta(description="A device of the gateway file (Modbus or LoRa).")]
    quantity: Annotated[str, Meta(description="pulse_count_N (counted increase) or "
                                              "input_state_N (counted rising edges).")]

    def __post_init__(self) -> None:
        value = self.quantity
        if lookup_quantity(value) is None:
            close = suggest_quantity(value)
            hint = f"did you mean '{close}'?" if close else "see device_profiles/README.md"
            raise at_field("quantity", f"'{value}' is not in the quantity vocabulary; {hint}")
        if source_kind(value) is None:
            raise at_field("quantity", f"'{value}' neither counts (pulse_count_N) nor switches "
                           "(input_state_N): vehicles cannot be counted on it")


class SignConfig(Strict, frozen=True, kw_only=True):
    """The relay that lights the "COMPLET" sign while the car park is full."""

    board: Annotated[str, Meta(description="A relay board: a device of the gateway file.")]
    channel: Annotated[int, Meta(ge=1, le=32)]


class CarParkConfig(Strict, frozen=True, kw_only=True):
    """One car park: capacity, lanes, spot sensors, thresholds, sign and drift correction."""

    #: The device name of its readings and events: at most 128 characters, as devices.
    name: Annotated[str, Meta(pattern=_NAME, max_length=128)]
    capacity: Annotated[int, Meta(ge=1, le=100_000)]
    entries: list[SourceConfig] = msgspec.field(default_factory=list)
    exits: list[SourceConfig] = msgspec.field(default_factory=list)
    spots: Annotated[list[str], Meta(
        description="LoRa spot sensors (spot_occupied) of this car park.")
    ] = msgspec.field(default_factory=list)
    occupancy_from_spots: Annotated[bool, Meta(
        description="Every spot is sensed: occupancy is the occupied spots.")] = False
    full_at: Annotated[int, Meta(ge=1, description="Full from here; capacity when omitted.")
                       ] | None = None
    available_below: Annotated[int, Meta(
        ge=1, description="Available again below this; full_at - 1 when omitted.")] | None = None
    sign: SignConfig | None = None
    reset_at: Annotated[str, Meta(description="HH:MM local time of a daily reset.")
                        ] | None = None
    reset_to: Annotated[int, Meta(ge=0, description="The occupancy set at reset_at.")] = 0
    time_zone: Annotated[str, Meta(description="The zone of reset_at.")] = "Europe/Paris"

    def __post_init__(self) -> None:
        if self.reset_at is not None:
            try:
                dt.time.fromisoformat(self.reset_at)
            except ValueError:
                raise at_field("reset_at", f"reset_at '{self.reset_at}' is not HH:MM, e.g. "
                               "\"04:00\"") from None
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise at_field("time_zone", f"'{self.time_zone}' is not an IANA time zone, e.g. "
                           "\"Europe/Paris\"") from None
        self._consistent()

    def _consistent(self) -> None:
        if not (self.entries or self.exits or self.occupancy_from_spots):
            raise ValueError("give entries and exits to count, or occupancy_from_spots = true "
                             "with a sensor on every spot")
        if self.occupancy_from_spots and len(set(self.spots)) != self.capacity:
            raise ValueError(f"occupancy_from_spots needs a sensor on every spot: {self.capacity}"
                             f" spots, {len(set(self.spots))} sensors in spots")
        if len(set(self.spots)) != len(self.spots):
            raise ValueError("a spot sensor is listed twice in spots")
        if self.full_level() > self.capacity:
            raise ValueError(f"full_at {self.full_at} is above the capacity {self.capacity}")
        if not 1 <= self.available_level() <= self.full_level():
            raise ValueError(f"available_below {self.available_below} must be 1..full_at "
                             f"({self.full_level()}): below it the car park is available again")
        if self.reset_to > self.capacity:
            raise ValueError(f"reset_to {self.reset_to} is above the capacity {self.capacity}")

    def full_level(self) -> int:
        """The occupancy from which the car park is full."""
        return self.capacity if self.full_at is None else self.full_at

    def available_level(self) -> int:
        """The car park is available again once the occupancy is below this."""
        if self.available_below is not None:
            return self.available_below
        return max(1, self.full_level() - 1)

    def reset_time(self) -> dt.time | None:
        """The daily reset's local time, or None."""
        return None if self.reset_at is None else dt.time.fromisoformat(self.reset_at)

    def sources(self) -> list[SourceConfig]:
        """Every entry and exit source."""
        return [*self.entries, *self.exits]


def car_park_problem(park: CarParkConfig, devices: Iterable[str],
                     reserved: Mapping[tuple[str, int], str]) -> str | None:
    """Why ``park`` cannot run on this gateway, or None.

    ``devices`` are the gateway's device names; ``reserved`` maps relay channels held by
    gates, pedestals and rule latches to their owner: the sign needs a channel of its own.
    """
    names = sorted(set(devices))
    wanted = [("source", source.device) for source in park.sources()]
    wanted += [("spot sensor", spot) for spot in park.spots]
    wanted += [("sign board", park.sign.board)] if park.sign is not None else []
    for what, name in wanted:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"declared: {', '.join(names) or 'none'}")
            return f"car park {park.name}: {what} '{name}' is not declared; {hint}"
    if park.sign is not None and (park.sign.board, park.sign.channel) in reserved:
        owner = reserved[park.sign.board, park.sign.channel]
        return (f"car park {park.name}: sign channel {park.sign.channel} of {park.sign.board} "
                f"belongs to {owner}; give the sign a channel of its own")
    return None
