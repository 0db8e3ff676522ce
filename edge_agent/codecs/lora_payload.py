"""LoRaWAN payloads: declared byte layouts to quantity values, and ChirpStack ``object`` maps.

Pure, no I/O. A profile's layout is compiled once into the small immutable objects below
(precomputed ``struct.Struct`` readers and plain tuples), so decoding one uplink walks a tuple
of fields and never looks anything up by name. Everything malformed raises CodecError naming
the byte or the field; nothing else escapes, whatever the bytes.

A field reads one value: an integer of 1 to 4 bytes (either byte order) or a float32, then
optionally a bit field (``(raw & mask) >> shift``), a check that the raw value is valid, an
enum (raw → number) or piecewise segments, then ``value = raw * scale + add``.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from edge_agent.errors import CodecError

__all__ = [
    "MAX_PAYLOAD",
    "ByteOrder",
    "Condition",
    "DecodedValue",
    "FieldCodec",
    "FixedLayout",
    "LoraType",
    "ObjectField",
    "ObjectMapping",
    "PayloadDecoder",
    "Plan",
    "Segment",
    "decode_fields",
    "type_size",
]

#: Largest FRMPayload of any EU868 data rate (DR4 to DR7); no field may end past it.
MAX_PAYLOAD = 222


class LoraType(enum.StrEnum):
    """Value types a payload field can hold."""

    UINT8 = "uint8"
    INT8 = "int8"
    UINT16 = "uint16"
    INT16 = "int16"
    UINT24 = "uint24"
    INT24 = "int24"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"


class ByteOrder(enum.StrEnum):
    """Which byte comes first: the most significant (big) or the least (little)."""

    BIG = "big"
    LITTLE = "little"


#: Size in bytes and struct code (None: 24-bit, read with int.from_bytes) per type.
_TYPES: dict[LoraType, tuple[int, str | None, bool]] = {
    LoraType.UINT8: (1, "B", False),
    LoraType.INT8: (1, "b", True),
    LoraType.UINT16: (2, "H", False),
    LoraType.INT16: (2, "h", True),
    LoraType.UINT24: (3, None, False),
    LoraType.INT24: (3, None, True),
    LoraType.UINT32: (4, "I", False),
    LoraType.INT32: (4, "i", True),
    LoraType.FLOAT32: (4, "f", True),
}


def type_size(value_type: LoraType) -> int:
    """Bytes one value of ``value_type`` occupies."""
    return _TYPES[value_type][0]


def _reader(value_type: LoraType, order: ByteOrder) -> Callable[[bytes, int], tuple[Any, ...]]:
    """``unpack_from``-like reader of one value of the type: a 1-tuple at an offset."""
    size, code, signed = _TYPES[value_type]
    if code is not None:
        return struct.Struct(("<" if order is ByteOrder.LITTLE else ">") + code).unpack_from
    from_bytes = int.from_bytes
    byteorder: Literal["little", "big"] = "little" if order is ByteOrder.LITTLE else "big"

    def read24(data: bytes, offset: int) -> tuple[int]:
        return (from_bytes(data[offset:offset + size], byteorder, signed=signed),)

    return read24


@dataclass(frozen=True, slots=True)
class DecodedValue:
    """One value from an uplink, in the canonical unit of its quantity."""

    quantity: str
    value: float


@dataclass(frozen=True, slots=True)
class Segment:
    """Raw values ``first..last`` (inclusive) mean ``value + (raw - first) * step``."""

    first: int
    last: int
    value: float
    step: float


@dataclass(frozen=True, slots=True)
class Condition:
    """A field is read only when ``data[offset] & mask`` is one of ``values``."""

    offset: int
    mask: int
    values: frozenset[int]

    def holds(self, data: bytes, base: int = 0) -> bool:
        """Whether the condition byte is there and matches (a short payload does not)."""
        index = base + self.offset
        return index < len(data) and (data[index] & self.mask) in self.values


#: A field compiled for the decode loop: quantity, reader, offset, scale, add, mask, shift,
#: lowest and highest valid raw value, enum table, segments (first, last, value, step) and
#: condition. A tuple, so the loop unpacks it instead of looking attributes up.
Plan = tuple[str, Callable[[bytes, int], tuple[Any, ...]], int, float, float, int, int, float,
             float, "dict[int, float] | None", tuple[tuple[int, int, float, float], ...],
             "Condition | None"]


class FieldCodec:
    """One value at a fixed offset (from the payload's start, or from a channel's data)."""

    __slots__ = ("end", "offset", "optional", "plan", "quantity")

    def __init__(
        self,
        quantity: str,
        offset: int,
        value_type: LoraType,
        order: ByteOrder = ByteOrder.BIG,
        *,
        mask: int | None = None,
        shift: int = 0,
        scale: float = 1.0,
        add: float = 0.0,
        valid: tuple[int | None, int | None] = (None, None),
        enum_map: Mapping[int, float] | None = None,
        segments: tuple[Segment, ...] = (),
        when: Condition | None = None,
        optional: bool = False,
    ) -> None:
        if offset < 0 or offset + type_size(value_type) > MAX_PAYLOAD:
            raise CodecError(f"{quantity}: offset {offset} is outside a LoRaWAN payload")
        if value_type is LoraType.FLOAT32 and (mask is not None or enum_map or segments):
            raise CodecError(f"{quantity}: a float32 takes no mask, enum or segments")
        self.quantity = quantity
        self.offset = offset
        self.end = offset + type_size(value_type)
        self.optional = optional
        low, high = valid
        self.plan: Plan = (
            quantity, _reader(value_type, order), offset, scale, add, mask or 0, shift,
            -math.inf if low is None else low, math.inf if high is None else high,
            None if enum_map is None else dict(enum_map),
            tuple((s.first, s.last, s.value, s.step) for s in segments), when)


def decode_fields(plans: tuple[Plan, ...], data: bytes, base: int,
                  out: list[DecodedValue]) -> None:
    """Append the value of each field read from ``base`` on (bounds checked by the caller)."""
    append = out.append
    for quantity, read, offset, scale, add, mask, shift, low, high, table, segments, when in plans:
        if when is not None and not when.holds(data, base):
            continue
        raw = read(data, base + offset)[0]
        if mask:
            raw = (raw & mask) >> shift
        if raw < low or raw > high:
            continue
        if table is not None:
            number = table.get(raw)
            if number is None:
                raise CodecError(f"{quantity}: raw value {raw} at byte {base + offset} is not "
                                 f"one of {sorted(table)}")
            raw = number
        elif segments:
            for first, last, value, step in segments:
                if first <= raw <= last:
                    raw = value + (raw - first) * step
                    break
            else:
                continue
        append(DecodedValue(quantity, raw * scale + add))


class PayloadDecoder:
    """What every compiled layout offers: bytes in, values out, CodecError on bad bytes."""

    __slots__ = ()

    def decode(self, data: bytes) -> list[DecodedValue]:
        """The values in ``data``."""
        raise NotImplementedError


class FixedLayout(PayloadDecoder):
    """Fields at fixed offsets; a payload shorter than ``min_length`` is truncated."""

    __slots__ = ("min_length", "optional", "required")

    def __init__(self, fields: tuple[FieldCodec, ...], min_length: int = 0) -> None:
        self.required = tuple(f.plan for f in fields if not f.optional)
        self.optional = tuple((f.end, (f.plan,)) for f in fields if f.optional)
        needed = max((f.end for f in fields if not f.optional), default=0)
        self.min_length = max(min_length, needed)

    def decode(self, data: bytes) -> list[DecodedValue]:
        """Every required field, and each optional field the payload is long enough for."""
        size = len(data)
        if size < self.min_length:
            raise CodecError(f"payload truncated at byte {size}: this layout needs "
                             f"{self.min_length} bytes")
        out: list[DecodedValue] = []
        decode_fields(self.required, data, 0, out)
        for end, plan in self.optional:
            if end <= size:
                decode_fields(plan, data, 0, out)
        return out


@dataclass(frozen=True, slots=True)
class ObjectField:
    """One value taken from ChirpStack's decoded ``object`` by its path."""

    quantity: str
    path: tuple[str, ...]
    scale: float = 1.0
    add: float = 0.0
    enum_map: Mapping[str, float] | None = None


