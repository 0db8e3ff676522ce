"""The Modbus driver against simulated meters over real TCP and RTU-over-pty links.

Each fault the simulator can inject is met here: silence, exception responses, corrupted
CRCs, slow replies, a refused connection. What matters to a user is checked: values equal
what the meter holds, a dead meter does not stall the others, every failure is counted on
the right device, and the device comes back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.drivers.modbus.bus import BusPolicy, ModbusBus, backoff_s
from edge_agent.drivers.modbus.decoding import readings_from_response
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.errors import DeviceError, DeviceException, DeviceTimeout, TransportError
from edge_agent.profiles import RegisterKind, load_profile
from edge_agent.records import Event, Quality, Reading
from simulators.modbus import Fault, LineSettings, ModbusSimulator, SimulatedMeter

pytestmark = pytest.mark.usefixtures("no_leaks")

#: Long enough that simulated values stay put while a test compares them.
FROZEN = 3600.0


class CollectingSink:
    """Keeps what the bus produces, as the runtime's buffer would."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.events: list[Event] = []

    def put_readings(self, readings: list[Reading]) -> None:
        self.readings.extend(readings)

    def put_event(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, device: str) -> list[str]:
        return [e.kind for e in self.events if e.device == device]


def meter(unit: int, profile_id: str) -> SimulatedMeter:
    return SimulatedMeter(unit, load_profile(profile_id), seed=unit, update_interval=FROZEN)


def device(name: str, unit: int, profile_id: str, *, interval_s: float = 0.05
           ) -> PolledDevice:
    return PolledDevice.from_profile(name, unit, load_profile(profile_id),
                                     interval_s=interval_s, min_silence_ms=0)


def link_to(sim: ModbusSimulator, *, timeout_s: float = 0.2) -> ModbusLink:
    if sim.transport == "tcp":
        return ModbusLink(LinkSettings("lan", "tcp", sim.endpoint, timeout_s=timeout_s))
    return ModbusLink(LinkSettings("rs485", "serial", sim.device_path, timeout_s=timeout_s))


async def wait_until(condition: Callable[[], bool], *, within_s: float = 10.0) -> None:
    """Poll ``condition``; fail (not hang) when it never becomes true."""
    async with asyncio.timeout(within_s):
        while not condition():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(bus: ModbusBus) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(bus.run())
    try:
        yield task
    finally:
        bus.stop()
        await asyncio.wait_for(task, 5)


def assert_matches_meter(readings: list[Reading], sim_meter: SimulatedMeter) -> None:
    assert {r.quantity for r in readings} == set(sim_meter.profile.points)
    for reading in readings:
        assert reading.value == float(sim_meter.value(reading.quantity)), reading.quantity
        assert reading.quality is Quality.GOOD


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
@pytest.mark.parametrize(
    "profile_id",
    ["eastron-sdm120", "eastron-sdm630", "schneider-iem3155", "isma-sfar-4di",
     "waveshare-relay-8ch"],
)
async def test_one_poll_reads_every_point_exactly(transport: str, profile_id: str) -> None:
    sim_meter = meter(7, profile_id)
    async with ModbusSimulator([sim_meter], transport=transport) as sim:  # type: ignore[arg-type]
        target = device("m", 7, profile_id)
        bus = ModbusBus(link_to(sim), [target], CollectingSink())
        try:
            readings = await bus.read_device(target)
        finally:
            bus.link.close()
        assert_matches_meter(readings, sim_meter)
        assert target.health.requests == len(target.requests)
        assert sim_meter.request_count == len(target.requests)


async def test_mixed_rtu_bus_polls_every_device_repeatedly() -> None:
    sims = [meter(1, "eastron-sdm120"), meter(2, "isma-sfar-4di"),
            meter(3, "waveshare-relay-8ch"), meter(4, "eastron-sdm630")]
    async with ModbusSimulator(sims, transport="rtu") as sim:
        devices = [device(f"d{m.unit}", m.unit, m.profile.id) for m in sims]
        sink = CollectingSink()
        bus = ModbusBus(link_to(sim), devices, sink)
        async with running(bus):
            await wait_until(lambda: all(d.health.polls >= 3 for d in devices))
        for sim_meter, polled in zip(sims, devices, strict=True):
            latest = {r.quantity: r for r in sink.readings if r.device == polled.name}
            assert_matches_meter(list(latest.values()), sim_meter)
        # Four meters every 50 ms are more than the line carries: lateness, nothing else.
        assert {e.kind for e in sink.events} <= {"poll.late"}


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_dead_meter_goes_offline_without_stalling_the_bus_then_comes_back(
    transport: str,
) -> None:
    sims = [meter(1, "eastron-sdm120"), meter(2, "eastron-sdm120")]
    async with ModbusSimulator(sims, transport=transport) as sim:  # type: ignore[arg-type]
        healthy, dead = device("healthy", 1, "eastron-sdm120"), device("dead", 2, "eastron-sdm120")
        sink = CollectingSink()
        bus = ModbusBus(link_to(sim), [healthy, dead], sink,
                        policy=BusPolicy(offline_after=3, max_backoff_s=0.5))
        sim.meter(2).set_fault(Fault.no_reply())
        async with running(bus):
            await wait_until(lambda: "device.offline" in sink.kinds("dead"))
            polls_when_offline = healthy.health.polls
            await wait_until(lambda: healthy.health.polls >= polls_when_offline + 20)
            assert dead.health.timeouts >= 3
            assert healthy.health.timeouts == 0
            sim.meter(2).clear_fault()
            await wait_until(lambda: "device.online" in sink.kinds("dead"))
        assert dead.health.online
        assert sink.kinds("dead") == ["device.offline", "device.online"]
        assert "no answer within 0.2 s" in dead.health.last_error
        offline = next(e for e in sink.events if e.kind == "device.offline")
        assert offline.attrs["unit"] == 2


