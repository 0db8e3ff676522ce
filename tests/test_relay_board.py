"""The relay board actuator against a simulated Waveshare board, over real TCP and ptys.

What the access runtime relies on is checked on the wire: the bytes of each command are the
board's documented frames, the board (not the gateway) times a pulse and really drops the
relay, bad arguments never reach the line, a dead or refusing board becomes the agent's
DeviceError tree quickly, and a command on a line that is polling a meter goes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
import tty
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU

from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.drivers.modbus.relay import MAX_PULSE_MS, RelayBoard
from edge_agent.drivers.modbus.rtu import RawCoilWrite
from edge_agent.errors import (
    ConfigError,
    DeviceException,
    DeviceTimeout,
    FrameError,
    TransportError,
)
from edge_agent.profiles import RegisterKind, load_profile
from simulators.modbus import (
    Fault,
    LoopDetector,
    ModbusSimulator,
    RelayCommand,
    SimulatedMeter,
    SimulatedRelayBoard,
)
from tests.conftest import SimulatorStarter
from tests.test_modbus_bus import CollectingSink

pytestmark = pytest.mark.usefixtures("no_leaks")


def crc16(frame: bytes) -> bytes:
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF), low byte first: no pymodbus."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def rtu(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


def link_to(sim: ModbusSimulator, *, timeout_s: float = 0.3) -> ModbusLink:
    if sim.transport == "tcp":
        return ModbusLink(LinkSettings("lan", "tcp", sim.endpoint, timeout_s=timeout_s))
    return ModbusLink(LinkSettings("rs485", "serial", sim.device_path, timeout_s=timeout_s))


@contextlib.asynccontextmanager
async def relay_board(link: ModbusLink, unit: int = 1, *, channels: int = 8,
                      devices: list[PolledDevice] | None = None,
                      ) -> AsyncIterator[RelayBoard]:
    """A RelayBoard on a running bus over ``link``; the bus is stopped on the way out."""
    bus = ModbusBus(link, devices or [], CollectingSink())
    task = asyncio.create_task(bus.run())
    try:
        yield RelayBoard(bus, unit, name="gate-1", channels=channels)
    finally:
        bus.stop()
        await asyncio.wait_for(task, 5)


@pytest.fixture(params=["tcp", "rtu"])
async def served(request: pytest.FixtureRequest
                 ) -> AsyncIterator[tuple[SimulatedRelayBoard, ModbusSimulator]]:
    """A simulated board, unit 1, over Modbus TCP or RTU on a pty."""
    board = SimulatedRelayBoard(1)
    async with ModbusSimulator([board], transport=request.param) as sim:
        yield board, sim


@pytest.fixture
async def gate(served: tuple[SimulatedRelayBoard, ModbusSimulator]
               ) -> AsyncIterator[tuple[SimulatedRelayBoard, RelayBoard]]:
    """The simulated board and a RelayBoard driving it over a running bus."""
    sim_board, sim = served
    async with relay_board(link_to(sim)) as board:
        yield sim_board, board


async def wait_until(condition: Callable[[], bool], *, within_s: float = 5.0) -> None:
    """Poll ``condition``; fail (not hang) when it never becomes true."""
    async with asyncio.timeout(within_s):
        while not condition():
            await asyncio.sleep(0.005)


# -- frames on the wire ---------------------------------------------------------------------

#: Requests and replies from the board's documentation (access-control.md §4.2).
SCRIPT = {
    rtu("01 05 02 00 00 07 8D B0"): rtu("01 05 02 00 00 07 8D B0"),  # relay 1 flash 700 ms
    rtu("01 05 02 01 00 08 9C 74"): rtu("01 05 02 01 00 08 9C 74"),  # relay 2 flash 800 ms
    rtu("01 05 00 00 FF 00 8C 3A"): rtu("01 05 00 00 FF 00 8C 3A"),  # relay 1 on
    rtu("01 05 00 00 00 00 CD CA"): rtu("01 05 00 00 00 00 CD CA"),  # relay 1 off
    rtu("01 05 00 FF 00 00 FD FA"): rtu("01 05 00 FF 00 00 FD FA"),  # all relays off
    rtu("01 01 00 00 00 08 3D CC"): rtu("01 01 01 41 91 B8"),        # relays 1 and 7 on
    rtu("01 02 00 00 00 08 79 CC"): rtu("01 02 01 41 61 B8"),        # inputs 1 and 7 active
}


class ScriptedBoard:
    """Answers 8-byte RTU requests from a script and keeps every request it received."""

    def __init__(self, script: dict[bytes, bytes]) -> None:
        self.script = script
        self.received: list[bytes] = []
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Take bytes from the line; the replies to the requests they complete."""
        self._pending += data
        replies = []
        while len(self._pending) >= 8:
            frame, self._pending = self._pending[:8], self._pending[8:]
            self.received.append(frame)
            replies.append(self.script.get(frame, b""))
        return replies


