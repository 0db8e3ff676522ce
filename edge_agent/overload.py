"""Graceful overload: lateness instead of dropped readings, reported without a storm.

When the buses ask more than the machine, a line or the outbox writer can give, dropping
readings wastes polls already paid for, and one log line plus one event per dropped poll
(each forcing a write) turns an overload into a collapse. Instead a bus waits before a poll
until the record buffer has room (backpressure), and the slots of a device's grid that pass
meanwhile are counted as late: ``late`` in each device's status and metrics. This module
reports that lateness coalesced: at most one ``poll.late`` event per device a minute, and at
most one event and one log line a second for the whole gateway, whatever the load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from edge_agent.records import Event, now_ms

__all__ = ["Backpressure", "Lateness", "LimitedLog", "RateLimit"]

log = logging.getLogger("edge_agent.overload")

#: Shortest time between two ``poll.late`` events about the same device.
DEVICE_EVENT_PERIOD_S = 60.0
#: Shortest time between two lateness events, or two lateness log lines, for the gateway.
GATEWAY_REPORT_PERIOD_S = 1.0


class Backpressure(Protocol):
    """What a bus asks before a poll: is there room for its readings, and when again."""

    @property
    def room(self) -> int:
        """Readings that may still be queued before producers that can wait should."""

    def notify_when_room(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` once there is room again (at once when there is)."""


class RateLimit:
    """Lets one thing through per period; counts what it held back since the last one."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._period_s = period_s
        self._clock = clock
        self._next = float("-inf")
        #: Attempts refused since the last one allowed.
        self.held = 0

    def allow(self) -> bool:
        """True at most once per period."""
        now = self._clock()
        if now < self._next:
            self.held += 1
            return False
        self._next = now + self._period_s
        return True


class LimitedLog:
    """Log lines about polling trouble, one a second at most for the whole gateway.

    200 meters timing out on a starved machine would otherwise log 200 lines a second; the
    lines held back are counted in the next one, and each device's counters in status keep
    every failure.
    """

    def __init__(self, period_s: float = GATEWAY_REPORT_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = RateLimit(period_s, clock)

    def log(self, logger: logging.Logger, level: int, message: str, *args: object) -> bool:
        """Log the line if the rate allows; whether it was logged."""
        if not self._limit.allow():
            return False
        held, self._limit.held = self._limit.held, 0
        if held:
            message += " (%d more lines like these held back)"
            args = (*args, held)
        logger.log(level, message, *args)
        return True


class _Pending:
    """Late slots of one device not yet told in an event."""

    __slots__ = ("bus", "count", "first_ms", "interval_s")

    def __init__(self, bus: str, interval_s: float) -> None:
        self.bus = bus
        self.interval_s = interval_s
        self.count = 0
        self.first_ms = now_ms()


class Lateness:
    """Counts late polls per device and reports them coalesced through ``put_event``.

    :meth:`note` is called by the buses as slots are missed, :meth:`report` after each poll;
    neither blocks nor writes anything itself. Devices waiting longest for their event go
    first, so with many late devices each still gets its event, just less often than once a
    minute.
    """

    def __init__(self, put_event: Callable[[Event], None], *,
                 clock: Callable[[], float] = time.monotonic,
                 device_period_s: float = DEVICE_EVENT_PERIOD_S,
                 gateway_period_s: float = GATEWAY_REPORT_PERIOD_S,
                 logs: LimitedLog | None = None) -> None:
        self._put_event = put_event
        #: The gateway's polling log lines (the buses' failures, this report), rate-limited.
        self.logs = logs if logs is not None else LimitedLog(gateway_period_s, clock)
        self._clock = clock
        self._device_period_s = device_period_s
        self._period_s = gateway_period_s
        self._next_report = float("-inf")
        self._pending: dict[str, _Pending] = {}
        self._last_event: dict[str, float] = {}
        #: Late slots since the last log line, and on how many devices.
        self._unlogged = 0
        self._unlogged_devices: set[str] = set()
        #: Late slots on every device since the start.
        self.total = 0

    def note(self, device: str, bus: str, late: int, interval_s: float) -> None:
        """``device`` missed ``late`` slots of its grid."""
        if late <= 0:
            return
        pending = self._pending.get(device)
        if pending is None:
            pending = self._pending[device] = _Pending(bus, interval_s)
        pending.count += late
        self.total += late
        self._unlogged += late
        self._unlogged_devices.add(device)

    def report(self) -> None:
        """Emit what the rate limits allow now: one log line and one event at most.

        Cheap when there is nothing to do, as it is called after every poll.
        """
        if not self._pending:
            return
        now = self._clock()
        if now < self._next_report:
            return
        self._next_report = now + self._period_s
        if self._unlogged and self.logs.log(
                log, logging.WARNING, "polling cannot keep up: %d polls late on %d devices "
                "(schedules stretched, nothing dropped; see 'late' in status)",
                self._unlogged, len(self._unlogged_devices)):
            self._unlogged = 0
            self._unlogged_devices.clear()
        never = float("-inf")
        due = [name for name in self._pending
               if now - self._last_event.get(name, never) >= self._device_period_s]
        if not due:
            return
        device = min(due, key=lambda name: self._last_event.get(name, never))
        pending = self._pending.pop(device)
        self._last_event[device] = now
        self._put_event(Event("poll.late", device, now_ms(), {
            "bus": pending.bus, "late": pending.count, "interval_s": pending.interval_s,
            "since_ms": pending.first_ms}))