async def test_exception_response_is_counted_by_code() -> None:
    async with ModbusSimulator([meter(1, "eastron-sdm630")], transport="tcp") as sim:
        target = device("feeder", 1, "eastron-sdm630")
        sim.meter(1).set_fault(Fault.exception(4))
        bus = ModbusBus(link_to(sim), [target], CollectingSink())
        try:
            with pytest.raises(DeviceException) as caught:
                await bus.read_device(target)
        finally:
            bus.link.close()
        assert caught.value.code == 4
        assert "feeder on lan: exception 4 (device failure)" in str(caught.value)


async def test_illegal_address_on_a_merged_read_splits_it_at_the_holes() -> None:
    async with ModbusSimulator([meter(1, "eastron-sdm630")], transport="tcp") as sim:
        target = device("feeder", 1, "eastron-sdm630")
        before = list(target.requests)
        assert any(r.has_holes for r in before)
        sim.meter(1).set_fault(Fault.exception(2))
        bus = ModbusBus(link_to(sim), [target], CollectingSink())
        try:
            with pytest.raises(DeviceException):
                await bus.read_device(target)
            assert len(target.requests) > len(before)
            sim.meter(1).clear_fault()
            readings = await bus.read_device(target)
        finally:
            bus.link.close()
        assert_matches_meter(readings, sim.meter(1))


async def test_corrupted_crc_counts_as_a_bad_frame_not_a_timeout() -> None:
    async with ModbusSimulator([meter(1, "eastron-sdm120")], transport="rtu") as sim:
        target = device("berth", 1, "eastron-sdm120")
        sink = CollectingSink()
        bus = ModbusBus(link_to(sim), [target], sink)
        sim.meter(1).set_fault(Fault.corrupt_crc())
        async with running(bus):
            await wait_until(lambda: target.health.frame_errors >= 2)
            assert sink.readings == []
            sim.meter(1).clear_fault()
            await wait_until(lambda: len(sink.readings) > 0)
        assert target.health.timeouts == 0
        assert "garbled reply" in target.health.last_error


async def test_slow_reply_beyond_the_timeout_is_a_timeout_and_within_it_a_reading() -> None:
    async with ModbusSimulator([meter(1, "isma-sfar-4di")], transport="rtu") as sim:
        target = device("water", 1, "isma-sfar-4di")
        bus = ModbusBus(link_to(sim, timeout_s=0.3), [target], CollectingSink())
        try:
            sim.meter(1).set_fault(Fault.slow(0.5))
            with pytest.raises(DeviceTimeout):
                await bus.read_device(target)
            sim.meter(1).set_fault(Fault.slow(0.05))
            readings = await bus.read_device(target)  # the late reply must not be taken
        finally:
            bus.link.close()
        assert len(readings) == 4


async def test_refused_connection_is_a_transport_error_and_the_bus_reconnects() -> None:
    first = ModbusSimulator([meter(1, "eastron-sdm120")], transport="tcp")
    await first.start()
    port = first.port
    target = device("berth", 1, "eastron-sdm120")
    sink = CollectingSink()
    bus = ModbusBus(link_to(first), [target], sink, policy=BusPolicy(offline_after=2,
                                                                       max_backoff_s=0.2))
    async with running(bus):
        await wait_until(lambda: target.health.polls >= 2)
        await first.stop()
        await wait_until(lambda: "device.offline" in sink.kinds("berth"))
        assert target.health.transport_errors + target.health.timeouts >= 2
        async with ModbusSimulator([meter(1, "eastron-sdm120")], transport="tcp", port=port):
            await wait_until(lambda: "device.online" in sink.kinds("berth"))


