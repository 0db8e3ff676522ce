"""The Modbus simulator, checked through real transports with independent clients.

RTU runs over the simulator's pty pair with minimalmodbus (a different Modbus implementation
from the agent's pymodbus); TCP uses pymodbus's sync client or a raw socket. Blocking clients
run in a thread so the simulator keeps serving on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import minimalmodbus
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from edge_agent.codecs.modbus_values import ValueType, WordOrder
from edge_agent.profiles import Point, RegisterKind, available_profiles, load_profile
from edge_agent.quantities import lookup_quantity
from simulators.modbus import (
    Fault,
    FaultKind,
    LineSettings,
    ModbusSimulator,
    SimulatedMeter,
    parse_fault,
    tcp_meters,
)
from simulators.modbus.values import ValueModel

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
#: Long enough that values stay put during a test, so reads compare exactly.
FROZEN = 3600.0

_BYTEORDER = {
    (WordOrder.BIG, False): minimalmodbus.BYTEORDER_BIG,
    (WordOrder.LITTLE, False): minimalmodbus.BYTEORDER_LITTLE_SWAP,
    (WordOrder.BIG, True): minimalmodbus.BYTEORDER_BIG_SWAP,
    (WordOrder.LITTLE, True): minimalmodbus.BYTEORDER_LITTLE,
}


pytestmark = pytest.mark.usefixtures("no_leaks")


#: How long a client waits for a reply that must come: a loaded machine may take its time.
ANSWER_S = 5.0
#: How long a client waits where no full reply comes (silence, a short exception frame that
#: minimalmodbus reads until its timeout): what the test waits out each time.
SHORT_S = 0.3


@contextlib.contextmanager
def rtu(path: str, unit: int = 1, *, timeout: float = ANSWER_S) -> Iterator[Any]:
    """A minimalmodbus instrument on the simulator's pty; the port is closed afterwards."""
    port = serial.Serial(path, 9600, timeout=timeout)
    try:
        yield minimalmodbus.Instrument(port, unit)
    finally:
        port.close()


@contextlib.contextmanager
def tcp(port: int, timeout: float = ANSWER_S) -> Iterator[ModbusTcpClient]:
    """A connected pymodbus sync client with no retries."""
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
    assert client.connect()  # type: ignore[no-untyped-call]  # untyped in pymodbus
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


def read_rtu(instrument: Any, point: Point) -> float | bool:
    """One point read and decoded by minimalmodbus itself, then scaled."""
    function = point.kind.read_function
    if point.kind.is_bit:
        return bool(instrument.read_bit(point.address, functioncode=function))
    signed = point.type.value.startswith("int")
    order = _BYTEORDER[(point.word_order, point.byte_swap)]
    if point.type in (ValueType.FLOAT32, ValueType.FLOAT64):
        raw = instrument.read_float(point.address, functioncode=function,
                                    number_of_registers=point.count, byteorder=order)
    elif point.count == 1:
        raw = instrument.read_register(point.address, functioncode=function, signed=signed)
    else:
        raw = instrument.read_long(point.address, functioncode=function, signed=signed,
                                   byteorder=order, number_of_registers=point.count)
    return float(raw * point.scale)


def read_tcp(client: ModbusTcpClient, point: Point, unit: int = 1) -> float | bool:
    """One point read with pymodbus and decoded by its own converter, then scaled."""
    readers = {
        RegisterKind.COIL: client.read_coils,
        RegisterKind.DISCRETE_INPUT: client.read_discrete_inputs,
        RegisterKind.HOLDING: client.read_holding_registers,
        RegisterKind.INPUT: client.read_input_registers,
    }
    reply = readers[point.kind](point.address, count=point.count, device_id=unit)
    assert not reply.isError(), reply
    if point.kind.is_bit:
        return bool(reply.bits[0])
    registers = reply.registers
    if point.byte_swap:
        registers = [((r & 0xFF) << 8) | (r >> 8) for r in registers]
    raw = client.convert_from_registers(registers, client.DATATYPE[point.type.name],
                                        word_order=point.word_order.value)
    assert isinstance(raw, int | float)
    return raw * point.scale


