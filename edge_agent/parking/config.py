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
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.quantities import lookup_quantity, suggest_quantity

__all__ = ["CarParkConfig", "SignConfig", "SourceConfig", "car_park_problem", "source_kind"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def source_kind(quantity: str) -> Literal["counter", "edge"] | None:
    """``counter`` for a cumulative quantity, ``edge`` for a boolean one, else None."""
    spec = lookup_quantity(quantity)
    if spec is None:
        return None
    if spec.cumulative:
        return "counter"
    return "edge" if spec.unit == "bool" else None


class SourceConfig(_Strict):
    """One lane's vehicle count: a device and the quantity that counts or detects vehicles."""

    device: str = Field(description="A device of the gateway file (Modbus or LoRa).")
    quantity: str = Field(description="pulse_count_N (counted increase) or input_state_N "
                          "(counted rising edges).")

    @field_validator("quantity")
    @classmethod
    def _countable(cls, value: str) -> str:
        if lookup_quantity(value) is None:
            close = suggest_quantity(value)
            hint = f"did you mean '{close}'?" if close else "see device_profiles/README.md"
            raise ValueError(f"'{value}' is not in the quantity vocabulary; {hint}")
        if source_kind(value) is None:
            raise ValueError(f"'{value}' neither counts (pulse_count_N) nor switches "
                             "(input_state_N): vehicles cannot be counted on it")
        return value


class SignConfig(_Strict):
    """The relay that lights the "COMPLET" sign while the car park is full."""

    board: str = Field(description="A relay board: a device of the gateway file.")
    channel: int = Field(ge=1, le=32)


class CarParkConfig(_Strict):
    """One car park: capacity, lanes, spot sensors, thresholds, sign and drift correction."""

    #: The device name of its readings and events: at most 128 characters, as devices.
    name: str = Field(pattern=_NAME, max_length=128)
    capacity: int = Field(ge=1, le=100_000)
    entries: list[SourceConfig] = Field(default_factory=list)
    exits: list[SourceConfig] = Field(default_factory=list)
    spots: list[str] = Field(default_factory=list,
                             description="LoRa spot sensors (spot_occupied) of this car park.")
    occupancy_from_spots: bool = Field(
        default=False, description="Every spot is sensed: occupancy is the occupied spots.")
    full_at: int | None = Field(default=None, ge=1, description="Full from here; capacity "
                                "when omitted.")
    available_below: int | None = Field(
        default=None, ge=1, description="Available again below this; full_at - 1 when omitted.")
    sign: SignConfig | None = None
    reset_at: str | None = Field(default=None, description="HH:MM local time of a daily reset.")
    reset_to: int = Field(default=0, ge=0, description="The occupancy set at reset_at.")
    time_zone: str = Field(default="Europe/Paris", description="The zone of reset_at.")

    @field_validator("reset_at")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                dt.time.fromisoformat(value)
            except ValueError:
                raise ValueError(f"reset_at '{value}' is not HH:MM, e.g. \"04:00\"") from None
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone, e.g. \"Europe/Paris\""
                             ) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
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
        return self

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
