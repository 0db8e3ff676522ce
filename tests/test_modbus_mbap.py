"""The lean Modbus TCP client against the TCP simulator and against scripted bad devices.

Each way a Modbus TCP device can fail is met: an exception response, silence, a reply too
late (taken for no other request), a garbled header, a frame cut short, a reply to another
transaction, from another unit or for another function, a connection that drops. Every one
ends as a clear DeviceError and a counter, and the next request works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.drivers.modbus.mbap import MbapClient
from edge_agent.errors import DeviceException, DeviceTimeout, FrameError, TransportError
from edge_agent.profiles import RegisterKind, load_profile
from simulators.modbus import Fault, ModbusSimulator, SimulatedMeter

pytestmark = pytest.mark.usefixtures("no_leaks")

#: One request: transaction id, protocol, length, unit, function, address, count.
REQUEST = struct.Struct(">HHHBBHH")
#: A reply maker: (transaction id, unit, function, count) → bytes to send, or None to hang up,
#: or (delay in seconds, bytes) to send them later while reading the next request.
Script = Callable[[int, int, int, int], bytes | tuple[float, bytes] | None]


def frame(tid: int, unit: int, pdu: bytes, *, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


def registers_pdu(function: int, count: int) -> bytes:
    return bytes([function, 2 * count]) + b"\x00\x2a" * count


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[str]:
    """A TCP server answering each read request with ``script``; yields ``host:port``."""
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _, _, unit, function, _, count = REQUEST.unpack(await reader.readexactly(12))
                reply = script(tid, unit, function, count)
                if reply is None:
                    break
                if isinstance(reply, tuple):
                    asyncio.get_running_loop().call_later(reply[0], writer.write, reply[1])
                    continue
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(serve(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def link(endpoint: str, *, timeout_s: float = 0.3, retries: int = 0
               ) -> AsyncIterator[ModbusLink]:
    modbus = ModbusLink(LinkSettings("lan", "tcp", endpoint, timeout_s=timeout_s,
                                     retries=retries))
    try:
        yield modbus
    finally:
        modbus.close()
        await asyncio.sleep(0)  # let the transport finish closing its socket


def client_of(modbus: ModbusLink) -> MbapClient:
    assert modbus.mbap is not None
    return modbus.mbap


def sdm120(unit: int = 1) -> SimulatedMeter:
    return SimulatedMeter(unit, load_profile("eastron-sdm120"), seed=unit, update_interval=3600)


async def test_modbus_tcp_goes_through_mbap_and_reads_what_the_meter_holds() -> None:
    meter = sdm120(3)
    async with ModbusSimulator([meter], transport="tcp") as sim, link(sim.endpoint) as modbus:
        await modbus.open()
        words = await modbus.read(RegisterKind.INPUT, 0x0000, 80, 3)
        point = meter.profile.points["frequency"]
        assert words[point.address:point.end] == meter.registers("frequency")
        assert client_of(modbus).counters.requests == 1


async def test_rtu_over_tcp_stays_on_pymodbus() -> None:
    assert ModbusLink(LinkSettings("gw", "tcp", "127.0.0.1:502", rtu_over_tcp=True)).mbap is None


async def test_exception_response_is_named_and_counted() -> None:
    async with ModbusSimulator([sdm120()], transport="tcp") as sim, link(sim.endpoint) as modbus:
        sim.meter(1).set_fault(Fault.exception(2))
        await modbus.open()
        with pytest.raises(DeviceException) as caught:
            await modbus.read(RegisterKind.INPUT, 0, 2, 1)
        assert caught.value.code == 2
        assert str(caught.value) == "unit 1 on lan: exception 2 (illegal data address)"
        assert client_of(modbus).counters.exceptions == 1


async def test_a_late_reply_is_counted_and_not_taken_for_the_next_request() -> None:
    def first_late(tid: int, unit: int, function: int, count: int) -> tuple[float, bytes]:
        pdu = bytes([function, 2 * count]) + bytes([0, tid]) * count
        return (0.5 if tid == 1 else 0.25), frame(tid, unit, pdu)

    async with scripted(first_late) as endpoint, link(endpoint) as modbus:
        await modbus.open()
        with pytest.raises(DeviceTimeout, match=r"no answer within 0\.3 s"):
            await modbus.read(RegisterKind.INPUT, 0, 2, 1)
        # The first reply arrives while this request waits: dropped, not returned.
        assert await modbus.read(RegisterKind.INPUT, 0, 2, 1) == [2, 2]
        counters = client_of(modbus).counters
        assert (counters.timeouts, counters.late_replies, counters.frame_errors) == (1, 1, 0)


async def test_no_reply_at_all_is_a_timeout_each_time() -> None:
    async with ModbusSimulator([sdm120()], transport="tcp") as sim, link(sim.endpoint) as modbus:
        sim.meter(1).set_fault(Fault.no_reply())
        await modbus.open()
        for _ in range(2):
            with pytest.raises(DeviceTimeout):
                await modbus.read(RegisterKind.INPUT, 0, 2, 1)
        assert client_of(modbus).counters.timeouts == 2


@pytest.mark.parametrize(("script", "message"), [
    (lambda tid, unit, fc, n: frame(tid, unit, registers_pdu(fc, n), protocol=7),
     "garbled reply: header says protocol 7"),
    (lambda tid, unit, fc, n: frame(tid, unit, registers_pdu(fc, n))[:10],
     r"incomplete reply \(10 bytes\)"),
    (lambda tid, unit, fc, n: frame(tid + 100, unit, registers_pdu(fc, n)),
     "garbled reply: reply to transaction 101 while waiting for 1"),
    (lambda tid, unit, fc, n: frame(tid, unit + 1, registers_pdu(fc, n)),
     "garbled reply: reply from unit 2, the request went to 1"),
    (lambda tid, unit, fc, n: frame(tid, unit, registers_pdu(3, n)),
     "reply carries function 3, the request 4"),
    (lambda tid, unit, fc, n: frame(tid, unit, registers_pdu(fc, n - 1)),
     "malformed reply: 4 bytes with byte count 2 for 2 registers"),
    (lambda tid, unit, fc, n: frame(tid, unit, bytes([0x83, 2])),
     "reply carries function 131, the request 4"),  # an exception, but to another function
])
async def test_a_bad_frame_is_a_frame_error_counted_and_the_next_request_works(
    script: Script, message: str
) -> None:
    bad = True

    def once_bad(tid: int, unit: int, function: int, count: int
                 ) -> bytes | tuple[float, bytes] | None:
        nonlocal bad
        if bad:
            bad = False
            return script(tid, unit, function, count)
        return frame(tid, unit, registers_pdu(function, count))

    async with scripted(once_bad) as endpoint, link(endpoint) as modbus:
        await modbus.open()
        with pytest.raises(FrameError, match=message):
            await modbus.read(RegisterKind.INPUT, 0, 2, 1)
        await modbus.open()  # a stream that lost its framing was closed: this reconnects
        assert await modbus.read(RegisterKind.INPUT, 0, 2, 1) == [42, 42]
        counters = client_of(modbus).counters
        assert counters.timeouts == 0
        assert counters.frame_errors == 1


async def test_a_dropped_connection_fails_the_request_and_the_next_open_reconnects() -> None:
    drop = True

    def drop_first(tid: int, unit: int, function: int, count: int) -> bytes | None:
        nonlocal drop
        if drop:
            drop = False
            return None
        return frame(tid, unit, registers_pdu(function, count))

    async with scripted(drop_first) as endpoint, link(endpoint) as modbus:
        await modbus.open()
        with pytest.raises(TransportError, match=r"connection closed by 127\.0\.0\.1"):
            await modbus.read(RegisterKind.HOLDING, 0, 1, 1)
        with pytest.raises(TransportError, match="connection closed"):
            await modbus.read(RegisterKind.HOLDING, 0, 1, 1)  # not reconnected behind our back
        await modbus.open()
        assert await modbus.read(RegisterKind.HOLDING, 0, 1, 1) == [42]
        counters = client_of(modbus).counters
        assert (counters.disconnects, counters.connects) == (1, 2)


async def test_a_refused_connection_says_what_to_check() -> None:
    async with scripted(lambda *_: None) as endpoint:
        pass  # the port is free again: nothing listens there
    async with link(endpoint) as modbus:
        with pytest.raises(TransportError, match="listening for Modbus TCP on that port"):
            await modbus.open()


async def test_a_host_name_the_resolver_cannot_take_is_a_transport_error() -> None:
    """A doubled dot reached the resolver, whose UnicodeError escaped as a traceback at
    every poll."""
    async with link("plc..local:502") as modbus:
        with pytest.raises(TransportError, match=r"cannot connect to plc\.\.local:502"):
            await modbus.open()


async def test_coil_writes_are_checked_against_their_echo() -> None:
    echoes: list[bytes] = []

    def echo_wrongly(tid: int, unit: int, function: int, count: int) -> bytes | None:
        pdu = struct.pack(">BHH", function, 0x0200, 0x0001)  # not what was asked
        echoes.append(pdu)
        return frame(tid, unit, pdu)

    async with scripted(echo_wrongly) as endpoint, link(endpoint) as modbus:
        await modbus.open()
        with pytest.raises(FrameError, match="does not echo the command: sent 0x0201=0x000a"):
            await modbus.pulse_coil(1, 10, 1)
    assert echoes


async def test_a_coil_write_echo_cut_short_is_a_frame_error() -> None:
    def short_echo(tid: int, unit: int, function: int, count: int) -> bytes:
        return frame(tid, unit, struct.pack(">BH", function, 0x0003))

    async with scripted(short_echo) as endpoint, link(endpoint) as modbus:
        await modbus.open()
        with pytest.raises(FrameError, match="unit 1 on lan: malformed reply to FC05: 050003"):
            await modbus.write_coil(3, True, 1)
        assert client_of(modbus).counters.frame_errors == 1


@pytest.mark.parametrize("retries", [0, 1, 2])
async def test_a_read_that_timed_out_is_tried_again_as_many_times_as_the_bus_says(
        retries: int) -> None:
    def silent_twice(tid: int, unit: int, function: int, count: int) -> tuple[float, bytes]:
        return (0.0, b"") if tid <= 2 else (0.0, frame(tid, unit, registers_pdu(function, count)))

    async with scripted(silent_twice) as endpoint, \
            link(endpoint, timeout_s=0.2, retries=retries) as modbus:
        await modbus.open()
        if retries < 2:
            with pytest.raises(DeviceTimeout):
                await modbus.read(RegisterKind.INPUT, 0, 2, 1)
        else:
            assert await modbus.read(RegisterKind.INPUT, 0, 2, 1) == [42, 42]
        counters = client_of(modbus).counters
        assert (counters.requests, counters.timeouts) == (retries + 1, min(retries + 1, 2))


async def test_a_coil_write_is_sent_once_even_with_retries() -> None:
    """A command that timed out may have been carried out: never repeated behind the user."""
    async with scripted(lambda *_: (0.0, b"")) as endpoint, \
            link(endpoint, timeout_s=0.2, retries=2) as modbus:
        await modbus.open()
        with pytest.raises(DeviceTimeout):
            await modbus.pulse_coil(1, 10, 1)
        assert client_of(modbus).counters.requests == 1


async def test_a_multiple_coil_write_is_checked_against_its_echo() -> None:
    def echo_fewer(tid: int, unit: int, function: int, count: int) -> bytes:
        return frame(tid, unit, struct.pack(">BHH", function, 16, 7))

    async with scripted(echo_fewer) as endpoint, link(endpoint) as modbus:
        await modbus.open()
        with pytest.raises(FrameError, match="reply to FC15 does not echo address 16 and 8 coils"):
            await modbus.write_coils(16, [True] * 8, 1)
        assert client_of(modbus).counters.frame_errors == 1