async def test_missing_serial_port_says_to_check_the_adapter() -> None:
    link = ModbusLink(LinkSettings("rs485", "serial", "/dev/ponton-no-such-tty"))
    with pytest.raises(TransportError, match="does not exist: is the adapter plugged in"):
        await link.open()
    link.close()


async def test_port_held_by_another_program_is_named_as_such() -> None:
    async with ModbusSimulator([meter(1, "isma-sfar-4di")], transport="rtu") as sim:
        holder = link_to(sim)
        await holder.open()
        second = link_to(sim)
        try:
            with pytest.raises(TransportError, match="is in use by another program"):
                await second.open()
        finally:
            second.close()
            holder.close()


async def test_line_settings_the_port_refuses_are_a_clear_error() -> None:
    """This kernel's ptys refuse even parity: the same path as an adapter refusing a setting."""
    async with ModbusSimulator([meter(1, "isma-sfar-4di")], transport="rtu") as sim:
        link = ModbusLink(LinkSettings("rs485", "serial", sim.device_path, parity="E"))
        try:
            with pytest.raises(TransportError, match=r"refused 9600 8E1 .*check baud rate"):
                await link.open()
        finally:
            link.close()


async def test_relay_command_runs_before_the_next_poll_request() -> None:
    sims = [meter(1, "eastron-sdm630"), meter(2, "eastron-sdm630"), meter(3, "waveshare-relay-8ch")]
    async with ModbusSimulator(sims, transport="rtu") as sim:
        devices = [device("a", 1, "eastron-sdm630"), device("b", 2, "eastron-sdm630")]
        bus = ModbusBus(link_to(sim), devices, CollectingSink())
        async with running(bus):
            await wait_until(lambda: devices[1].health.polls >= 1)
            requests_before = sim.meter(1).request_count + sim.meter(2).request_count
            await bus.execute(lambda: bus.link.write_coil(0, True, 3))
            requests_after = sim.meter(1).request_count + sim.meter(2).request_count
        assert [(w.address, w.value) for w in sim.meter(3).coil_writes] == [(0, True)]
        # Only the transaction already on the wire may pass before the command.
        assert requests_after - requests_before <= 1


async def test_counter_going_backwards_is_flagged_suspect() -> None:
    async with ModbusSimulator([meter(1, "eastron-sdm120")], transport="tcp") as sim:
        target = device("berth", 1, "eastron-sdm120")
        bus = ModbusBus(link_to(sim), [target], CollectingSink())
        try:
            first = {r.quantity: r for r in await bus.read_device(target)}
            sim.meter(1).set_value("active_energy_import", 1.0)
            second = {r.quantity: r for r in await bus.read_device(target)}
        finally:
            bus.link.close()
        assert first["active_energy_import"].value > 1.0
        assert second["active_energy_import"].quality is Quality.SUSPECT
        assert second["voltage"].quality is Quality.GOOD


async def test_bus_keeps_the_t35_silence_that_a_raw_client_breaks() -> None:
    """At 19200 baud with line timing, the scheduler never starts a frame on a busy line."""
    line = LineSettings(baudrate=19200)
    sims = [meter(1, "isma-sfar-4di"), meter(2, "isma-sfar-4di")]
    async with ModbusSimulator(sims, transport="rtu", line=line, line_timing=True) as sim:
        settings = LinkSettings("rs485", "serial", sim.device_path, baudrate=19200)
        raw = ModbusLink(settings)
        await raw.open()
        # The check can fail: pymodbus alone rushes. Not at every read on a loaded machine,
        # where the loop may come back to it after t3.5 (2 ms here): up to 200 reads.
        for _ in range(200):
            await raw.read(RegisterKind.HOLDING, 0x34, 8, 1)
            if sim.line_gap_violations:
                break
        raw.close()
        assert sim.line_gap_violations > 0

        before = sim.line_gap_violations
        devices = [device("a", 1, "isma-sfar-4di", interval_s=0), device("b", 2,
                                                                        "isma-sfar-4di",
                                                                        interval_s=0)]
        bus = ModbusBus(ModbusLink(settings), devices, CollectingSink())
        async with running(bus):
            await wait_until(lambda: sum(d.health.polls for d in devices) >= 40)
        assert sim.line_gap_violations == before
        assert sum(d.health.failed_polls for d in devices) == 0


async def test_adapter_that_echoes_its_requests_is_read_with_local_echo() -> None:
    async with ModbusSimulator([meter(1, "isma-sfar-4di")], transport="rtu", echo=True) as sim:
        target = device("water", 1, "isma-sfar-4di")
        settings = LinkSettings("rs485", "serial", sim.device_path, timeout_s=0.3,
                                local_echo=True)
        bus = ModbusBus(ModbusLink(settings), [target], CollectingSink())
        try:
            for _ in range(3):
                assert_matches_meter(await bus.read_device(target), sim.meter(1))
        finally:
            bus.link.close()


