"""Modbus RTU, on a serial port or over TCP, through pymodbus; errors translated.

Imported by link.py only when a bus speaks RTU: pymodbus (with its simulator and datastore)
and pyserial cost a Modbus TCP gateway memory for nothing. pymodbus and pyserial exceptions
stop here: callers see only the agent's DeviceError tree.
"""

from __future__ import annotations

import struct
import termios
from collections.abc import Awaitable, Callable, Sequence

import serial
from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge_agent.drivers.modbus.link import LinkSettings, split_host_port
from edge_agent.drivers.modbus.mbap import EXCEPTION_NAMES
from edge_agent.errors import (
    DeviceError,
    DeviceException,
    DeviceTimeout,
    FrameError,
    TransportError,
)
from edge_agent.profiles.models import RegisterKind

__all__ = ["RawCoilWrite", "RtuLine"]

_READ_CODES = {RegisterKind.COIL: 1, RegisterKind.DISCRETE_INPUT: 2, RegisterKind.HOLDING: 3,
               RegisterKind.INPUT: 4}


class RawCoilWrite(ModbusPDU):
    """FC05 carrying any 16-bit value, for vendor commands such as a relay board's timed flash.

    pymodbus's write_coil only sends 0xFF00 or 0x0000. Once registered on a client, this
    class also decodes every FC05 reply that client receives, so it fills ``bits`` the way
    pymodbus's own reply class does.
    """

    function_code = 5
    rtu_frame_size = 8

    def __init__(self, address: int = 0, value: int = 0, dev_id: int = 0,
                 transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id, address=address)
        self.value = value

    def encode(self) -> bytes:
        """Address and value, big-endian, as the request and its echo carry them."""
        self.verifyAddress()
        if not 0 <= self.value <= 0xFFFF:
            raise ValueError(f"0 <= value {self.value} <= 65535 !")
        return struct.pack(">HH", self.address, self.value)

    def decode(self, data: bytes) -> None:
        """Read address and value back (the reply to FC05 is an echo of the request)."""
        self.address, self.value = struct.unpack(">HH", data[:4])
        self.bits = [bool(self.value)]


