"""Periodic ``device.health`` events: each polled device's health for the hub's Gateway page.

``edge-agent status`` shows the same counters on the gateway itself; the hub sees them only
through the outbox, so every ``[sync] health_interval_s`` one event per device carries its
state, fault counters and last successful poll. The events flow like any other (buffer →
outbox → sync), so a gateway offline for a day delivers its health history when it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.device import DeviceHealth
from edge_agent.records import Event, now_ms

__all__ = ["HEALTH_EVENT", "health_attrs", "report_health"]

HEALTH_EVENT = "device.health"


def health_attrs(bus: str, health: DeviceHealth) -> dict[str, Any]:
    """What the hub shows of one device: whether it answers, its fault counters and the time
    of its last good poll (``last_poll_ms``)."""
    return {
        "bus": bus,
        "online": health.online,
        "polls": health.polls,
        "failed_polls": health.failed_polls,
        "timeouts": health.timeouts,
        "frame_errors": health.frame_errors,
        "transport_errors": health.transport_errors,
        "exceptions": sum(health.exceptions.values()),
        "consecutive_failures": health.consecutive_failures,
        "last_poll_ms": health.last_ok_ms,
        "last_error": health.last_error[:200],
    }


async def report_health(buses: Sequence[ModbusBus], put_event: Callable[[Event], None],
                        interval_s: float) -> None:
    """Every ``interval_s``, one ``device.health`` event per polled device, until cancelled.

    The first report waits one interval, so counters describe some polling.
    """
    if not any(bus.devices for bus in buses):
        return
    while True:
        await asyncio.sleep(interval_s)
        stamp = now_ms()
        for bus in buses:
            for device in bus.devices:
                put_event(Event(HEALTH_EVENT, device.name, stamp,
                                health_attrs(bus.name, device.health)))
