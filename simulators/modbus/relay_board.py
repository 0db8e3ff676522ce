"""A simulated Waveshare Modbus RTU Relay (D): eight relays, eight inputs, timed flashes.

The register map is the board's (access-control.md §4.2): coils 0x0000-0x0007 with FC01,
FC05 (0xFF00 on, 0x0000 off, 0x5500 toggle) and FC0F; coil 0x00FF for all relays; FC05 to
0x0200 + channel ("flash on") and 0x0400 + channel ("flash off") with a delay in units of
100 ms that the board times itself; discrete inputs 0-7 with FC02. Other addresses get
exception 2, other FC05 values exception 3. A plain write cancels a running flash on its
channel, as on the board.

pymodbus decodes FC05 into a bool and its datastore knows no timers, so the simulator
(``ModbusSimulator``) hands every FC01/02/05/0F request for a board to
:meth:`SimulatedRelayBoard.take_request`, and the board answers it from its own state.
Everything else (faults, unit ids, the profile's points) is the SimulatedMeter it extends.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Literal, NamedTuple

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsResponse,
    ReadDiscreteInputsResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteSingleCoilRequest,
)

from edge_agent.profiles import load_profile
from simulators.modbus.faults import Fault, FaultKind
from simulators.modbus.meter import CoilWrite, SimulatedMeter

__all__ = [
    "PROFILE_ID", "RawCoilWriteRequest", "RelayAction", "RelayCommand", "RelaySwitch",
    "SimulatedRelayBoard",
]

#: The device profile a relay board serves (its coils and inputs as points).
PROFILE_ID = "waveshare-relay-8ch"
_CHANNELS = 8
_ON, _OFF, _TOGGLE = 0xFF00, 0x0000, 0x5500
_ALL = 0x00FF
_FLASH_ON, _FLASH_OFF = 0x0200, 0x0400
_MAX_FLASH_UNITS = 0x7FFF
_BOARD_FUNCTIONS = frozenset({1, 2, 5, 15})

RelayAction = Literal["on", "off", "toggle", "flash_on", "flash_off", "write"]
_PLAIN_ACTIONS: dict[int, RelayAction] = {_ON: "on", _OFF: "off", _TOGGLE: "toggle"}


class RelayCommand(NamedTuple):
    """One command the board carried out, for tests and benchmarks to read back."""

    #: ``time.monotonic_ns()`` when the request frame was decoded.
    at_ns: int
    #: 5 (write single coil) or 15 (write multiple coils).
    function: int
    #: The wire address: 0x0000-0x0007, 0x00FF, 0x0200 + channel or 0x0400 + channel.
    address: int
    #: Relay 1..8 (the first one written, for FC15); 0 for all relays (0x00FF).
    channel: int
    action: RelayAction
    #: The FC05 value as sent; for FC15 the relays written as bits, the first one bit 0.
    value: int
    #: How long a flash lasts (value × 100 ms); 0 for other commands.
    pulse_ms: int


class RelaySwitch(NamedTuple):
    """A relay changing state, by command or when the board's flash timer ran out."""

    at_ns: int
    channel: int
    on: bool


class RawCoilWriteRequest(WriteSingleCoilRequest):
    """FC05 as a server receives it, keeping the raw 16-bit value (pymodbus keeps a bool).

    Requests for meters still work as pymodbus's own: ``bits`` is filled as it fills it.
    """

    def __init__(self, address: int = 0, value: int = 0, dev_id: int = 0,
                 transaction_id: int = 0) -> None:
        super().__init__(address=address, bits=[bool(value)], dev_id=dev_id,
                         transaction_id=transaction_id)
        self.value = value

    def encode(self) -> bytes:
        """The echo a relay board sends back: address and raw value."""
        return struct.pack(">HH", self.address, self.value)

    def decode(self, data: bytes) -> None:
        """Address and raw value of the request."""
        self.address, self.value = struct.unpack(">HH", data[:4])
        self.bits = [bool(self.value)]


