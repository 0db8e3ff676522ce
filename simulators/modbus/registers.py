"""A profile's points laid out as the four Modbus tables of one simulated device.

Each table is one contiguous block from its first point to the end of its last, gaps filled
with zeros: real meters such as the Eastron SDM answer a block read across unassigned
registers (reference/modbus.md §1.5), while pymodbus answers exception 2 for addresses it
was not given. Reads outside the block still get exception 2, as on a real device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pymodbus.simulator import DataType, SimData

from edge_agent.codecs.modbus_values import ValueType, encode_value
from edge_agent.profiles import DeviceProfile, Point, RegisterKind

__all__ = [
    "TABLE_OF_FUNCTION", "RegisterTable", "SimTables", "empty_tables", "encode_point", "pack_bits",
    "sim_tables", "tables_of",
]

#: Which table each function code reads or writes.
TABLE_OF_FUNCTION: dict[int, RegisterKind] = {
    1: RegisterKind.COIL, 5: RegisterKind.COIL, 15: RegisterKind.COIL,
    2: RegisterKind.DISCRETE_INPUT,
    3: RegisterKind.HOLDING, 6: RegisterKind.HOLDING, 16: RegisterKind.HOLDING,
    22: RegisterKind.HOLDING, 23: RegisterKind.HOLDING,
    4: RegisterKind.INPUT,
}

_TABLE_ORDER = (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT, RegisterKind.HOLDING,
                RegisterKind.INPUT)

SimTables = tuple[list[SimData], list[SimData], list[SimData], list[SimData]]


@dataclass(frozen=True, slots=True)
class RegisterTable:
    """The points of one table and the block that holds them."""

    kind: RegisterKind
    points: tuple[Point, ...]

    @classmethod
    def of(cls, profile: DeviceProfile, kind: RegisterKind) -> RegisterTable:
        """The table ``kind`` of ``profile``, points sorted by address."""
        points = sorted((p for p in profile.points.values() if p.kind is kind),
                        key=lambda p: p.address)
        return cls(kind, tuple(points))

    @property
    def start(self) -> int:
        """First address of the block."""
        return self.points[0].address if self.points else 0

    @property
    def end(self) -> int:
        """First address after the block."""
        return max(p.end for p in self.points) if self.points else 1

    @property
    def bit_base(self) -> int:
        """pymodbus keeps bits in 16-bit words starting at this address (a multiple of 16)."""
        return self.start - self.start % 16

    def simdata(self) -> SimData:
        """The block as pymodbus SimData: zeros (or off bits) from start to end."""
        if self.kind.is_bit:
            return SimData(self.start, values=[False] * (self.end - self.start),
                           datatype=DataType.BITS)
        if not self.points:
            return SimData(0, datatype=DataType.INVALID)
        return SimData(self.start, count=self.end - self.start, values=0,
                       datatype=DataType.REGISTERS)


def empty_tables() -> SimTables:
    """Tables of a device that answers nothing: every read is an illegal address."""
    def bits() -> list[SimData]:
        return [SimData(0, values=False, datatype=DataType.BITS)]

    def registers() -> list[SimData]:
        return [SimData(0, datatype=DataType.INVALID)]

    return bits(), bits(), registers(), registers()


def _int_range(value_type: ValueType) -> tuple[int, int]:
    bits = 16 * {"16": 1, "32": 2, "64": 4}[value_type.value[-2:]]
    if value_type.value.startswith("u"):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def encode_point(point: Point, value: float, *, cumulative: bool) -> list[int]:
    """Registers of ``value`` (in the point's unit) as the device would hold it.

    The raw value is value / scale. Integer counters are truncated, like a meter that counts
    whole units, and wrap around like real ones; other integers are rounded and clamped.
    """
    raw = value / point.scale
    if point.type in (ValueType.FLOAT32, ValueType.FLOAT64):
        return encode_value(raw, point.type, point.word_order, byte_swap=point.byte_swap)
    low, high = _int_range(point.type)
    # round(raw, 6) first: 1.01 kWh / 0.001 is 1009.9999999999999 Wh, which must stay 1010.
    number = math.floor(round(raw, 6)) if cumulative else round(raw)
    if cumulative and low == 0:
        number %= high + 1
    else:
        number = min(max(number, low), high)
    return encode_value(number, point.type, point.word_order, byte_swap=point.byte_swap)


def pack_bits(table: RegisterTable, bits: dict[int, bool]) -> list[int]:
    """The 16-bit words pymodbus keeps for a bit table, bit 0 first (its SimUtils layout)."""
    words = [0] * ((table.end - table.bit_base + 15) // 16)
    for address, on in bits.items():
        if on:
            offset = address - table.bit_base
            words[offset // 16] |= 1 << (offset % 16)
    return words


def tables_of(profile: DeviceProfile) -> dict[RegisterKind, RegisterTable]:
    """The four tables of ``profile``."""
    return {kind: RegisterTable.of(profile, kind) for kind in _TABLE_ORDER}


def sim_tables(tables: dict[RegisterKind, RegisterTable]) -> SimTables:
    """The SimDevice tuple (coils, discrete inputs, holding, input), fresh SimData each time."""
    coils, inputs, holding, registers = ([tables[kind].simdata()] for kind in _TABLE_ORDER)
    return coils, inputs, holding, registers