class ObjectMapping:
    """Values taken from an already decoded ``object`` (numbers arrive as floats)."""

    __slots__ = ("fields",)

    def __init__(self, fields: tuple[ObjectField, ...]) -> None:
        self.fields = fields

    def decode(self, decoded: Any) -> list[DecodedValue]:
        """The mapped fields present in ``decoded``; an absent or null field is skipped."""
        if not isinstance(decoded, dict):
            raise CodecError(f"the decoded object is a {type(decoded).__name__}, not a mapping")
        out: list[DecodedValue] = []
        for field in self.fields:
            node: Any = decoded
            for key in field.path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                continue
            number = _object_number(field, node)
            out.append(DecodedValue(field.quantity, number * field.scale + field.add))
        return out


def _object_number(field: ObjectField, node: object) -> float:
    """A number from an object value: words through the enum, true/false as 1/0 (or enum)."""
    table = field.enum_map or {}
    if isinstance(node, str):
        if node in table:
            return table[node]
        where = ".".join(field.path)
        if table:
            raise CodecError(f"object field {where}: {node!r} is not one of {sorted(table)}")
        raise CodecError(f"object field {where}: {node!r} is not a number; map its words "
                         "with enum")
    if isinstance(node, bool):
        return table.get("true" if node else "false", 1.0 if node else 0.0)
    if isinstance(node, int | float):
        return float(node)
    raise CodecError(f"object field {'.'.join(field.path)}: {node!r} is not a number")