async def test_an_unexpected_error_in_one_device_does_not_stop_the_bus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in one device's decoding is logged and counted; the other devices go on."""
    def broken_for_water(request: Any, data: Any, *, device: str, ts_ms: int) -> list[Reading]:
        if device == "water":
            raise RuntimeError("decoder bug")
        return readings_from_response(request, data, device=device, ts_ms=ts_ms)

    monkeypatch.setattr("edge_agent.drivers.modbus.bus.readings_from_response", broken_for_water)
    sims = [meter(1, "eastron-sdm120"), meter(2, "isma-sfar-4di")]
    async with ModbusSimulator(sims, transport="tcp") as sim:
        berth, water = device("berth", 1, "eastron-sdm120"), device("water", 2, "isma-sfar-4di")
        sink = CollectingSink()
        bus = ModbusBus(link_to(sim), [berth, water], sink,
                        policy=BusPolicy(offline_after=2, max_backoff_s=0.2))
        async with running(bus):
            await wait_until(lambda: "device.offline" in sink.kinds("water")
                             and berth.health.polls >= 10)
        assert berth.health.failed_polls == 0
        assert "internal error: RuntimeError('decoder bug')" in water.health.last_error


async def test_replies_that_always_come_late_are_never_taken_for_the_next_answer() -> None:
    """RTU has no transaction id: a late reply must not pass for the next request's."""
    async with ModbusSimulator([meter(1, "eastron-sdm120")], transport="rtu") as sim:
        target = device("late", 1, "eastron-sdm120")
        sink = CollectingSink()
        bus = ModbusBus(link_to(sim, timeout_s=0.3), [target], sink,
                        policy=BusPolicy(offline_after=3, max_backoff_s=0.05))
        sim.meter(1).set_fault(Fault.slow(0.45))
        async with running(bus):
            await wait_until(lambda: target.health.polls >= 6)
        sim.meter(1).clear_fault()
        await asyncio.sleep(0.5)  # the last slow reply still owes its answer; let it finish
        assert sink.readings == []
        assert target.health.failed_polls == target.health.polls


async def test_commands_fail_cleanly_and_the_bus_goes_on() -> None:
    sims = [meter(1, "eastron-sdm120"), meter(3, "waveshare-relay-8ch")]
    async with ModbusSimulator(sims, transport="rtu") as sim:
        berth = device("berth", 1, "eastron-sdm120")
        bus = ModbusBus(link_to(sim), [berth], CollectingSink())
        async with running(bus):
            with pytest.raises(DeviceError, match="request refused before sending"):
                await bus.execute(lambda: bus.link.write_coils(0, [], 3))
            with pytest.raises(DeviceTimeout):
                await bus.execute(lambda: bus.link.write_coil(0, True, 9))
            await bus.execute(lambda: bus.link.write_coil(1, True, 3))
            polls = berth.health.polls
            await wait_until(lambda: berth.health.polls > polls + 2)
        with pytest.raises(TransportError, match="stopping"):
            await bus.execute(lambda: bus.link.write_coil(1, False, 3))
        assert [(w.address, w.value) for w in sim.meter(3).coil_writes] == [(1, True)]


async def test_a_reply_shorter_than_asked_counts_as_a_bad_frame() -> None:
    """A raw Modbus TCP server that answers one register short of the request."""

    async def short_replies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(12)
                tid, unit, function, count = header[0:2], header[6], header[7], header[10:12]
                registers = int.from_bytes(count, "big") - 1
                pdu = bytes([function, 2 * registers]) + b"\x00\x01" * registers
                writer.write(tid + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big")
                             + bytes([unit]) + pdu)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(short_replies, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = device("water", 1, "isma-sfar-4di")
    bus = ModbusBus(ModbusLink(LinkSettings("lan", "tcp", f"127.0.0.1:{port}", timeout_s=0.3)),
                    [target], CollectingSink())
    try:
        async with running(bus):
            await wait_until(lambda: target.health.frame_errors >= 2)
    finally:
        server.close()
        await server.wait_closed()
    assert "malformed reply" in target.health.last_error


@given(failures=st.integers(0, 10**9), interval=st.floats(0.05, 86_400),
       cap=st.floats(0.1, 3600), offline_after=st.integers(1, 100))
def test_backoff_is_bounded_for_any_number_of_failures(
    failures: int, interval: float, cap: float, offline_after: int
) -> None:
    policy = BusPolicy(offline_after=offline_after, max_backoff_s=cap)
    wait = backoff_s(failures, interval, policy)
    assert 0.9 * min(interval, cap) <= wait <= max(cap, interval)
