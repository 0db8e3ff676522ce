"""RS-485 wire time of Modbus RTU frames, so a pty bus costs what a real line would.

A character is 1 start bit, the data bits, a parity bit if any and the stop bits: 10 bits for
8N1, 11 for 8E1, 8O1 and 8N2. A frame ends after 3.5 silent characters (t3.5), fixed at
1.75 ms above 19200 baud (reference/modbus.md §5.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_agent.profiles import DeviceProfile

__all__ = ["LineSettings", "Parity"]

Parity = Literal["N", "E", "O"]

_FAST_LINE_BAUD = 19200
_FAST_LINE_GAP_S = 0.00175


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Serial format of one bus; it sets the pty ends and the emulated wire time."""

    baudrate: int = 9600
    parity: Parity = "N"
    stopbits: int = 1
    bytesize: int = 8

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise ValueError(f"baud rate must be positive, got {self.baudrate}")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, got {self.parity!r}")
        if self.stopbits not in (1, 2):
            raise ValueError(f"stop bits must be 1 or 2, got {self.stopbits}")
        if self.bytesize not in (7, 8):
            raise ValueError(f"byte size must be 7 or 8, got {self.bytesize}")

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> LineSettings:
        """The factory serial settings of a device model."""
        serial = profile.serial
        return cls(serial.baudrate, serial.parity, serial.stopbits)

    @property
    def bits_per_char(self) -> int:
        """Bits one character occupies on the wire."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_time(self) -> float:
        """Seconds one character takes on the wire."""
        return self.bits_per_char / self.baudrate

    @property
    def frame_gap(self) -> float:
        """The t3.5 silence after which a receiver considers a frame complete."""
        if self.baudrate > _FAST_LINE_BAUD:
            return _FAST_LINE_GAP_S
        return 3.5 * self.char_time

    def frame_time(self, size: int) -> float:
        """Seconds from the first bit of a ``size``-byte frame until the receiver may act on it."""
        return size * self.char_time + self.frame_gap

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"
