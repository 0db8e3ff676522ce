"""``device.health`` events: each polled device's counters, every health interval."""

from __future__ import annotations

import asyncio

from edge_agent.buffer import RecordBuffer
from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.health_reports import HEALTH_EVENT, report_health
from edge_agent.profiles import load_profile
from edge_agent.records import Event


def _bus(name: str, devices: list[str]) -> ModbusBus:
    profile = load_profile("eastron-sdm120")
    polled = [PolledDevice.from_profile(device, unit, profile, interval_s=1.0)
              for unit, device in enumerate(devices, start=1)]
    return ModbusBus(ModbusLink(LinkSettings(name, "tcp", "127.0.0.1:1")), polled, RecordBuffer())


async def test_every_interval_each_polled_device_reports_its_counters() -> None:
    buses = [_bus("a", ["m1", "m2"]), _bus("b", ["m3"])]
    health = buses[0].devices[1].health
    health.polls, health.failed_polls, health.timeouts = 12, 3, 2
    health.exceptions[2] = 4
    health.last_ok_ms, health.last_error = 1_700_000_000_000, "timeout after 300 ms"
    events: list[Event] = []
    task = asyncio.create_task(report_health(buses, events.append, 0.05))
    async with asyncio.timeout(10):  # two rounds, however late a loaded machine runs them
        while len(events) < 6:
            await asyncio.sleep(0.01)
    task.cancel()
    assert [e.device for e in events[:6]] == ["m1", "m2", "m3"] * 2
    assert {e.kind for e in events} == {HEALTH_EVENT}
    m2 = events[1].attrs
    assert (m2["bus"], m2["polls"], m2["failed_polls"], m2["timeouts"], m2["exceptions"]) == (
        "a", 12, 3, 2, 4)
    assert (m2["last_poll_ms"], m2["last_error"]) == (1_700_000_000_000, "timeout after 300 ms")
    assert (events[0].attrs["last_poll_ms"], events[0].attrs["polls"]) == (None, 0)


async def test_a_gateway_without_polled_devices_sends_no_report() -> None:
    events: list[Event] = []
    await asyncio.wait_for(report_health([_bus("empty", [])], events.append, 0.01), 1)
    assert events == []