def sdm120(unit: int = 1, **kwargs: Any) -> SimulatedMeter:
    return SimulatedMeter(unit, load_profile("eastron-sdm120"), seed=unit,
                          update_interval=kwargs.pop("update_interval", FROZEN), **kwargs)


async def in_thread(function: Callable[[], T]) -> T:
    return await asyncio.to_thread(function)


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile_id", available_profiles())
async def test_every_point_reads_back_its_true_value_over_rtu(profile_id: str) -> None:
    profile = load_profile(profile_id)
    meter = SimulatedMeter(1, profile, seed=7, update_interval=FROZEN)
    async with ModbusSimulator([meter], transport="rtu") as sim:
        def read_all() -> dict[str, float | bool]:
            with rtu(sim.device_path) as instrument:
                return {q: read_rtu(instrument, p) for q, p in profile.points.items()}

        read = await in_thread(read_all)
    assert read == {q: meter.value(q) for q in profile.points}


@pytest.mark.parametrize("profile_id", available_profiles())
async def test_every_point_reads_back_its_true_value_over_tcp(profile_id: str) -> None:
    profile = load_profile(profile_id)
    meter = SimulatedMeter(1, profile, seed=8, update_interval=FROZEN)
    async with ModbusSimulator([meter], transport="tcp") as sim:
        def read_all() -> dict[str, float | bool]:
            with tcp(sim.port) as client:
                return {q: read_tcp(client, p) for q, p in profile.points.items()}

        read = await in_thread(read_all)
    assert read == {q: meter.value(q) for q in profile.points}


async def test_values_are_plausible_for_an_energy_meter() -> None:
    meter = SimulatedMeter(1, load_profile("eastron-sdm630"), seed=3, update_interval=0)
    for _ in range(50):
        meter.refresh()
        assert 225 < meter.value("voltage_l2") < 235
        assert 390 < meter.value("voltage_l1_l2") < 410
        assert 49.9 < meter.value("frequency") < 50.1
        assert 0.8 <= meter.value("power_factor_l3") <= 1.0
        assert meter.value("active_power") == pytest.approx(
            sum(meter.value(f"active_power_l{i}") for i in (1, 2, 3)), rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.lists(st.floats(0.0, 3600.0), max_size=20))
def test_counters_never_decrease_and_totals_add_up(seed: int, steps: list[float]) -> None:
    profile = load_profile("eastron-sdm630")
    model = ValueModel(profile.points, now=0.0, seed=seed)
    counters = [q for q in profile.points if (spec := lookup_quantity(q)) and spec.cumulative]
    now, last = 0.0, {q: model.value(q) for q in counters}
    for step in steps:
        now += step
        model.advance(now)
        for quantity in counters:
            assert model.value(quantity) >= last[quantity]
            last[quantity] = model.value(quantity)
        phases = sum(model.value(f"active_energy_import_l{i}") for i in (1, 2, 3))
        assert model.value("active_energy_import") == pytest.approx(phases, rel=1e-9)


def test_energy_integrates_power() -> None:
    clock = [100.0]
    meter = SimulatedMeter(1, load_profile("eastron-sdm120"), seed=1, update_interval=0,
                           clock=lambda: clock[0])
    meter.set_value("active_energy_import", 1.0)
    meter.set_value("active_power", 3600.0)  # 1 Wh per second
    clock[0] += 10.0
    meter.refresh()
    assert meter.value("active_energy_import") == pytest.approx(1.010, abs=1e-6)
    meter.set_value("active_power", 0.0)  # the outlet is switched off
    clock[0] += 10.0
    meter.refresh()
    assert meter.value("active_energy_import") == pytest.approx(1.010, abs=1e-6)
    assert meter.value("current") == 0.0
    meter.unpin("active_power")
    clock[0] += 10.0
    meter.refresh()
    assert meter.value("active_energy_import") > 1.010
    assert meter.value("active_power") > 0


