"""Graceful overload: asked more than it can store, the gateway stretches its polls.

Real gateways on real TCP simulators. The overload comes from a slow disk (each outbox write
held for a while) and a small memory buffer, so the writer, not the test machine's speed,
sets the limit: the buses must wait for room, count what they miss as ``late`` and say so
coalesced, and drop nothing. Readings are dropped only by the disk quota, counted.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent import runtime
from edge_agent.buffer import WRITE_BATCH, RecordBuffer
from edge_agent.config import load_config
from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.overload import Lateness, LimitedLog
from edge_agent.profiles import load_profile
from edge_agent.records import Event, Reading
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE, Gateway
from edge_agent.store import Outbox
from simulators.modbus import ModbusSimulator, SimulatedMeter
from tests.test_runtime import drain

METERS = 2
VALUES = 80  # an SDM630's full profile


def gateway_toml(tmp_path: Path, endpoints: list[str], *, interval_s: float,
                 quota_mb: float | None = None) -> Path:
    """One TCP bus and one SDM630 per endpoint."""
    lines = ['[gateway]', 'id = "overload"', 'data_dir = "data"', '']
    for index, endpoint in enumerate(endpoints):
        lines += ['[[buses]]', f'name = "lan-{index}"', f'tcp = "{endpoint}"', '',
                  '[[devices]]', f'name = "meter-{index}"', f'bus = "lan-{index}"',
                  'profile = "eastron-sdm630"', 'unit = 1', f'interval_s = {interval_s}', '']
    if quota_mb is not None:
        lines += ['[outbox]', f'quota_mb = {quota_mb}', '']
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def run_gateway(config: Path, seconds: float) -> tuple[Gateway, float, float]:
    """Run a gateway for ``seconds`` after it started; (gateway, start, stop) wall times."""
    gateway = Gateway(load_config(config))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    await asyncio.wait_for(gateway.started.wait(), 10)
    started = time.time()
    await asyncio.sleep(seconds)
    stopped = time.time()
    stop.set()
    await asyncio.wait_for(task, 20)
    return gateway, started, stopped


def polled(gateway: Gateway) -> dict[str, int]:
    """Successful polls per device."""
    return {d.name: d.health.polls - d.health.failed_polls
            for bus in gateway.buses for d in bus.devices}


def meters() -> list[ModbusSimulator]:
    return [ModbusSimulator([SimulatedMeter(1, load_profile("eastron-sdm630"))])
            for _ in range(METERS)]


@pytest.mark.usefixtures("no_leaks")
async def test_a_gateway_asked_too_much_stretches_its_polls_and_drops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A slow disk (0.5 s a transaction) behind a buffer of 1,000 readings: the writer stores
    # at most about 2,000 readings a second, the meters are asked for 3,200.
    monkeypatch.setattr(runtime, "RecordBuffer", functools.partial(RecordBuffer,
                                                                   max_readings=1000))
    append = Outbox.append_many

    def slow_append(self: Outbox, parts: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return append(self, parts, **kwargs)

    monkeypatch.setattr(Outbox, "append_many", slow_append)
    caplog.set_level(logging.INFO, logger="edge_agent")
    sims = meters()
    async with sims[0], sims[1]:
        config = gateway_toml(tmp_path, [sim.endpoint for sim in sims], interval_s=0.05)
        gateway, started, stopped = await run_gateway(config, 4.0)

    readings, events = drain(tmp_path / "data" / OUTBOX_FILE)
    per_device = {name: sum(1 for r in readings if r.device == name) for name in polled(gateway)}
    # Every poll made is stored whole: nothing dropped in memory, nothing lost at the stop.
    assert per_device == {name: n * VALUES for name, n in polled(gateway).items()}
    assert gateway.buffer.dropped_total == 0
    assert not [e for e in events if e.kind == "gap"]
    # What could not be polled is lateness, per device, in the status file too.
    late = {d.name: d.health.late for bus in gateway.buses for d in bus.devices}
    assert all(count > 10 for count in late.values()), late
    status = json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))
    assert {d["name"]: d["late"] for d in status["devices"]} == late
    # Told coalesced: one event per device in a run shorter than a minute, no more.
    late_events = [e for e in events if e.kind == "poll.late"]
    assert sorted(e.device for e in late_events) == sorted(late)
    for event in late_events:
        assert 1 <= event.attrs["late"] <= late[event.device]
        assert event.attrs["bus"] == f"lan-{event.device[-1]}"
    # Log lines while overloaded: one a second at most, whatever the load.
    lines = [r for r in caplog.records if started <= r.created <= stopped]
    assert len(lines) <= stopped - started + 1, [r.getMessage() for r in lines]
    assert any("polling cannot keep up" in r.getMessage() for r in lines)


@pytest.mark.usefixtures("no_leaks")
async def test_the_disk_quota_still_drops_readings_and_says_how_many(tmp_path: Path) -> None:
    sims = meters()
    async with sims[0], sims[1]:
        config = gateway_toml(tmp_path, [sim.endpoint for sim in sims], interval_s=0.05,
                              quota_mb=0.1)
        gateway, _started, _stopped = await run_gateway(config, 4.0)

    readings, events = drain(tmp_path / "data" / OUTBOX_FILE)
    status = json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))
    evicted = {s["name"]: s["evicted_total"] for s in status["streams"]}["readings"]
    gaps = [e.attrs for e in events if e.kind == "gap"]
    assert evicted > 0
    assert {(g["reason"], g["stream"]) for g in gaps} == {("disk_quota", "readings")}
    assert sum(g["count"] for g in gaps) == evicted
    # Exact accounting: what is stored plus what the quota evicted is every reading polled.
    assert len(readings) + evicted == sum(polled(gateway).values()) * VALUES
    assert gateway.buffer.dropped_total == 0


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lateness_is_one_event_a_second_and_one_per_device_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, events = Clock(), list[Event]()
    lateness = Lateness(events.append, clock=clock)
    caplog.set_level(logging.INFO, logger="edge_agent.overload")
    for _ in range(1000):  # three devices late on every poll for 10 s
        for device in ("a", "b", "c"):
            lateness.note(device, "lan", 2, 0.1)
            lateness.report()
        clock.now += 0.01
    assert [e.device for e in events] == ["a", "b", "c"]  # 10 s: one each, then none
    # Coalesced: each event holds every late slot of its device until its turn came.
    assert events[0].attrs["late"] == 2
    assert [e.attrs["late"] > 150 for e in events[1:]] == [True, True]
    assert len(caplog.records) == 10
    clock.now += 60
    lateness.report()
    lateness.report()
    assert [e.device for e in events][3:] == ["a"]
    assert events[3].attrs["late"] == 2000 - 2
    assert lateness.total == 6000


def test_lateness_with_nothing_late_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    events = list[Event]()
    lateness = Lateness(events.append, clock=Clock())
    lateness.note("a", "lan", 0, 1.0)
    lateness.report()
    assert events == []
    assert caplog.records == []


def test_buffer_room_batches_and_acknowledgements_wait_for_their_readings() -> None:
    buffer = RecordBuffer(max_readings=50_000)
    assert buffer.room == 40_000
    acked: list[str] = []
    buffer.put_readings([Reading("m", "voltage", ts, 230.0) for ts in range(WRITE_BATCH + 5)])
    buffer.put_delivered(["msg-1"], lambda: acked.append("msg-1"))
    buffer.put_readings([Reading("m", "voltage", ts, 230.0) for ts in range(7)])
    assert buffer.room == 40_000 - WRITE_BATCH - 12
    assert buffer.urgent.is_set()  # a whole batch waits
    readings, keys, callbacks = buffer.batch()
    assert (len(readings), keys, callbacks) == (WRITE_BATCH, [], 0)  # msg-1 is not all in
    buffer.written_readings(len(readings))
    readings, keys, callbacks = buffer.batch()
    assert (len(readings), keys, callbacks) == (12, ["msg-1"], 1)
    buffer.written_readings(len(readings))
    buffer.written_deliveries(len(keys), callbacks)
    assert acked == ["msg-1"]
    assert len(buffer) == 0
    assert not buffer.ready.is_set()
    assert not buffer.urgent.is_set()


def test_readings_dropped_during_a_write_are_never_those_being_written() -> None:
    """Non-waiting producers overflow the buffer while a transaction is on disk: what the
    writer took stays taken, the drop takes the oldest of the rest, and nothing else goes."""
    buffer = RecordBuffer(max_readings=100)
    buffer.put_readings([Reading("m", "voltage", ts, 230.0) for ts in range(80)])
    taken, _keys, _callbacks = buffer.batch()
    assert [r.ts_ms for r in taken] == list(range(80))
    buffer.put_readings([Reading("m", "voltage", ts, 230.0) for ts in range(80, 130)])
    assert buffer.dropped_total == 30
    buffer.written_readings(len(taken))
    assert [r.ts_ms for r in buffer.readings] == list(range(110, 130))
    gap = next(e for e in buffer.events if e.kind == "gap")
    assert (gap.attrs["count"], gap.attrs["from_ts_ms"], gap.attrs["to_ts_ms"]) == (30, 80, 109)


async def test_a_full_buffer_wakes_its_waiters_once_the_writer_made_room() -> None:
    buffer = RecordBuffer(max_readings=100)
    buffer.put_readings([Reading("m", "voltage", ts, 230.0) for ts in range(85)])
    assert buffer.room == -5
    wake = asyncio.Event()
    buffer.notify_when_room(wake.set)
    buffer.written_readings(3)
    assert not wake.is_set()  # still above the high-water mark
    buffer.written_readings(10)
    assert wake.is_set()
    assert buffer.dropped_total == 0


@pytest.mark.usefixtures("no_leaks")
async def test_a_stalled_bus_shows_its_missed_slots_before_polling_resumes() -> None:
    """Status must not read "0 late" for a device that has waited minutes for room."""
    buffer = RecordBuffer(max_readings=100)
    buffer.put_readings([Reading("other", "voltage", ts, 230.0) for ts in range(100)])
    async with ModbusSimulator([SimulatedMeter(1, load_profile("eastron-sdm120"))]) as sim:
        meter = PolledDevice.from_profile("meter", 1, load_profile("eastron-sdm120"),
                                          interval_s=0.1, min_silence_ms=0)
        bus = ModbusBus(ModbusLink(LinkSettings("lan", "tcp", sim.endpoint, timeout_s=0.5)),
                        [meter], buffer, backpressure=buffer)
        assert bus.overdue(meter) == 0, "a bus that does not run has nothing overdue"
        started = time.monotonic()
        task = asyncio.create_task(bus.run())
        try:
            await asyncio.sleep(0.65)
            waiting = bus.overdue(meter)
            elapsed = time.monotonic() - started
            assert (meter.health.polls, meter.health.late) == (0, 0)
            assert 5 <= waiting <= elapsed / 0.1, (waiting, elapsed)
            buffer.written_readings(100)  # the writer catches up: polling resumes
            async with asyncio.timeout(10):
                while not meter.health.last_ok_ms:  # a poll done, not only begun
                    await asyncio.sleep(0.01)
            # The slots status showed as overdue are now counted late, not counted twice.
            assert meter.health.late >= waiting
            assert bus.overdue(meter) <= 1
        finally:
            bus.stop()
            await asyncio.wait_for(task, 5)
    assert bus.overdue(meter) == 0


def test_polling_log_lines_are_one_a_second_and_count_what_they_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    logs = LimitedLog(clock=clock)
    logger = logging.getLogger("edge_agent.modbus")
    caplog.set_level(logging.INFO, logger="edge_agent.modbus")
    for second in range(3):  # 200 meters timing out about every 0.1 s
        for poll in range(2048):
            logs.log(logger, logging.INFO, "meter-%03d on lan: no answer", poll % 200)
            clock.now += 1 / 2048  # exact in binary: a second is 2048 steps
        assert len(caplog.records) == second + 1
    assert [r.getMessage() for r in caplog.records] == [
        "meter-000 on lan: no answer",
        "meter-000 on lan: no answer (2047 more lines like these held back)",
        "meter-000 on lan: no answer (2047 more lines like these held back)"]
