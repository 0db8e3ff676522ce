"""One Modbus connection (a serial line or a TCP endpoint), with errors translated.

Modbus TCP goes through the lean MBAP client (tcp.py, mbap.py); RTU, on a serial port or
over TCP, through pymodbus (rtu.py), which is imported only when a bus speaks RTU, so a
Modbus TCP gateway never loads pymodbus or pyserial. Callers see only the agent's
DeviceError tree. The link owns no schedule; the bus (bus.py) decides what goes on the wire
and when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edge_agent.drivers.modbus.mbap import MbapClient
from edge_agent.drivers.modbus.tcp import TcpLine
from edge_agent.errors import DeviceError, FrameError, TransportError
from edge_agent.profiles.models import RegisterKind

if TYPE_CHECKING:
    from edge_agent.drivers.modbus.rtu import RtuLine

__all__ = ["FLASH_ON_BASE", "LinkSettings", "ModbusLink", "split_host_port"]

#: Waveshare relay boards: FC05 to this address + channel switches the relay on for
#: value × 100 ms, then the board itself switches it off (access-control.md §4.2).
FLASH_ON_BASE = 0x0200
_MAX_FLASH_UNITS = 0x7FFF
#: What one request may hold (Modbus application protocol, section 6) and the address space.
_MAX_READ_BITS, _MAX_READ_REGISTERS, _MAX_WRITE_COILS = 2000, 125, 1968
_ADDRESSES = 0x10000


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Where a bus is and how to talk on it."""

    name: str
    transport: Literal["tcp", "serial"]
    #: ``host:port`` for TCP, a device path (or pyserial URL) for serial.
    target: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = 0.5
    retries: int = 0
    #: RTU framing over TCP, for transparent RS-485 to Ethernet converters.
    rtu_over_tcp: bool = False
    #: The adapter echoes what it sends (some RS-485 dongles): drop the echo before the reply.
    local_echo: bool = False

    @property
    def is_rtu(self) -> bool:
        """Whether frames are RTU, so line timing applies."""
        return self.transport == "serial" or self.rtu_over_tcp


def split_host_port(target: str) -> tuple[str, int]:
    """``host:port`` split; TransportError with an example when it is not one."""
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise TransportError(f"'{target}' is not HOST:PORT with a port from 1 to 65535, "
                             "e.g. 192.168.1.40:502")
    return host, int(port)


class ModbusLink:
    """A client for one bus; reconnection is left to the bus's backoff."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self._line: TcpLine | RtuLine
        if settings.is_rtu:
            from edge_agent.drivers.modbus.rtu import RtuLine  # noqa: PLC0415 - RTU buses only

            self._line = RtuLine(settings)
        else:
            host, port = split_host_port(settings.target)
            self._line = TcpLine(host, port, timeout_s=settings.timeout_s, name=settings.name,
                                 retries=settings.retries)

    @property
    def mbap(self) -> MbapClient | None:
        """The Modbus TCP client and its counters, on a Modbus TCP bus."""
        return self._line.mbap if isinstance(self._line, TcpLine) else None

    async def open(self) -> None:
        """Open the port or connect; TransportError saying what to check when it fails."""
        await self._line.open()

    def close(self) -> None:
        """Close the port or socket; safe to call twice."""
        self._line.close()

    async def read(self, kind: RegisterKind, address: int, count: int, unit: int
                   ) -> list[int] | list[bool]:
        """Read ``count`` registers or bits from one table of device ``unit``."""
        self._check_request(address, count,
                            _MAX_READ_BITS if kind.is_bit else _MAX_READ_REGISTERS, unit)
        return await self._line.read(kind, address, count, unit)

    async def write_coil(self, address: int, value: bool, unit: int) -> None:
        """Set one coil (FC05); FrameError when the reply does not echo the command."""
        await self._write_single(address, 0xFF00 if value else 0, unit)

    async def write_coils(self, address: int, values: Sequence[bool], unit: int) -> None:
        """Set consecutive coils in one request (FC15)."""
        self._check_request(address, len(values), _MAX_WRITE_COILS, unit)
        await self._line.write_coils(address, values, unit)

    async def pulse_coil(self, channel_address: int, units_100ms: int, unit: int) -> None:
        """Switch a relay on for ``units_100ms`` × 100 ms, timed by the board (Waveshare flash).

        The board switches the relay off by itself, so a gateway that dies mid-pulse cannot
        leave a barrier contact closed. FrameError when the reply does not echo the command.
        """
        if not 0 <= channel_address < FLASH_ON_BASE:
            raise ValueError(f"channel address must be 0..{FLASH_ON_BASE - 1}, "
                             f"got {channel_address}")
        if not 1 <= units_100ms <= _MAX_FLASH_UNITS:
            raise ValueError(f"a flash lasts 1..{_MAX_FLASH_UNITS} units of 100 ms, "
                             f"got {units_100ms}")
        await self._write_single(FLASH_ON_BASE + channel_address, units_100ms, unit)

    async def _write_single(self, address: int, value: int, unit: int) -> None:
        """FC05 with any 16-bit value; FrameError unless the reply echoes it (the spec's
        normal response, and the board's proof it took this command)."""
        self._check_request(address, 1, 1, unit)
        echoed = await self._line.write_single(address, value, unit)
        if echoed != (address, value):
            raise FrameError(f"the reply does not echo the command: sent "
                             f"{address:#06x}={value:#06x}, got "
                             f"{echoed[0]:#06x}={echoed[1]:#06x}",
                             device=f"unit {unit}", bus=self.settings.name)

    def _check_request(self, address: int, count: int, limit: int, unit: int) -> None:
        """Refuse, before sending, what the Modbus specification does not allow in a request:
        the same on both paths (pymodbus does not check every limit)."""
        if not (address >= 0 and 1 <= count <= limit and address + count <= _ADDRESSES):
            raise DeviceError(f"request refused before sending: {count} from address "
                              f"{address} (1..{limit} within 0..{_ADDRESSES - 1})",
                              device=f"unit {unit}", bus=self.settings.name)