async def test_energy_never_decreases_across_reads() -> None:
    meter = sdm120(update_interval=0)
    meter.set_value("active_energy_import", 1.0)  # fine float32 resolution: growth shows
    async with ModbusSimulator([meter], transport="rtu") as sim:
        def poll() -> list[float]:
            with rtu(sim.device_path) as instrument:
                values = []
                for _ in range(20):
                    values.append(instrument.read_float(0x48, functioncode=4))
                    time.sleep(0.005)
                return values

        values = await in_thread(poll)
    assert values == sorted(values)
    assert values[-1] > values[0]


# -- register map and limits ----------------------------------------------------------------


async def test_block_reads_span_the_gaps_between_points() -> None:
    meter = sdm120()
    async with ModbusSimulator([meter], transport="rtu") as sim:
        def block_reads() -> tuple[list[int], list[int]]:
            with rtu(sim.device_path) as instrument:
                first = instrument.read_registers(0x0000, 80, functioncode=4)
                holes_only = instrument.read_registers(0x0060, 40, functioncode=4)
                return first, holes_only

        first, holes_only = await in_thread(block_reads)
    assert first[0:2] == meter.registers("voltage")
    assert first[0x46:0x48] == meter.registers("frequency")
    assert first[0x02:0x06] == [0, 0, 0, 0]
    assert holes_only == [0] * 40


async def test_device_limits_are_enforced_like_a_real_meter() -> None:
    async with ModbusSimulator([sdm120()], transport="rtu") as sim:
        def refused(address: int, count: int) -> str:
            with rtu(sim.device_path, timeout=SHORT_S) as instrument:
                with pytest.raises(minimalmodbus.IllegalRequestError) as error:
                    instrument.read_registers(address, count, functioncode=4)
                return str(error.value)

        assert "illegal data value" in await in_thread(lambda: refused(0, 82))  # > 80 registers
        assert "illegal data address" in await in_thread(lambda: refused(1, 2))  # odd start
        assert "illegal data address" in await in_thread(lambda: refused(0x0200, 2))  # past end


# -- faults ---------------------------------------------------------------------------------


async def test_rtu_faults_switch_on_and_off_while_polling() -> None:
    meters = [sdm120(1), sdm120(2)]
    async with ModbusSimulator(meters, transport="rtu") as sim:
        def read(unit: int, timeout: float = ANSWER_S) -> float:
            with rtu(sim.device_path, unit, timeout=timeout) as instrument:
                return float(instrument.read_float(0, functioncode=4))

        def fails_with(unit: int, error: type[Exception]) -> str:
            with pytest.raises(error) as caught:
                read(unit, SHORT_S)
            return str(caught.value)

        assert await in_thread(lambda: read(1)) == meters[0].value("voltage")

        sim.meter(1).set_fault(Fault.no_reply())
        served = sim.meter(1).request_count
        await in_thread(lambda: fails_with(1, minimalmodbus.NoResponseError))
        assert sim.meter(1).request_count == served  # a dead node does not even listen
        assert await in_thread(lambda: read(2)) == meters[1].value("voltage")

        sim.meter(1).set_fault(Fault.exception(6))
        await in_thread(lambda: fails_with(1, minimalmodbus.SlaveDeviceBusyError))
        sim.meter(1).set_fault(Fault.exception(2))
        await in_thread(lambda: fails_with(1, minimalmodbus.IllegalRequestError))
        sim.meter(1).set_fault(Fault.exception(4))
        assert "device failure" in await in_thread(
            lambda: fails_with(1, minimalmodbus.SlaveReportedException))

        sim.meter(1).set_fault(Fault.corrupt_crc())
        assert "Checksum" in await in_thread(
            lambda: fails_with(1, minimalmodbus.InvalidResponseError))

        sim.meter(1).set_fault(Fault.slow(0.15))
        started = time.monotonic()
        assert await in_thread(lambda: read(1)) == meters[0].value("voltage")
        assert time.monotonic() - started >= 0.15

        sim.meter(1).clear_fault()
        assert await in_thread(lambda: read(1)) == meters[0].value("voltage")


