"""Typed records: what drivers produce and the outbox keeps.

Timestamps are UTC milliseconds since the epoch (``ts_ms``), the unit used end to end.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Event", "Quality", "Reading", "RecordSink", "now_ms"]


def now_ms() -> int:
    """Current wall-clock time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


class Quality(enum.IntEnum):
    """How far a reading can be trusted; stored as a small integer."""

    #: Decoded from a valid reply and within the quantity's plausible range.
    GOOD = 0
    #: Decoded, but doubtful: a cumulative counter went backwards (meter reset or swap).
    SUSPECT = 1
    #: The registers decoded to NaN or infinity; the value is kept only for diagnosis.
    INVALID = 2


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value of one quantity of one device."""

    device: str
    quantity: str
    ts_ms: int
    value: float
    quality: Quality = Quality.GOOD


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened: ``device.offline``, ``gap``, ``access.granted`` and so on."""

    kind: str
    device: str
    ts_ms: int
    attrs: dict[str, Any] = field(default_factory=dict)


class RecordSink(Protocol):
    """Where a driver hands its records; must not block (the runtime batches and writes)."""

    def put_readings(self, readings: list[Reading]) -> None:
        """Take the readings of one poll, uplink or frame."""

    def put_event(self, event: Event) -> None:
        """Take one event."""
