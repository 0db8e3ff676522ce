"""The models of a device profile: register map, value types, per-device limits."""

from __future__ import annotations

import enum
import itertools
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge_agent.codecs.modbus_values import ValueType, WordOrder, register_count
from edge_agent.quantities import lookup_quantity, suggest_quantity
from edge_agent.schema import Invalid, Problem, Strict

__all__ = [
    "DeviceProfile", "Limits", "Point", "PointDefaults", "RegisterKind", "SerialDefaults",
    "check_quantity_unit", "prepare_profile",
]


def check_quantity_unit(quantity: str, unit: str) -> None:
    """ValueError saying the fix when ``quantity`` is not in the vocabulary or ``unit`` is not
    its canonical unit (the unit is written in profiles so a wrong scale gets caught)."""
    spec = lookup_quantity(quantity)
    if spec is None:
        hint = suggest_quantity(quantity)
        tip = f"; did you mean '{hint}'?" if hint else "; see device_profiles/README.md"
        raise ValueError(f"unknown quantity '{quantity}'{tip}")
    if unit != spec.unit:
        raise ValueError(
            f"{quantity} is measured in '{spec.unit}', not '{unit}'; "
            f"set unit: {spec.unit} and a scale that converts the device's value"
        )


class RegisterKind(enum.StrEnum):
    """Modbus data table a point lives in; each maps to one read function code."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit(self) -> bool:
        """Coils and discrete inputs hold bits; the other two hold 16-bit registers."""
        return self in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)

    @property
    def read_function(self) -> int:
        """Modbus function code that reads this table."""
        return {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}[self.value]


class Point(Strict, frozen=True, kw_only=True):
    """One quantity a device exposes: where it is and how to turn registers into a value."""

    quantity: Annotated[str, Meta(
        description="Filled from the point's key; a name from the quantity vocabulary.")] = ""
    address: Annotated[int, Meta(ge=0, le=0xFFFF, description="Wire address, 0-based.")]
    kind: Annotated[RegisterKind, Meta(description="Register table the point lives in.")]
    type: Annotated[ValueType, Meta(description="Value type of the raw registers.")]
    word_order: Annotated[WordOrder, Meta(
        description="Most significant word first (big) or last (little).")] = WordOrder.BIG
    byte_swap: Annotated[bool, Meta(
        description="Swap the two bytes inside each register.")] = False
    scale: Annotated[float, Meta(
        description="Multiplier from the raw value to the unit.")] = 1.0
    unit: Annotated[str, Meta(description="Canonical unit of the quantity, after scaling.")]
    description: str = ""

    @property
    def count(self) -> int:
        """Registers (or bits) the point occupies."""
        return register_count(self.type)

    @property
    def end(self) -> int:
        """First address after the point."""
        return self.address + self.count

    def __post_init__(self) -> None:
        check_quantity_unit(self.quantity, self.unit)
        if self.kind.is_bit != (self.type is ValueType.BOOL):
            raise ValueError(
                f"type '{self.type}' does not fit a {self.kind} point; "
                "coils and discrete inputs are type bool, registers are numeric types"
            )
        if self.end > 0x10000:
            raise ValueError(f"point at {self.address} runs past the last address 65535")


class PointDefaults(Strict, frozen=True, kw_only=True):
    """Fields shared by most points of a profile, so a 40-point register map stays readable."""

    kind: RegisterKind | None = None
    type: ValueType | None = None
    word_order: WordOrder | None = None
    byte_swap: bool | None = None
    scale: float | None = None
    unit: str | None = None


class Limits(Strict, frozen=True, kw_only=True):
    """What one request to this device may ask for, and how fast."""

    max_registers_per_request: Annotated[int, Meta(ge=1, le=125)] = 125
    max_bits_per_request: Annotated[int, Meta(ge=1, le=2000)] = 2000
    even_address: Annotated[bool, Meta(
        description="Register reads must start on an even address with an even count.")] = False
    max_gap_registers: Annotated[int, Meta(
        ge=0, le=124,
        description="Largest hole of unused registers worth reading to save a request (0: "
        "never; unset: weighed per line, a request's cost against the registers it skips).",
    )] | None = None
    min_silence_ms: Annotated[float, Meta(
        ge=0, le=5000, description="Quiet time the device needs between two requests.")] = 0.0


class SerialDefaults(Strict, frozen=True, kw_only=True):
    """Factory serial settings: what a new device speaks until an installer changes it."""

    baudrate: Annotated[int, Meta(gt=0)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class DeviceProfile(Strict, frozen=True, kw_only=True):
    """A device model: its identity, serial defaults, limits and points."""

    # A file's data goes through prepare_profile first (this docstring is the JSON Schema's).

    id: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    manufacturer: str
    model: str
    category: Literal["energy_meter", "pulse_counter", "relay_board", "water_meter"]
    description: str = ""
    serial: SerialDefaults = msgspec.field(default_factory=SerialDefaults)
    limits: Limits = msgspec.field(default_factory=Limits)
    defaults: PointDefaults = msgspec.field(default_factory=PointDefaults)
    points: Annotated[dict[str, Point], Meta(
        min_length=1, description="Quantity name → where and how to read it.")]

    def __post_init__(self) -> None:
        """Profile-wide rules, each reported at the offending point so its line is shown."""
        problems = [*self._overlaps(), *self._limit_violations()]
        if problems:
            raise Invalid(problems)

    def _overlaps(self) -> list[Problem]:
        by_kind: dict[RegisterKind, list[Point]] = {}
        for point in self.points.values():
            by_kind.setdefault(point.kind, []).append(point)
        errors = []
        for kind, group in by_kind.items():
            group.sort(key=lambda p: p.address)
            for before, after in itertools.pairwise(group):
                if after.address < before.end:
                    errors.append(_error(
                        after.quantity, "address", after.address,
                        f"{before.quantity} and {after.quantity} overlap in {kind} registers "
                        f"at address {after.address}; move {after.quantity} to {before.end} "
                        "or later",
                    ))
        return errors

    def _limit_violations(self) -> list[Problem]:
        errors = []
        limits = self.limits
        for point in self.points.values():
            if point.kind.is_bit:
                continue
            if limits.even_address and point.address % 2:
                errors.append(_error(
                    point.quantity, "address", point.address,
                    f"{point.quantity} starts on odd address {point.address} but "
                    f"limits.even_address is set; use {point.address - 1} or "
                    f"{point.address + 1}, or set even_address: false",
                ))
            if point.count > limits.max_registers_per_request:
                errors.append(_error(
                    point.quantity, "type", point.type.value,
                    f"{point.quantity} needs {point.count} registers, more than "
                    f"limits.max_registers_per_request ({limits.max_registers_per_request}); "
                    "raise the limit or check the type",
                ))
        return errors


def prepare_profile(data: Any) -> Any:
    """A profile file's data with each point filled from ``defaults`` and its quantity taken
    from its key (data that is not a profile's shape is left for validation to explain)."""
    if not isinstance(data, dict) or not isinstance(data.get("points"), dict):
        return data
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        return data
    shared = {key: value for key, value in defaults.items() if value is not None}
    points = {
        name: {**shared, **fields, "quantity": name} if isinstance(fields, dict) else fields
        for name, fields in data["points"].items()
    }
    return {**data, "points": points}


def _error(quantity: str, field: str, value: object, message: str) -> Problem:
    return Problem(("points", quantity, field), "value", message, value)
