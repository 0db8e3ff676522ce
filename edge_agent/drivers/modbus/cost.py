"""What a request and a register cost on a line, so the planner reads a hole only when it pays.

A read across a hole of unused registers saves a request but carries the hole. On an RS-485
line both are bus time (reference/modbus.md §5.2): a request costs its 13 bytes of framing,
two t3.5 gaps, the device's turnaround and the silence the device needs; a register costs two
characters. On Modbus TCP a request costs a round trip and the host's work on one transaction,
while a register costs two bytes on a LAN: any hole that fits in one request is worth reading.
Pure arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge_agent.drivers.modbus.timing import char_time_s, inter_frame_gap_s
from edge_agent.profiles.models import DeviceProfile

__all__ = ["RequestCost", "factory_cost", "line_cost", "serial_cost", "tcp_cost"]

#: Request and reply framing of an FC03/FC04 read on RTU: id, fc, addr, qty, crc + id, fc,
#: byte count, crc.
_RTU_FRAMING_CHARS = 13
#: A device's time to answer, beyond the wire; meters answer in 10 to 60 ms (§5.2): the low
#: end, so the planner never reads a hole that a slow meter would not justify.
_RTU_TURNAROUND_S = 0.010
#: One Modbus TCP transaction: LAN round trip plus device processing, at the fast end of the
#: "sub-ms to 20 ms" of §5.3, plus the host's own work on a request.
_TCP_REQUEST_S = 0.002
#: Two bytes at 10 Mbit/s, the slowest Ethernet a meter may have.
_TCP_REGISTER_S = 16 / 10_000_000
#: No request carries more than 125 registers, so no hole worth reading is larger.
_MAX_HOLE = 124


class _Line(Protocol):
    """The fields of a link's settings the cost depends on (LinkSettings has them)."""

    @property
    def is_rtu(self) -> bool: ...

    @property
    def baudrate(self) -> int: ...

    @property
    def parity(self) -> str: ...

    @property
    def stopbits(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RequestCost:
    """Seconds of line time one more request and one more register cost, on a named line."""

    request_s: float
    register_s: float
    #: For people: "RTU 9600 8N1" or "Modbus TCP".
    line: str

    @property
    def max_gap_registers(self) -> int:
        """The largest hole that costs less to read than the request it saves."""
        return min(_MAX_HOLE, int(self.request_s / self.register_s))


def serial_cost(baudrate: int, parity: str = "N", stopbits: int = 1,
                min_silence_s: float = 0.0) -> RequestCost:
    """Cost on an RTU line (a serial port, or a transparent converter in front of one)."""
    char_s = char_time_s(baudrate, parity, stopbits)
    request_s = (_RTU_FRAMING_CHARS * char_s + 2 * inter_frame_gap_s(baudrate, parity, stopbits)
                 + _RTU_TURNAROUND_S + min_silence_s)
    return RequestCost(request_s, 2 * char_s, f"RTU {baudrate} 8{parity}{stopbits}")


def tcp_cost(min_silence_s: float = 0.0) -> RequestCost:
    """Cost on Modbus TCP (MBAP framing, a device or a protocol-converting gateway)."""
    return RequestCost(_TCP_REQUEST_S + min_silence_s, _TCP_REGISTER_S, "Modbus TCP")


def line_cost(line: _Line, min_silence_s: float = 0.0) -> RequestCost:
    """Cost on the line a bus is configured with."""
    if line.is_rtu:
        return serial_cost(line.baudrate, line.parity, line.stopbits, min_silence_s)
    return tcp_cost(min_silence_s)


def factory_cost(profile: DeviceProfile) -> RequestCost:
    """Cost on the device's factory serial line, with its own silence: the plan a profile
    shows before any gateway file says where the device is."""
    serial = profile.serial
    return serial_cost(serial.baudrate, serial.parity, serial.stopbits,
                       profile.limits.min_silence_ms / 1000.0)