@contextlib.contextmanager
def scripted_pty(board: ScriptedBoard) -> Iterator[LinkSettings]:
    """A pty whose other end is ``board``: the link's real serial path, bytes captured."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)

    def on_bytes() -> None:
        for reply in board.feed(os.read(master, 256)):
            os.write(master, reply)

    loop = asyncio.get_running_loop()
    loop.add_reader(master, on_bytes)
    try:
        yield LinkSettings("rs485", "serial", os.ttyname(slave), timeout_s=0.3)
    finally:
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


@contextlib.asynccontextmanager
async def scripted_tcp(board: ScriptedBoard) -> AsyncIterator[LinkSettings]:
    """A TCP port speaking RTU frames (a transparent RS-485 converter) with ``board`` behind."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.closing(writer):
            while data := await reader.read(256):
                for reply in board.feed(data):
                    writer.write(reply)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield LinkSettings("converter", "tcp", f"127.0.0.1:{port}", timeout_s=0.3,
                           rtu_over_tcp=True)
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def scripted_mbap(board: ScriptedBoard) -> AsyncIterator[LinkSettings]:
    """A Modbus TCP port with ``board`` behind, as a TCP to RTU gateway would put it: each
    MBAP request goes to the board as its RTU frame, each RTU reply comes back in MBAP."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.closing(writer):
            while header := await reader.read(7):
                tid, _, length, unit = struct.unpack(">HHHB", header)
                request = bytes([unit]) + await reader.readexactly(length - 1)
                for reply in board.feed(request + crc16(request)):
                    if reply:
                        assert crc16(reply[:-2]) == reply[-2:]
                        writer.write(struct.pack(">HHH", tid, 0, len(reply) - 2) + reply[:-2])

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield LinkSettings("lan", "tcp", f"127.0.0.1:{port}", timeout_s=0.3)
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def scripted(kind: str, board: ScriptedBoard) -> AsyncIterator[LinkSettings]:
    if kind == "pty":
        with scripted_pty(board) as settings:
            yield settings
    elif kind == "mbap":
        async with scripted_mbap(board) as settings:
            yield settings
    else:
        async with scripted_tcp(board) as settings:
            yield settings


@pytest.mark.parametrize("kind", ["pty", "rtu-over-tcp", "mbap"])
async def test_every_command_is_the_documented_frame(kind: str) -> None:
    scripted_board = ScriptedBoard(SCRIPT)
    async with scripted(kind, scripted_board) as settings, \
            relay_board(ModbusLink(settings)) as board:
        assert await board.pulse(1, 700) == 700
        assert await board.pulse(2, 800) == 800
        await board.set(1, True)
        await board.set(1, False)
        await board.all_off()
        relays = await board.read_relays()
        inputs = await board.read_inputs()
    assert scripted_board.received == list(SCRIPT)
    assert relays == inputs == [True, False, False, False, False, False, True, False]


@pytest.mark.parametrize("kind", ["pty", "mbap"])
async def test_the_longest_pulse_is_the_board_maximum(kind: str) -> None:
    request = rtu("01 05 02 07 7F FF")
    request += crc16(request)
    scripted_board = ScriptedBoard({request: request})
    async with scripted(kind, scripted_board) as settings, \
            relay_board(ModbusLink(settings)) as board:
        assert await board.pulse(8, MAX_PULSE_MS) == MAX_PULSE_MS
    assert scripted_board.received == [request]


@pytest.mark.parametrize("kind", ["pty", "rtu-over-tcp", "mbap"])
async def test_a_reply_that_does_not_echo_the_pulse_is_a_frame_error(kind: str) -> None:
    wrong = rtu("01 05 02 00 00 08")  # 800 ms echoed for 700 ms asked
    scripted_board = ScriptedBoard({rtu("01 05 02 00 00 07 8D B0"): wrong + crc16(wrong)})
    async with scripted(kind, scripted_board) as settings, \
            relay_board(ModbusLink(settings)) as board:
        with pytest.raises(FrameError, match=r"gate-1 on .*does not echo.*0x0007.*0x0008"):
            await board.pulse(1, 700)


# -- the simulated board, through the actuator ------------------------------------------------


async def test_the_board_times_the_pulse_and_drops_the_relay(
    gate: tuple[SimulatedRelayBoard, RelayBoard],
) -> None:
    sim_board, board = gate
    assert await board.pulse(1, 300) == 300
    assert (await board.read_relays())[0] is True
    await wait_until(lambda: not sim_board.relay(1), within_s=2)
    assert await board.read_relays() == [False] * 8
    [command] = sim_board.commands
    assert command == RelayCommand(command.at_ns, 5, 0x0200, 1, "flash_on", 3, 300)
    on, off = sim_board.switches
    assert (on.channel, on.on, off.channel, off.on) == (1, True, 1, False)
    assert command.at_ns <= on.at_ns
    assert 300 <= (off.at_ns - on.at_ns) / 1e6 < 800  # late only by the event loop


async def test_pulses_round_up_to_the_board_unit(
    gate: tuple[SimulatedRelayBoard, RelayBoard],
) -> None:
    sim_board, board = gate
    assert await board.pulse(1, 250) == 300
    assert await board.pulse(2, 1) == 100
    assert await board.pulse(3, 300) == 300
    assert [(c.channel, c.value, c.pulse_ms) for c in sim_board.pulses()] == [
        (1, 3, 300), (2, 1, 100), (3, 3, 300)]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (lambda b: b.pulse(1, 0), "pulse lasts 1..3276700 ms"),
        (lambda b: b.pulse(1, MAX_PULSE_MS + 1), "pulse lasts"),
        (lambda b: b.pulse(0, 700), "channel must be 1..8, got 0"),
        (lambda b: b.pulse(9, 700), "channel must be 1..8, got 9"),
        (lambda b: b.set(9, True), "channel must be 1..8"),
        (lambda b: b.read_relays(0), "count must be 1..8"),
        (lambda b: b.read_inputs(9), "count must be 1..8"),
    ],
    ids=["zero-ms", "too-long", "channel-0", "channel-9", "set-9", "read-0", "inputs-9"],
)
async def test_bad_arguments_are_refused_before_sending(
    command: Callable[[RelayBoard], Awaitable[object]], message: str,
) -> None:
    sim_board = SimulatedRelayBoard(1)
    async with ModbusSimulator([sim_board]) as sim, relay_board(link_to(sim)) as board:
        with pytest.raises(ValueError, match=message):
            await command(board)
    assert sim_board.request_count == 0


async def test_a_board_outside_the_modbus_unit_range_is_a_config_error() -> None:
    link = ModbusLink(LinkSettings("lan", "tcp", "127.0.0.1:9"))
    bus = ModbusBus(link, [], CollectingSink())
    with pytest.raises(ConfigError, match=r"gate: unit id must be 1\.\.247, got 0"):
        RelayBoard(bus, 0, name="gate")
    link.close()


async def test_all_off_switches_every_relay_off(
    gate: tuple[SimulatedRelayBoard, RelayBoard],
) -> None:
    sim_board, board = gate
    await board.set(2, True)
    await board.set(5, True)
    await board.pulse(8, 5000)
    assert await board.read_relays() == [False, True, False, False, True, False, False, True]
    await board.all_off()
    assert await board.read_relays() == [False] * 8
    assert sim_board.commands[-1][2:6] == (0x00FF, 0, "off", 0)


async def test_inputs_read_what_was_set(
    gate: tuple[SimulatedRelayBoard, RelayBoard],
) -> None:
    sim_board, board = gate
    sim_board.set_input(2, True)
    sim_board.set_input(7, True)
    assert await board.read_inputs() == [False, True, False, False, False, False, True, False]
    assert await board.read_inputs(2) == [False, True]


async def test_a_vehicle_on_the_loop_is_seen_while_it_stays(
    gate: tuple[SimulatedRelayBoard, RelayBoard],
) -> None:
    sim_board, board = gate
    loop = LoopDetector(sim_board, 3)
    passage = asyncio.create_task(loop.vehicle(0.2))
    await asyncio.sleep(0)  # the vehicle arrives
    assert loop.present
    assert (await board.read_inputs())[2] is True
    arrived, left = await passage
    assert (await board.read_inputs())[2] is False
    assert (left - arrived) / 1e9 >= 0.2


async def test_consecutive_coils_are_written_in_one_request(
    served: tuple[SimulatedRelayBoard, ModbusSimulator],
) -> None:
    sim_board, sim = served
    link = link_to(sim)
    try:
        await link.open()
        await link.write_coils(3, [True, False, True], unit=1)
        assert await link.read(RegisterKind.COIL, 0, 8, unit=1) == [
            False, False, False, True, False, True, False, False]
    finally:
        link.close()
    assert [(c.function, c.address, c.channel, c.action, c.value)
            for c in sim_board.commands] == [(15, 0x0003, 4, "write", 0b101)]
    assert [sim_board.relay(n) for n in (4, 5, 6)] == [True, False, True]


async def test_a_refused_command_is_a_device_exception(
    served: tuple[SimulatedRelayBoard, ModbusSimulator],
) -> None:
    sim_board, sim = served
    async with relay_board(link_to(sim), channels=16) as board:
        with pytest.raises(DeviceException, match=r"gate-1 on .*illegal data address") as caught:
            await board.pulse(9, 100)
        assert caught.value.code == 2
        with pytest.raises(DeviceException, match="exception 2"):
            await board.read_relays(16)
        sim_board.set_fault(Fault.exception(4))
        with pytest.raises(DeviceException, match=r"exception 4 \(device failure\)"):
            await board.set(1, True)
    assert sim_board.commands == []


async def test_a_unit_that_does_not_answer_times_out_quickly(
    served: tuple[SimulatedRelayBoard, ModbusSimulator],
) -> None:
    _, sim = served
    async with relay_board(link_to(sim, timeout_s=0.2), unit=7) as board:
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"gate-1 on .*no answer within 0\.2 s"):
            await board.pulse(1, 700)
        assert time.monotonic() - started < 1.0


async def test_nothing_listening_is_a_transport_error_at_once() -> None:
    with socket.socket() as probe:  # bound, never listening: refused, and no one else's
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        link = ModbusLink(LinkSettings("lan", "tcp", f"127.0.0.1:{port}", timeout_s=0.2))
        async with relay_board(link) as board:
            started = time.monotonic()
            with pytest.raises(TransportError, match="gate-1 on lan: cannot connect"):
                await board.all_off()
            assert time.monotonic() - started < 1.0


class StampedMeter(SimulatedMeter):
    """A meter that notes when each request reaches it."""

    def __init__(self, unit: int, profile_id: str, *, fault: Fault) -> None:
        super().__init__(unit, load_profile(profile_id), fault=fault, update_interval=3600)
        self.stamps: list[int] = []

    async def on_access(
        self, function_code: int, start_address: int, address: int, count: int,
        registers: list[int], set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.stamps.append(time.monotonic_ns())
        return await super().on_access(function_code, start_address, address, count,
                                       registers, set_values)


async def test_a_pulse_goes_before_the_next_poll_of_a_meter_on_the_line() -> None:
    meter = StampedMeter(1, "eastron-sdm630", fault=Fault.slow(0.15))
    sim_board = SimulatedRelayBoard(3)
    feeder = PolledDevice.from_profile("feeder", 1, load_profile("eastron-sdm630"),
                                       interval_s=0.05, min_silence_ms=0)
    async with ModbusSimulator([meter, sim_board], transport="rtu") as sim, \
            relay_board(link_to(sim, timeout_s=0.5), 3, devices=[feeder]) as board:
        await wait_until(lambda: len(meter.stamps) >= 2)
        seen = len(meter.stamps)
        await wait_until(lambda: len(meter.stamps) > seen)  # a slow read is on the line
        issued = time.monotonic_ns()
        await board.pulse(1, 100)
        await wait_until(lambda: meter.stamps[-1] > issued)  # polling goes on
    [pulse] = sim_board.pulses(1)
    assert [t for t in meter.stamps if issued < t < pulse.at_ns] == []
    assert feeder.health.failed_polls == 0


# -- the simulator's own board logic ---------------------------------------------------------


async def test_the_simulator_speaks_the_board_register_map() -> None:
    sim_board = SimulatedRelayBoard(1)
    async with ModbusSimulator([sim_board]) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0)
        client.register(RawCoilWrite)
        await client.connect()

        async def fc05(address: int, value: int) -> ModbusPDU:
            reply: ModbusPDU = await client.execute(False, RawCoilWrite(address, value, dev_id=1))
            return reply

        try:
            await fc05(0x0001, 0x5500)
            assert sim_board.relay(2)
            await fc05(0x00FF, 0xFF00)
            await fc05(0x00FF, 0x5500)
            assert not any(sim_board.relay(n) for n in range(1, 9))
            await fc05(0x0002, 0xFF00)
            echo = await fc05(0x0402, 2)  # flash off relay 3 for 200 ms
            assert isinstance(echo, RawCoilWrite)
            assert (echo.address, echo.value) == (0x0402, 2)
            assert not sim_board.relay(3)
            await fc05(0x0203, 3)  # flash on relay 4, then a plain write cancels the flash
            await fc05(0x0003, 0xFF00)
            assert not (await client.write_coils(4, [True, False, True], device_id=1)).isError()
            refusals = [await fc05(address, value) for address, value in [
                (0x0000, 0x1234), (0x0200, 0), (0x0200, 0x8000), (0x0008, 0xFF00),
                (0x0300, 1), (0x0408, 1)]]
            refusals += [await client.read_coils(0, count=9, device_id=1),
                         await client.read_discrete_inputs(8, count=1, device_id=1),
                         await client.write_coils(6, [True] * 3, device_id=1)]
            await asyncio.sleep(0.35)  # both flashes would have ended by now
        finally:
            client.close()
    assert [r.exception_code for r in refusals] == [3, 3, 3, 2, 2, 2, 2, 2, 2]
    assert [sim_board.relay(n) for n in range(1, 9)] == [
        False, False, True, True, True, False, True, False]
    assert [(c.function, c.address, c.channel, c.action, c.value, c.pulse_ms)
            for c in sim_board.commands] == [
        (5, 0x0001, 2, "toggle", 0x5500, 0),
        (5, 0x00FF, 0, "on", 0xFF00, 0),
        (5, 0x00FF, 0, "toggle", 0x5500, 0),
        (5, 0x0002, 3, "on", 0xFF00, 0),
        (5, 0x0402, 3, "flash_off", 2, 200),
        (5, 0x0203, 4, "flash_on", 3, 300),
        (5, 0x0003, 4, "on", 0xFF00, 0),
        (15, 0x0004, 5, "write", 0b101, 0),
    ]
    times = [c.at_ns for c in sim_board.commands]
    assert times == sorted(times)


async def test_a_silent_board_neither_acts_nor_records() -> None:
    sim_board = SimulatedRelayBoard(1, fault=Fault.no_reply())
    async with ModbusSimulator([sim_board], transport="rtu") as sim, \
            relay_board(link_to(sim, timeout_s=0.2)) as board:
        with pytest.raises(DeviceTimeout):
            await board.pulse(1, 100)
    assert sim_board.commands == []
    assert not sim_board.relay(1)


@pytest.mark.parametrize("where", ["--tcp=0", "--pty"])
async def test_the_cli_serves_a_relay_board(
    simulator_process: SimulatorStarter, where: str,
) -> None:
    endpoint = await asyncio.to_thread(simulator_process, "--profile", "waveshare-relay-8ch",
                                       where)
    settings = (LinkSettings("lan", "tcp", endpoint, timeout_s=1.0) if where != "--pty"
                else LinkSettings("rs485", "serial", endpoint, timeout_s=1.0))
    async with relay_board(ModbusLink(settings)) as board:
        assert await board.pulse(1, 500) == 500
        assert (await board.read_relays(1)) == [True]
        async with asyncio.timeout(3):
            while await board.read_relays(1) != [False]:
                await asyncio.sleep(0.05)
