"""RS-485 line timing for Modbus RTU (reference/modbus.md §5). Pure arithmetic.

A character is 1 start bit, 8 data bits, the parity bit if any and the stop bits. Frames are
separated by at least 3.5 character times, a fixed 1.75 ms above 19200 baud.
"""

from __future__ import annotations

__all__ = [
    "char_time_s",
    "ideal_transactions_per_s",
    "inter_frame_gap_s",
    "read_transaction_s",
]

_FAST_LINE_BAUD = 19200
_FAST_LINE_GAP_S = 0.00175


def char_time_s(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """Seconds one character takes on the wire."""
    bits = 1 + 8 + (0 if parity == "N" else 1) + stopbits
    return bits / baudrate


def inter_frame_gap_s(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """The t3.5 silence that ends an RTU frame."""
    if baudrate > _FAST_LINE_BAUD:
        return _FAST_LINE_GAP_S
    return 3.5 * char_time_s(baudrate, parity, stopbits)


def read_transaction_s(registers: int, baudrate: int, parity: str = "N", stopbits: int = 1
                       ) -> float:
    """Ideal time of one FC03/FC04 read: 8-byte request, 5+2N-byte reply, two t3.5 gaps."""
    wire_bytes = 8 + 5 + 2 * registers
    return (wire_bytes * char_time_s(baudrate, parity, stopbits)
            + 2 * inter_frame_gap_s(baudrate, parity, stopbits))


def ideal_transactions_per_s(registers: int, baudrate: int, parity: str = "N",
                             stopbits: int = 1) -> float:
    """The RS-485 limit: reads per second with a zero-latency slave and host."""
    return 1.0 / read_transaction_s(registers, baudrate, parity, stopbits)