class _BoardRequest(ModbusPDU):
    """A decoded request that its relay board answers instead of pymodbus's datastore."""

    def __init__(self, board: SimulatedRelayBoard, request: ModbusPDU, received_ns: int) -> None:
        super().__init__(dev_id=request.dev_id, transaction_id=request.transaction_id,
                         address=request.address)
        self.function_code = request.function_code
        self._board = board
        self._request = request
        self._received_ns = received_ns

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """The board's reply; the context is pymodbus's and is not used."""
        return await self._board.answer(self._request, self._received_ns)


class SimulatedRelayBoard(SimulatedMeter):
    """A Waveshare relay board with unit id ``unit``: relays, inputs, timed flashes, a log.

    ``commands`` lists what the board carried out and ``switches`` every relay change, both
    with monotonic nanosecond times, so a test can read back "relay 1 pulsed 700 ms at t".
    Faults apply as to a meter: a silent board neither acts nor answers.
    """

    def __init__(self, unit: int, *, fault: Fault | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(unit, load_profile(PROFILE_ID), fault=fault, clock=clock)
        #: Every command carried out, oldest first.
        self.commands: list[RelayCommand] = []
        #: Every relay state change, oldest first.
        self.switches: list[RelaySwitch] = []
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def __repr__(self) -> str:
        return f"SimulatedRelayBoard(unit={self.unit}, fault={self.fault})"

    # -- state ----------------------------------------------------------------------------

    def relay(self, channel: int) -> bool:
        """Whether relay ``channel`` (1..8) is on now."""
        return bool(self.value(f"relay_state_{_check(channel)}"))

    def input(self, channel: int) -> bool:
        """Whether digital input ``channel`` (1..8) is active now."""
        return bool(self.value(f"input_state_{_check(channel)}"))

    def set_input(self, channel: int, active: bool) -> None:
        """Drive digital input ``channel`` (1..8), as a loop detector or limit switch would."""
        self.set_value(f"input_state_{_check(channel)}", active)

    def pulses(self, channel: int | None = None) -> list[RelayCommand]:
        """The flash-on commands carried out, for ``channel`` or all."""
        return [c for c in self.commands
                if c.action == "flash_on" and channel in (None, c.channel)]

    def _switch(self, channel: int, on: bool) -> None:
        if self.relay(channel) != on:
            self.set_value(f"relay_state_{channel}", on)
            self.switches.append(RelaySwitch(time.monotonic_ns(), channel, on))

    def _cancel_flash(self, channel: int) -> None:
        timer = self._timers.pop(channel, None)
        if timer is not None:
            timer.cancel()

    def _write_plain(self, channel: int, on: bool) -> None:
        """A plain write: cancels the channel's flash, logged like a meter's coil write."""
        self._cancel_flash(channel)
        self.coil_writes.append(CoilWrite(time.time(), channel - 1, on))
        self._switch(channel, on)

    def _flash(self, channel: int, on: bool, delay_s: float) -> None:
        """Switch now and back after ``delay_s``, on the board's own timer."""
        self._cancel_flash(channel)
        self._switch(channel, on)
        self._timers[channel] = asyncio.get_running_loop().call_later(
            delay_s, self._flash_end, channel, not on)

    def _flash_end(self, channel: int, on: bool) -> None:
        self._timers.pop(channel, None)
        self._switch(channel, on)

    # -- requests -------------------------------------------------------------------------

    def take_request(self, request: ModbusPDU) -> ModbusPDU:
        """The request the server should run: the board's own for the functions it handles."""
        if request.function_code not in _BOARD_FUNCTIONS:
            return request
        return _BoardRequest(self, request, time.monotonic_ns())

    async def answer(self, request: ModbusPDU, received_ns: int) -> ModbusPDU:
        """Carry out ``request`` and build the reply, or an exception reply."""
        fault = self.fault
        if fault.kind is FaultKind.NO_REPLY:
            # A dead node neither acts nor answers; the reply is dropped on its way out.
            return ExceptionResponse(request.function_code, ExcCodes.DEVICE_FAILURE)
        self.request_count += 1
        if fault.kind is FaultKind.SLOW:
            await asyncio.sleep(fault.delay)
        if fault.kind is FaultKind.EXCEPTION:
            return ExceptionResponse(request.function_code, fault.exception_code)
        if isinstance(request, RawCoilWriteRequest):
            return self._write_single(request, received_ns)
        if isinstance(request, WriteMultipleCoilsRequest):
            return self._write_multiple(request, received_ns)
        return self._read(request)

    def _read(self, request: ModbusPDU) -> ModbusPDU:
        if request.address + request.count > _CHANNELS:
            return ExceptionResponse(request.function_code, ExcCodes.ILLEGAL_ADDRESS)
        channels = range(request.address + 1, request.address + request.count + 1)
        if request.function_code == 1:
            return ReadCoilsResponse(bits=[self.relay(n) for n in channels])
        return ReadDiscreteInputsResponse(bits=[self.input(n) for n in channels])

    def _write_single(self, request: RawCoilWriteRequest, received_ns: int) -> ModbusPDU:
        address, value = request.address, request.value
        if address < _CHANNELS or address == _ALL:
            if value not in (_ON, _OFF, _TOGGLE):
                return ExceptionResponse(5, ExcCodes.ILLEGAL_VALUE)
            channels = range(1, _CHANNELS + 1) if address == _ALL else [address + 1]
            for channel in channels:
                self._write_plain(channel, not self.relay(channel) if value == _TOGGLE
                                  else value == _ON)
            channel = 0 if address == _ALL else address + 1
            self._record(received_ns, 5, address, channel, _PLAIN_ACTIONS[value], value, 0)
        elif _FLASH_ON <= address < _FLASH_ON + _CHANNELS or \
                _FLASH_OFF <= address < _FLASH_OFF + _CHANNELS:
            if not 1 <= value <= _MAX_FLASH_UNITS:
                return ExceptionResponse(5, ExcCodes.ILLEGAL_VALUE)
            flash_on = address < _FLASH_OFF
            channel = address - (_FLASH_ON if flash_on else _FLASH_OFF) + 1
            self._flash(channel, flash_on, value / 10)
            self._record(received_ns, 5, address, channel,
                         "flash_on" if flash_on else "flash_off", value, value * 100)
        else:
            return ExceptionResponse(5, ExcCodes.ILLEGAL_ADDRESS)
        return RawCoilWriteRequest(address, value)

    def _write_multiple(self, request: WriteMultipleCoilsRequest, received_ns: int
                        ) -> ModbusPDU:
        if request.byte_count != (request.count + 7) // 8 or \
                request.data_byte_count != request.byte_count:
            return ExceptionResponse(15, ExcCodes.ILLEGAL_VALUE)
        if request.address + request.count > _CHANNELS:
            return ExceptionResponse(15, ExcCodes.ILLEGAL_ADDRESS)
        for offset, on in enumerate(request.bits):
            self._write_plain(request.address + offset + 1, bool(on))
        mask = sum(1 << offset for offset, on in enumerate(request.bits) if on)
        self._record(received_ns, 15, request.address, request.address + 1, "write", mask, 0)
        return WriteMultipleCoilsResponse(address=request.address, count=request.count)

    def _record(self, at_ns: int, function: int, address: int, channel: int,
                action: RelayAction, value: int, pulse_ms: int) -> None:
        self.commands.append(
            RelayCommand(at_ns, function, address, channel, action, value, pulse_ms))


def _check(channel: int) -> int:
    if not 1 <= channel <= _CHANNELS:
        raise ValueError(f"a Waveshare relay board has channels 1..{_CHANNELS}, got {channel}")
    return channel