async def test_corrupt_crc_with_a_probability_spoils_some_replies() -> None:
    meter = sdm120(fault=Fault.corrupt_crc(0.5))
    async with ModbusSimulator([meter], transport="rtu") as sim:
        def outcomes() -> set[str]:
            seen = set()
            with rtu(sim.device_path) as instrument:
                for _ in range(30):
                    try:
                        instrument.read_float(0, functioncode=4)
                        seen.add("ok")
                    except minimalmodbus.InvalidResponseError:
                        seen.add("crc")
            return seen

        assert await in_thread(outcomes) == {"ok", "crc"}


async def test_unknown_unit_ids_stay_silent() -> None:
    """pymodbus 3.16.1 alone answers exception 4; an absent RS-485 node sends nothing."""
    async with ModbusSimulator([sdm120(1)], transport="rtu") as rtu_sim, \
            ModbusSimulator([sdm120(1)], transport="tcp") as tcp_sim:
        def rtu_silent() -> None:
            with rtu(rtu_sim.device_path, 9, timeout=SHORT_S) as instrument:  # no bytes back
                with pytest.raises(minimalmodbus.NoResponseError):
                    instrument.read_float(0, functioncode=4)
                with pytest.raises(minimalmodbus.NoResponseError):
                    instrument.write_bit(0, 1)
            with rtu(rtu_sim.device_path, 1) as instrument:
                assert instrument.read_float(0, functioncode=4) > 200

        def tcp_silent() -> bytes:
            with socket.create_connection(("127.0.0.1", tcp_sim.port), timeout=ANSWER_S) as sock:
                sock.sendall(struct.pack(">HHHBBHH", 7, 0, 6, 9, 4, 0, 2))
                sock.settimeout(SHORT_S)
                with pytest.raises(TimeoutError):
                    sock.recv(256)
                sock.settimeout(ANSWER_S)
                sock.sendall(struct.pack(">HHHBBHH", 8, 0, 6, 1, 4, 0, 2))
                return sock.recv(256)

        await in_thread(rtu_silent)
        reply = await in_thread(tcp_silent)
    assert reply[:9] == struct.pack(">HHHBBB", 8, 0, 7, 1, 4, 4)


async def test_tcp_faults_switch_on_and_off() -> None:
    meter = sdm120(fault=Fault.no_reply())
    async with ModbusSimulator([meter], transport="tcp") as sim:
        def read(timeout: float = ANSWER_S) -> Any:
            with tcp(sim.port, timeout) as client:
                return client.read_input_registers(0, count=2, device_id=1)

        with pytest.raises(ModbusIOException):
            await in_thread(lambda: read(SHORT_S))
        meter.set_fault(Fault.exception(4))
        reply = await in_thread(read)
        assert reply.isError()
        assert reply.exception_code == 4
        meter.set_fault(Fault.slow(0.1))
        started = time.monotonic()
        assert (await in_thread(read)).registers == meter.registers("voltage")
        assert time.monotonic() - started >= 0.1
        meter.clear_fault()
        assert (await in_thread(read)).registers == meter.registers("voltage")
        with pytest.raises(ValueError, match="rtu"):
            meter.set_fault(Fault.corrupt_crc())


# -- relays, inputs, writes -----------------------------------------------------------------


async def test_coil_writes_are_recorded_and_inputs_settable() -> None:
    board = SimulatedMeter(2, load_profile("waveshare-relay-8ch"))
    async with ModbusSimulator([board], transport="rtu") as sim:
        def exercise() -> tuple[list[int], list[int], int]:
            with rtu(sim.device_path, 2) as instrument:
                initially = instrument.read_bits(0, 8, functioncode=1)
                instrument.write_bit(2, 1, functioncode=5)
                instrument.write_bits(4, [1, 0, 1])
                after = instrument.read_bits(0, 8, functioncode=1)
                return initially, after, instrument.read_bit(1, functioncode=2)

        board.set_value("input_state_2", True)
        before = time.time()
        initially, after, input_2 = await in_thread(exercise)
    assert initially == [0] * 8
    assert after == [0, 0, 1, 0, 1, 0, 1, 0]
    assert input_2 == 1
    assert [(w.address, w.value) for w in board.coil_writes] == [
        (2, True), (4, True), (5, False), (6, True)]
    assert all(before <= w.at <= time.time() for w in board.coil_writes)
    assert board.value("relay_state_3") is True
    assert board.value("relay_state_6") is False


