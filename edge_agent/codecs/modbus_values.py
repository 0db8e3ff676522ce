"""Modbus register values: 16-bit words to numbers and back.

Pure functions, no I/O. Word order says which 16-bit word carries the most significant bits
(``big``: first register first, the Modbus convention, ABCD; ``little``: least significant word
first, CDAB). ``byte_swap`` also swaps the two bytes inside each register, which gives the
BADC and DCBA layouts some devices use and pymodbus cannot decode.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence

from edge_agent.errors import CodecError

__all__ = ["ValueType", "WordOrder", "decode_registers", "encode_value", "register_count",
           "struct_layout"]


class ValueType(enum.StrEnum):
    """Value types a register or bit can hold."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    #: One coil or discrete input.
    BOOL = "bool"


class WordOrder(enum.StrEnum):
    """Which register carries the most significant word."""

    BIG = "big"
    LITTLE = "little"


#: struct format (big-endian) and register count for each register-backed type.
_LAYOUT: dict[ValueType, tuple[str, int]] = {
    ValueType.INT16: (">h", 1),
    ValueType.UINT16: (">H", 1),
    ValueType.INT32: (">i", 2),
    ValueType.UINT32: (">I", 2),
    ValueType.INT64: (">q", 4),
    ValueType.UINT64: (">Q", 4),
    ValueType.FLOAT32: (">f", 2),
    ValueType.FLOAT64: (">d", 4),
}


def register_count(value_type: ValueType) -> int:
    """How many 16-bit registers (or bits, for BOOL) one value occupies."""
    if value_type is ValueType.BOOL:
        return 1
    return _LAYOUT[value_type][1]


def struct_layout(fields: Sequence[tuple[int, ValueType, WordOrder, bool]], registers: int
                  ) -> struct.Struct | None:
    """One struct that decodes every field of a block of ``registers`` registers at once.

    ``fields`` are (register offset, type, word order, byte swap), in address order and not
    overlapping. None when a field's layout is not plain big-endian (swapped words or bytes):
    those are decoded one by one with :func:`decode_registers`.
    """
    codes, cursor = [">"], 0
    for offset, value_type, word_order, byte_swap in fields:
        if value_type is ValueType.BOOL or offset < cursor or byte_swap:
            return None
        fmt, count = _LAYOUT[value_type]
        if count > 1 and word_order is not WordOrder.BIG:
            return None
        codes.append("x" * 2 * (offset - cursor) + fmt[1:])
        cursor = offset + count
    if cursor > registers:
        return None
    return struct.Struct("".join(codes))


def _reorder(words: Sequence[int], word_order: WordOrder, byte_swap: bool) -> list[int]:
    ordered = list(words) if word_order is WordOrder.BIG else list(reversed(words))
    if byte_swap:
        ordered = [((w & 0xFF) << 8) | (w >> 8) for w in ordered]
    return ordered


def decode_registers(
    registers: Sequence[int],
    value_type: ValueType,
    word_order: WordOrder = WordOrder.BIG,
    *,
    byte_swap: bool = False,
) -> int | float:
    """Decode exactly one value from its registers.

    Raises CodecError when the register count does not match the type or a register is not a
    16-bit unsigned integer.
    """
    if value_type is ValueType.BOOL:
        raise CodecError("bool values come from coils or discrete inputs, not registers")
    fmt, count = _LAYOUT[value_type]
    if len(registers) != count:
        raise CodecError(f"{value_type} needs {count} registers, got {len(registers)}")
    if any(not 0 <= word <= 0xFFFF for word in registers):
        raise CodecError(f"register values must be 0..65535, got {list(registers)}")
    words = _reorder(registers, word_order, byte_swap)
    raw = b"".join(word.to_bytes(2, "big") for word in words)
    value: int | float = struct.unpack(fmt, raw)[0]
    return value


def encode_value(
    value: float,
    value_type: ValueType,
    word_order: WordOrder = WordOrder.BIG,
    *,
    byte_swap: bool = False,
) -> list[int]:
    """Encode one value into registers, the exact inverse of :func:`decode_registers`.

    Integers out of the type's range raise CodecError instead of wrapping silently.
    """
    if value_type is ValueType.BOOL:
        raise CodecError("bool values go to coils, not registers")
    fmt, count = _LAYOUT[value_type]
    number: float | int
    if fmt[-1] in "fd":
        number = float(value)
    elif isinstance(value, float) and not value.is_integer():
        raise CodecError(f"{value!r} is not a whole number; {value_type} holds integers")
    else:
        number = int(value)
    try:
        raw = struct.pack(fmt, number)
    except (struct.error, OverflowError) as exc:
        raise CodecError(f"{value!r} does not fit in {value_type}: {exc}") from exc
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * count, 2)]
    # Reordering is its own inverse for both word order and byte swap.
    return _reorder(words, word_order, byte_swap)
