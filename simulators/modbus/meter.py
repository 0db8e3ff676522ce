"""One simulated Modbus device: a profile's register map filled by the value model.

The meter is pymodbus's SimDevice ``action``: every request passes through
:meth:`SimulatedMeter.on_access` before pymodbus touches the registers, so values are
refreshed at read time, writes are recorded, limits are enforced and faults are applied
there. Replies pass through :meth:`SimulatedMeter.filter_reply` for the faults that act on the
bytes (silence, a broken CRC).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Literal, NamedTuple

from pymodbus.constants import ExcCodes
from pymodbus.simulator import SimDevice

from edge_agent.codecs.modbus_values import decode_registers
from edge_agent.profiles import DeviceProfile, Point, RegisterKind
from edge_agent.quantities import lookup_quantity
from simulators.modbus.faults import Fault, FaultKind
from simulators.modbus.registers import (
    TABLE_OF_FUNCTION,
    RegisterTable,
    encode_point,
    pack_bits,
    sim_tables,
    tables_of,
)
from simulators.modbus.values import ValueModel

__all__ = ["CoilWrite", "SimulatedMeter", "Transport"]

Transport = Literal["tcp", "rtu"]

_READ_FUNCTIONS = frozenset({1, 2, 3, 4})
_REGISTER_READS = frozenset({3, 4})


class CoilWrite(NamedTuple):
    """One coil a client wrote (FC05 or FC15): wall-clock time, address, new state."""

    at: float
    address: int
    value: bool


def _check_fault(fault: Fault, transport: Transport | None) -> None:
    if fault.kind is FaultKind.CORRUPT_CRC and transport == "tcp":
        raise ValueError("corrupt-crc needs the rtu transport: Modbus TCP frames have no CRC")


def _cumulative(point: Point) -> bool:
    spec = lookup_quantity(point.quantity)
    return spec is not None and spec.cumulative


class SimulatedMeter:
    """A device on the simulated bus: unit id, profile, evolving values, faults, write log.

    ``update_interval`` is how often the device refreshes its measurements (real meters do
    about once a second); reads in between see the same values. Use 0 to refresh on every
    read. ``seed`` makes the values reproducible.
    """

    def __init__(
        self,
        unit: int,
        profile: DeviceProfile,
        *,
        seed: int | None = None,
        update_interval: float = 1.0,
        fault: Fault | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= unit <= 247:
            raise ValueError(f"unit id must be 1..247, got {unit}")
        self.unit = unit
        self.profile = profile
        self.update_interval = update_interval
        #: Every coil write a client made, oldest first.
        self.coil_writes: list[CoilWrite] = []
        #: Requests this device answered (or refused with an exception), faults aside.
        self.request_count = 0
        self._clock = clock
        self._rng = random.Random(seed)
        self._fault = fault or Fault.none()
        self._transport: Transport | None = None
        self._tables = tables_of(profile)
        self._model = ValueModel(profile.points, now=clock(), seed=seed)
        self._refreshed = clock()
        self._encoded: dict[str, list[int]] = {}
        self._encode_all()

    def __repr__(self) -> str:
        return f"SimulatedMeter(unit={self.unit}, profile={self.profile.id!r}, fault={self.fault})"

    # -- values ---------------------------------------------------------------------------

    def _point(self, quantity: str) -> Point:
        try:
            return self.profile.points[quantity]
        except KeyError:
            known = ", ".join(self.profile.points)
            raise KeyError(f"{self.profile.id} has no point {quantity!r}; it has {known}") from None

    def _encode(self, point: Point) -> None:
        value = self._model.value(point.quantity)
        self._encoded[point.quantity] = encode_point(point, value, cumulative=_cumulative(point))

    def _encode_all(self) -> None:
        for point in self.profile.points.values():
            if not point.kind.is_bit:
                self._encode(point)

    def refresh(self) -> None:
        """Take a new measurement if ``update_interval`` has passed since the last one."""
        now = self._clock()
        if now - self._refreshed >= self.update_interval:
            self._model.advance(now)
            self._refreshed = now
            self._encode_all()

    def value(self, quantity: str) -> float | bool:
        """What a read of ``quantity`` returns now, decoded and scaled as a client would."""
        point = self._point(quantity)
        if point.kind.is_bit:
            return bool(self._model.value(quantity))
        registers = self._encoded[quantity]
        raw = decode_registers(registers, point.type, point.word_order, byte_swap=point.byte_swap)
        return raw * point.scale

    def registers(self, quantity: str) -> list[int]:
        """The raw registers of a register point, as they go on the wire."""
        return list(self._encoded[self._point(quantity).quantity])

    def set_value(self, quantity: str, value: float) -> None:
        """Set a value: counters jump and keep growing, inputs and relays hold it, others pin.

        Pinning an active power also drives the energy counters (pin 0 W to stop a meter).
        """
        point = self._point(quantity)
        self._model.set_value(quantity, float(value))
        if not point.kind.is_bit:
            self._encode(point)

    def unpin(self, quantity: str) -> None:
        """Let a quantity pinned by :meth:`set_value` evolve again at the next refresh."""
        self._model.unpin(self._point(quantity).quantity)

    # -- faults ---------------------------------------------------------------------------

    @property
    def fault(self) -> Fault:
        """The fault the device shows now."""
        return self._fault

    def set_fault(self, fault: Fault) -> None:
        """Switch to ``fault``; it applies from the next request."""
        _check_fault(fault, self._transport)
        self._fault = fault

    def clear_fault(self) -> None:
        """Back to a healthy device."""
        self._fault = Fault.none()

    def filter_reply(self, frame: bytes) -> bytes:
        """The reply frame as it leaves the device: dropped when silent, CRC maybe broken."""
        fault = self._fault
        if fault.kind is FaultKind.NO_REPLY:
            return b""
        if fault.kind is FaultKind.CORRUPT_CRC and self._rng.random() < fault.probability:
            return frame[:-1] + bytes([frame[-1] ^ 0xFF])
        return frame

    # -- pymodbus glue ----------------------------------------------------------------------

    def bind(self, transport: Transport) -> None:
        """Tell the meter how it is served, so faults it cannot show are refused."""
        _check_fault(self._fault, transport)
        self._transport = transport

    def sim_device(self) -> SimDevice:
        """A fresh pymodbus SimDevice whose action is this meter."""
        return SimDevice(self.unit, simdata=sim_tables(self._tables), action=self.on_access)

    async def on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus SimDevice action: apply faults and limits, record writes, fill values."""
        fault = self._fault
        if fault.kind is FaultKind.NO_REPLY:
            return None  # the reply is dropped too; a dead node neither acts nor answers
        # pymodbus calls the action again to build the reply of a write; act once per request.
        if set_values is not None or function_code in _READ_FUNCTIONS:
            self.request_count += 1
            if fault.kind is FaultKind.SLOW:
                await asyncio.sleep(fault.delay)
            if fault.kind is FaultKind.EXCEPTION:
                return ExcCodes(fault.exception_code)
            if (refusal := self._check_request(function_code, address, count)) is not None:
                return refusal
        table = self._tables[TABLE_OF_FUNCTION[function_code]]
        if not table.points:  # a bit table pymodbus needed a placeholder block for
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is not None:
            self._write(table, address, set_values)
            return None
        self.refresh()
        self._fill(table, registers)
        return None

    def _check_request(self, function_code: int, address: int, count: int) -> ExcCodes | None:
        """The device's own request limits (reference/modbus.md §3.1-3.2)."""
        if function_code not in _REGISTER_READS:
            return None
        limits = self.profile.limits
        if count > limits.max_registers_per_request:
            return ExcCodes.ILLEGAL_VALUE
        if limits.even_address and (address % 2 or count % 2):
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def _fill(self, table: RegisterTable, registers: list[int]) -> None:
        if table.kind.is_bit:
            bits = {p.address: bool(self._model.value(p.quantity)) for p in table.points}
            words = pack_bits(table, bits)
            registers[: len(words)] = words
            return
        for point in table.points:
            offset = point.address - table.start
            registers[offset : offset + point.count] = self._encoded[point.quantity]

    def _write(self, table: RegisterTable, address: int, values: list[int] | list[bool]) -> None:
        end = address + len(values)
        if table.kind is RegisterKind.COIL:
            now = time.time()
            for offset, on in enumerate(values):
                self.coil_writes.append(CoilWrite(now, address + offset, bool(on)))
        for point in table.points:
            if point.end <= address or point.address >= end:
                continue
            if table.kind.is_bit:
                self._model.set_value(point.quantity, float(bool(values[point.address - address])))
                continue
            words = self._encoded[point.quantity]
            merged = [
                int(values[point.address + i - address]) if address <= point.address + i < end
                else word
                for i, word in enumerate(words)
            ]
            raw = decode_registers(merged, point.type, point.word_order,
                                   byte_swap=point.byte_swap)
            self.set_value(point.quantity, raw * point.scale)