async def test_a_silent_board_does_not_switch_its_relays() -> None:
    board = SimulatedMeter(1, load_profile("waveshare-relay-8ch"), fault=Fault.no_reply())
    async with ModbusSimulator([board], transport="rtu") as sim:
        def switch() -> None:
            with rtu(sim.device_path, timeout=SHORT_S) as instrument, \
                    pytest.raises(minimalmodbus.NoResponseError):
                instrument.write_bit(0, 1, functioncode=5)

        await in_thread(switch)
    assert board.coil_writes == []
    assert board.value("relay_state_1") is False


async def test_holding_register_writes_preset_a_counter_exactly() -> None:
    meter = SimulatedMeter(1, load_profile("schneider-iem3155"), update_interval=FROZEN)
    async with ModbusSimulator([meter], transport="tcp") as sim:
        def preset() -> list[int]:
            with tcp(sim.port) as client:
                assert not client.write_registers(3203, [0, 0, 0, 1010], device_id=1).isError()
                return list(client.read_holding_registers(3203, count=4, device_id=1).registers)

        assert await in_thread(preset) == [0, 0, 0, 1010]
    assert meter.value("active_energy_import") == pytest.approx(1.010)


async def test_mixed_profiles_on_one_bus_and_counter_preset() -> None:
    meters = [sdm120(1), SimulatedMeter(2, load_profile("waveshare-relay-8ch")),
              SimulatedMeter(3, load_profile("isma-sfar-4di"), update_interval=FROZEN)]
    async with ModbusSimulator(meters, transport="rtu") as sim:
        def exercise() -> tuple[float, int, int]:
            with rtu(sim.device_path, 1) as meter, rtu(sim.device_path, 2) as board, \
                    rtu(sim.device_path, 3) as counter:
                counter.write_long(0x34, 1000, byteorder=minimalmodbus.BYTEORDER_LITTLE_SWAP)
                return (meter.read_float(0, functioncode=4), board.read_bit(0, functioncode=1),
                        counter.read_long(0x34, byteorder=minimalmodbus.BYTEORDER_LITTLE_SWAP))

        voltage, relay, count = await in_thread(exercise)
    assert voltage == meters[0].value("voltage")
    assert relay == 0
    assert count == 1000 == meters[2].value("pulse_count_1")


# -- line timing ----------------------------------------------------------------------------


def test_line_settings_follow_the_rtu_timing_rules() -> None:
    assert LineSettings(9600, "N").bits_per_char == 10
    assert LineSettings(9600, "E").bits_per_char == 11
    assert LineSettings(9600, "N", stopbits=2).bits_per_char == 11
    assert LineSettings(9600).frame_gap == pytest.approx(3.5 * 10 / 9600)
    assert LineSettings(38400).frame_gap == 0.00175
    line = LineSettings(9600)
    assert line.frame_time(8) + line.frame_time(9) == pytest.approx(0.025)  # 40 reads/s
    with pytest.raises(ValueError, match="parity"):
        LineSettings(9600, "X")  # type: ignore[arg-type]


async def test_line_timing_costs_the_wire_time() -> None:
    line = LineSettings(9600, "N")
    async with ModbusSimulator([sdm120()], transport="rtu", line=line, line_timing=True) as sim:
        def reads(count: int) -> float:
            with rtu(sim.device_path) as instrument:
                started = time.monotonic()
                for _ in range(count):
                    instrument.read_registers(0, 2, functioncode=4)
                return time.monotonic() - started

        elapsed = await in_thread(lambda: reads(10))
    assert elapsed >= 10 * (line.frame_time(8) + line.frame_time(9))


# -- configuration --------------------------------------------------------------------------


