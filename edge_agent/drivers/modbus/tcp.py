"""Modbus TCP requests as PDUs over the lean MBAP client: no pymodbus on this path.

Builds and checks the PDUs of the function codes the agent uses (reads 1 to 4, FC05 with any
value for relay boards' timed flash, FC15); mbap.py frames and matches them. The link
(link.py) has already refused what the Modbus specification does not allow.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from edge_agent.drivers.modbus.mbap import MbapClient
from edge_agent.errors import DeviceError, DeviceException, DeviceTimeout, FrameError
from edge_agent.profiles.models import RegisterKind

__all__ = ["TcpLine"]

#: Function, starting address, quantity: a read request, and the reply to FC15.
_ADDRESS_QUANTITY = struct.Struct(">BHH")
#: Function, address, value: FC05's request and its echo.
_WRITE_SINGLE = struct.Struct(">BHH")
_READ_CODES = {RegisterKind.COIL: 1, RegisterKind.DISCRETE_INPUT: 2, RegisterKind.HOLDING: 3,
               RegisterKind.INPUT: 4}


class TcpLine:
    """One Modbus TCP endpoint; reconnection is left to the bus's backoff."""

    def __init__(self, host: str, port: int, *, timeout_s: float, name: str,
                 retries: int = 0) -> None:
        self.name = name
        self.mbap = MbapClient(host, port, timeout_s=timeout_s, name=name)
        #: Extra attempts at a read that timed out (the bus's ``retries``). Writes are sent
        #: once: a command that timed out may have been carried out.
        self.retries = retries

    async def open(self) -> None:
        """Connect; TransportError saying what to check when it fails."""
        await self.mbap.connect()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self.mbap.close()

    async def read(self, kind: RegisterKind, address: int, count: int, unit: int
                   ) -> list[int] | list[bool]:
        """Read ``count`` registers or bits from one table of device ``unit``."""
        request = _ADDRESS_QUANTITY.pack(_READ_CODES[kind], address, count)
        for attempt in range(self.retries + 1):
            try:
                pdu = await self._transact(unit, request)
                break
            except DeviceTimeout:
                if attempt == self.retries or not self.mbap.connected:
                    raise
        values = _registers_or_bits(pdu, kind, count)
        if values is None:
            self.mbap.counters.frame_errors += 1
            raise FrameError(f"malformed reply: {len(pdu)} bytes with byte count "
                             f"{pdu[1] if len(pdu) > 1 else '-'} for {count} "
                             f"{'bits' if kind.is_bit else 'registers'}",
                             device=f"unit {unit}", bus=self.name)
        return values

    async def write_single(self, address: int, value: int, unit: int) -> tuple[int, int]:
        """FC05 with any 16-bit value; the address and value the reply echoes."""
        reply = await self._transact(unit, _WRITE_SINGLE.pack(5, address, value))
        if len(reply) != _WRITE_SINGLE.size:
            self.mbap.counters.frame_errors += 1
            raise FrameError(f"malformed reply to FC05: {reply.hex()}",
                             device=f"unit {unit}", bus=self.name)
        _, echoed_address, echoed_value = _WRITE_SINGLE.unpack(reply)
        return echoed_address, echoed_value

    async def write_coils(self, address: int, values: Sequence[bool], unit: int) -> None:
        """Set consecutive coils in one request (FC15)."""
        packed = _pack_bits(values)
        reply = await self._transact(unit, struct.pack(">BHHB", 15, address, len(values),
                                                       len(packed)) + packed)
        if reply != _ADDRESS_QUANTITY.pack(15, address, len(values)):
            self.mbap.counters.frame_errors += 1
            raise FrameError(f"reply to FC15 does not echo address {address} and "
                             f"{len(values)} coils: {reply.hex()}",
                             device=f"unit {unit}", bus=self.name)

    async def _transact(self, unit: int, pdu: bytes) -> bytes:
        """One Modbus TCP transaction, its errors naming the unit."""
        try:
            return await self.mbap.transact(unit, pdu)
        except DeviceException as exc:
            raise DeviceException(exc.reason, code=exc.code, device=f"unit {unit}",
                                  bus=self.name) from exc
        except DeviceError as exc:
            raise type(exc)(exc.reason, device=f"unit {unit}", bus=self.name) from exc


def _registers_or_bits(reply: bytes, kind: RegisterKind, count: int
                       ) -> list[int] | list[bool] | None:
    """The values of a read reply PDU (function, byte count, data); None when malformed."""
    expected = (count + 7) // 8 if kind.is_bit else 2 * count
    if len(reply) != 2 + expected or reply[1] != expected:
        return None
    if kind.is_bit:
        return [bool(reply[2 + i // 8] >> (i % 8) & 1) for i in range(count)]
    return list(struct.unpack_from(f">{count}H", reply, 2))


def _pack_bits(values: Sequence[bool]) -> bytes:
    """Coil values, eight to a byte, first coil in the lowest bit (FC15)."""
    packed = bytearray((len(values) + 7) // 8)
    for index, value in enumerate(values):
        if value:
            packed[index // 8] |= 1 << (index % 8)
    return bytes(packed)