class RtuLine:
    """A pymodbus RTU client for one bus; reconnection is left to the bus's backoff."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self._rx_bytes = 0
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if settings.transport == "tcp":
            host, port = split_host_port(settings.target)
            self._client = AsyncModbusTcpClient(
                host, port=port, framer=FramerType.RTU, timeout=settings.timeout_s,
                retries=settings.retries, reconnect_delay=0, trace_packet=self._trace_packet)
        else:
            self._client = AsyncModbusSerialClient(
                settings.target,
                framer=FramerType.RTU,
                baudrate=settings.baudrate,
                parity=settings.parity,
                stopbits=settings.stopbits,
                timeout=settings.timeout_s,
                retries=settings.retries,
                handle_local_echo=settings.local_echo,
                reconnect_delay=0,
                trace_packet=self._trace_packet,
            )
        self._client.register(RawCoilWrite)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Count received bytes, to tell a silent device from a garbled reply."""
        if not sending:
            self._rx_bytes += len(data)
        return data

    async def open(self) -> None:
        """Open the port or connect; TransportError saying what to check when it fails."""
        if self._client.connected:
            return
        if self.settings.transport == "serial":
            self._check_port()
        if not await self._client.connect():
            target = self.settings.target
            raise TransportError(
                f"cannot connect to {target}: is the converter on the network and listening "
                "on that port?" if self.settings.transport == "tcp"
                else f"cannot open {target} (it opened a moment ago: a loose USB adapter?)",
                bus=self.settings.name)

    def _check_port(self) -> None:
        """Open and configure the port once as pymodbus will, to explain a refusal.

        pymodbus only reports that a serial connection failed, and leaks the port when the
        line settings are refused after opening (it sets the timeout afterwards); doing the
        same here first gives the installer the reason and keeps every descriptor closed.
        """
        settings = self.settings
        try:
            port = serial.serial_for_url(
                settings.target, exclusive=True, baudrate=settings.baudrate,
                parity=settings.parity, stopbits=settings.stopbits)
        except (OSError, ValueError, termios.error) as exc:
            raise TransportError(self._explain(exc), bus=settings.name) from exc
        try:
            port.timeout = 0
        except (OSError, ValueError, termios.error) as exc:
            raise TransportError(
                f"{settings.target} refused {settings.baudrate} 8"
                f"{settings.parity}{settings.stopbits} ({exc}); check baud rate, parity and "
                "stop bits", bus=settings.name) from exc
        finally:
            port.close()

    def _explain(self, exc: Exception) -> str:
        target, reason = self.settings.target, str(exc)
        if "exclusively lock" in reason:
            return (f"{target} is in use by another program (is `edge-agent run` using it? "
                    "stop it first)")
        if "No such file" in reason:
            return (f"{target} does not exist: is the adapter plugged in? "
                    "(ls /dev/ttyUSB* /dev/serial/by-id/)")
        if "Permission denied" in reason:
            return f"permission denied on {target}: add this user to the dialout group"
        return f"cannot open {target}: {reason}"

    def close(self) -> None:
        """Close the port or socket; safe to call twice."""
        self._client.close()

    async def read(self, kind: RegisterKind, address: int, count: int, unit: int
                   ) -> list[int] | list[bool]:
        """Read ``count`` registers or bits from one table of device ``unit``."""
        client = self._client
        calls = {
            RegisterKind.COIL: client.read_coils,
            RegisterKind.DISCRETE_INPUT: client.read_discrete_inputs,
            RegisterKind.HOLDING: client.read_holding_registers,
            RegisterKind.INPUT: client.read_input_registers,
        }
        reply = await self._execute(lambda: calls[kind](address, count=count, device_id=unit),
                                    unit)
        # pymodbus takes any well-formed frame from the unit: a late reply to another read
        # (RTU carries no transaction id) must not pass for this one.
        where = {"device": f"unit {unit}", "bus": self.settings.name}
        if reply.function_code != _READ_CODES[kind]:
            raise FrameError(f"reply carries function {reply.function_code}, the request "
                             f"{_READ_CODES[kind]}", **where)
        values = reply.bits if kind.is_bit else reply.registers
        # Bits come in whole bytes: a reply to ``count`` bits holds ceil(count / 8) of them.
        expected = 8 * ((count + 7) // 8) if kind.is_bit else count
        if len(values) != expected:
            raise FrameError(f"malformed reply: {len(values)} "
                             f"{'bits' if kind.is_bit else 'registers'} for {count}", **where)
        return list(values[:count])

    async def write_single(self, address: int, value: int, unit: int) -> tuple[int, int]:
        """FC05 with any 16-bit value; the address and value the reply echoes."""
        request = RawCoilWrite(address, value, dev_id=unit)
        reply = await self._execute(lambda: self._client.execute(False, request), unit)
        if not isinstance(reply, RawCoilWrite):  # FC05 replies decode as RawCoilWrite
            raise FrameError(f"the reply to FC05 is a {type(reply).__name__}",
                             device=f"unit {unit}", bus=self.settings.name)
        return reply.address, reply.value

    async def write_coils(self, address: int, values: Sequence[bool], unit: int) -> None:
        """Set consecutive coils in one request (FC15); FrameError unless the reply echoes
        its address and count, as on Modbus TCP."""
        reply = await self._execute(
            lambda: self._client.write_coils(address, values, device_id=unit), unit)
        echoed = (reply.function_code, getattr(reply, "address", None),
                  getattr(reply, "count", None))
        if echoed != (15, address, len(values)):
            raise FrameError(f"reply to FC15 does not echo address {address} and "
                             f"{len(values)} coils: function {echoed[0]}, address {echoed[1]}, "
                             f"count {echoed[2]}", device=f"unit {unit}", bus=self.settings.name)

    async def _execute(self, call: Callable[[], Awaitable[ModbusPDU]], unit: int) -> ModbusPDU:
        """Run one pymodbus call; every error it can raise leaves as a DeviceError.

        The call is made here, not by the caller, so pymodbus's argument checks (ValueError,
        raised before anything is sent) are translated too.
        """
        where = {"device": f"unit {unit}", "bus": self.settings.name}
        self._rx_bytes = 0
        try:
            reply = await call()
        except ConnectionException as exc:
            raise TransportError(f"not connected: {exc}", **where) from exc
        except ModbusIOException as exc:
            if self._rx_bytes:
                raise FrameError(f"garbled reply ({self._rx_bytes} bytes, bad CRC or framing)",
                                 **where) from exc
            raise DeviceTimeout(
                f"no answer within {self.settings.timeout_s:g} s "
                f"(check unit id, wiring, baud rate and parity)", **where) from exc
        except (ModbusException, OSError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", **where) from exc
        except ValueError as exc:
            raise DeviceError(f"request refused before sending: {exc}", **where) from exc
        if reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise DeviceException(f"exception {code} ({name})", code=code, **where)
        return reply
