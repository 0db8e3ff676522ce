"""Pydantic models of a device profile: register map, value types, per-device limits."""

from __future__ import annotations

import enum
import itertools
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from edge_agent.codecs.modbus_values import ValueType, WordOrder, register_count
from edge_agent.quantities import lookup_quantity, suggest_quantity

__all__ = [
    "DeviceProfile", "Limits", "Point", "PointDefaults", "RegisterKind", "SerialDefaults",
    "check_quantity_unit",
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Strict):
    """One quantity a device exposes: where it is and how to turn registers into a value."""

    quantity: str = Field(
        default="", description="Filled from the point's key; a name from the quantity vocabulary."
    )
    address: int = Field(ge=0, le=0xFFFF, description="Wire address, 0-based.")
    kind: RegisterKind = Field(description="Register table the point lives in.")
    type: ValueType = Field(description="Value type of the raw registers.")
    word_order: WordOrder = Field(
        default=WordOrder.BIG, description="Most significant word first (big) or last (little)."
    )
    byte_swap: bool = Field(default=False, description="Swap the two bytes inside each register.")
    scale: float = Field(default=1.0, description="Multiplier from the raw value to the unit.")
    unit: str = Field(description="Canonical unit of the quantity, after scaling.")
    description: str = ""

    @property
    def count(self) -> int:
        """Registers (or bits) the point occupies."""
        return register_count(self.type)

    @property
    def end(self) -> int:
        """First address after the point."""
        return self.address + self.count

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_quantity_unit(self.quantity, self.unit)
        if self.kind.is_bit != (self.type is ValueType.BOOL):
            raise ValueError(
                f"type '{self.type}' does not fit a {self.kind} point; "
                "coils and discrete inputs are type bool, registers are numeric types"
            )
        if self.end > 0x10000:
            raise ValueError(f"point at {self.address} runs past the last address 65535")
        return self


class PointDefaults(_Strict):
    """Fields shared by most points of a profile, so a 40-point register map stays readable."""

    kind: RegisterKind | None = None
    type: ValueType | None = None
    word_order: WordOrder | None = None
    byte_swap: bool | None = None
    scale: float | None = None
    unit: str | None = None


class Limits(_Strict):
    """What one request to this device may ask for, and how fast."""

    max_registers_per_request: int = Field(default=125, ge=1, le=125)
    max_bits_per_request: int = Field(default=2000, ge=1, le=2000)
    even_address: bool = Field(
        default=False,
        description="Register reads must start on an even address with an even count.",
    )
    max_gap_registers: int = Field(
        default=16, ge=0, le=124,
        description="Largest hole of unused registers worth reading to save a request (0: never).",
    )
    min_silence_ms: float = Field(
        default=0.0, ge=0, le=5000, description="Quiet time the device needs between two requests."
    )


class SerialDefaults(_Strict):
    """Factory serial settings: what a new device speaks until an installer changes it."""

    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class DeviceProfile(_Strict):
    """A device model: its identity, serial defaults, limits and points."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    manufacturer: str
    model: str
    category: Literal["energy_meter", "pulse_counter", "relay_board", "water_meter"]
    description: str = ""
    serial: SerialDefaults = SerialDefaults()
    limits: Limits = Limits()
    defaults: PointDefaults = PointDefaults()
    points: dict[str, Point] = Field(
        min_length=1, description="Quantity name → where and how to read it."
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Fill each point from ``defaults`` and take its quantity from its key."""
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

    @model_validator(mode="after")
    def _check_layout(self) -> Self:
        """Profile-wide rules, each reported at the offending point so its line is shown."""
        errors = [*self._overlaps(), *self._limit_violations()]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _overlaps(self) -> list[InitErrorDetails]:
        by_kind: dict[RegisterKind, list[Point]] = {}
        for point in self.points.values():
            by_kind.setdefault(point.kind, []).append(point)
        errors = []
        for kind, group in by_kind.items():
            group.sort(key=lambda p: p.address)
            for before, after in itertools.pairwise(group):
                if after.address < before.end:
                    errors.append(_error(
                        "overlap", after.quantity, "address", after.address,
                        f"{before.quantity} and {after.quantity} overlap in {kind} registers "
                        f"at address {after.address}; move {after.quantity} to {before.end} "
                        "or later",
                    ))
        return errors

    def _limit_violations(self) -> list[InitErrorDetails]:
        errors = []
        limits = self.limits
        for point in self.points.values():
            if point.kind.is_bit:
                continue
            if limits.even_address and point.address % 2:
                errors.append(_error(
                    "odd_address", point.quantity, "address", point.address,
                    f"{point.quantity} starts on odd address {point.address} but "
                    f"limits.even_address is set; use {point.address - 1} or "
                    f"{point.address + 1}, or set even_address: false",
                ))
            if point.count > limits.max_registers_per_request:
                errors.append(_error(
                    "point_too_big", point.quantity, "type", point.type.value,
                    f"{point.quantity} needs {point.count} registers, more than "
                    f"limits.max_registers_per_request ({limits.max_registers_per_request}); "
                    "raise the limit or check the type",
                ))
        return errors


def _error(kind: str, quantity: str, field: str, value: object, message: str
           ) -> InitErrorDetails:
    # The message goes in as a context value so braces in it are never read as placeholders.
    return InitErrorDetails(
        type=PydanticCustomError(kind, "{message}", {"message": message}),
        loc=("points", quantity, field),
        input=value,
    )