def test_fault_specs_parse_and_bad_ones_say_why() -> None:
    assert parse_fault("unit=3:no-reply") == (3, Fault.no_reply())
    assert parse_fault("unit=2:exception=4") == (2, Fault.exception(4))
    assert parse_fault("unit=1:corrupt-crc=0.5") == (1, Fault.corrupt_crc(0.5))
    assert parse_fault("unit=1:corrupt-crc") == (1, Fault.corrupt_crc(1.0))
    assert parse_fault("unit=1:slow=800ms") == (1, Fault.slow(0.8))
    assert parse_fault("unit=1:slow=2s")[1].delay == 2.0
    assert parse_fault("unit=4:none") == (4, Fault.none())
    assert str(Fault.slow(0.8)) == "slow=800ms"
    assert parse_fault(f"unit=5:{Fault.exception(6)}")[1].kind is FaultKind.EXCEPTION
    for bad, why in [("no-reply", "must look like"), ("unit=0:no-reply", "1..247"),
                     ("unit=1:exception=9", "not a Modbus exception"),
                     ("unit=1:corrupt-crc=2", "probability"), ("unit=1:slow=fast", "duration"),
                     ("unit=1:melt", "unknown fault")]:
        with pytest.raises(ValueError, match=why):
            parse_fault(bad)


def test_invalid_setups_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        ModbusSimulator([sdm120(1), sdm120(1)])
    with pytest.raises(ValueError, match="rtu"):
        ModbusSimulator([sdm120()], transport="tcp", line_timing=True)
    with pytest.raises(ValueError, match="rtu"):
        ModbusSimulator([sdm120(fault=Fault.corrupt_crc())], transport="tcp")
    with pytest.raises(ValueError, match=r"1\.\.247"):
        sdm120(0)
    with pytest.raises(KeyError, match="no point"):
        sdm120().value("water_volume")


async def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with ModbusSimulator([sdm120()], port=port):
                pass


async def test_many_tcp_meters_each_on_its_own_port() -> None:
    group = tcp_meters(load_profile("eastron-sdm630"), 5, seed=1, update_interval=FROZEN)
    async with group:
        ports = [simulator.port for simulator in group.simulators]

        def voltages() -> list[list[int]]:
            read = []
            for port in ports:
                with tcp(port) as client:
                    reply = client.read_input_registers(0, count=2, device_id=1)
                    read.append(list(reply.registers))
            return read

        read = await in_thread(voltages)
    assert len(set(ports)) == 5
    assert read == [s.meter(1).registers("voltage_l1") for s in group.simulators]


# -- the command line -----------------------------------------------------------------------


async def _start_cli(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.modbus", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
    return process, line.decode().split()


async def _stop_cli(process: asyncio.subprocess.Process, signum: int) -> int:
    process.send_signal(signum)
    return await asyncio.wait_for(process.wait(), timeout=30)


async def test_cli_serves_rtu_and_stops_on_sigterm() -> None:
    process, ready = await _start_cli("--profile", "eastron-sdm120", "--pty", "--unit", "1", "2",
                                      "--fault", "unit=2:no-reply", "--baud", "9600")
    try:
        assert ready[:2] == ["READY", "rtu"]

        def read() -> float:
            with rtu(ready[2], 2, timeout=SHORT_S) as dead, \
                    pytest.raises(minimalmodbus.NoResponseError):
                dead.read_float(0, functioncode=4)
            with rtu(ready[2], 1) as instrument:
                return float(instrument.read_float(0, functioncode=4))

        assert 220 < await in_thread(read) < 240
    finally:
        assert await _stop_cli(process, signal.SIGTERM) == 0


async def test_cli_serves_one_tcp_port_per_device_and_stops_on_sigint() -> None:
    process, ready = await _start_cli("--profile", "waveshare-relay-8ch", "--tcp", "0",
                                      "--devices", "3")
    try:
        assert ready[:2] == ["READY", "tcp"]
        ports = [int(endpoint.rsplit(":", 1)[1]) for endpoint in ready[2:]]
        assert len(set(ports)) == 3

        def read_all() -> list[bool]:
            states = []
            for port in ports:
                with tcp(port) as client:
                    states.append(client.read_coils(0, count=1, device_id=1).bits[0])
            return states

        assert await in_thread(read_all) == [False] * 3
    finally:
        assert await _stop_cli(process, signal.SIGINT) == 0


async def test_cli_refuses_bad_arguments() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.modbus", "--profile", "eastron-sdm120", "--tcp", "0",
        "--fault", "unit=1:corrupt-crc", cwd=ROOT, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    assert b"rtu" in stderr
