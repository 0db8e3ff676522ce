"""A reply that does not answer the request is refused on both Modbus paths.

Reads must come back from the function asked with the number of values asked; FC15 (set
coils) must echo its address and count, as a relay board's proof it took the command.

A scripted device answers every read with a reply built from the request: right, or to
another function, or with another number of values (a late reply to another read of the
same unit looks just like that on RTU, which carries no transaction id). On Modbus TCP it
is a server on 127.0.0.1; on RTU it sits at the far end of a real pty, CRCs and all. Either
way the link must give the right values or a FrameError, never values of something else.
"""

from __future__ import annotations

import asyncio
import os
import struct
import termios
import tty
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

import pytest

from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.errors import FrameError
from edge_agent.profiles import RegisterKind
from tests.helpers.local_server import local_server

pytestmark = pytest.mark.usefixtures("no_leaks")

#: Makes the reply PDU from the request PDU (function, address, count).
Reply = Callable[[int, int, int], bytes]


def registers(function: int, _address: int, count: int) -> bytes:
    """A well-formed read reply: ``count`` registers valued 1, 2, 3 ..."""
    return struct.pack(f">BB{count}H", function, 2 * count, *range(1, count + 1))


def crc16(frame: bytes) -> bytes:
    """The Modbus RTU CRC, low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


@asynccontextmanager
async def tcp_device(reply: Reply) -> AsyncIterator[LinkSettings]:

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _protocol, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                function, address, count = struct.unpack_from(
                    ">BHH", await reader.readexactly(length - 1))
                pdu = reply(function, address, count)
                writer.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async with local_server(handle) as port:
        yield LinkSettings("lan", "tcp", f"127.0.0.1:{port}", timeout_s=1.0)


@asynccontextmanager
async def rtu_device(reply: Reply) -> AsyncIterator[LinkSettings]:
    master, slave = os.openpty()  # the slave stays open: the master never sees a hang-up
    tty.setraw(master)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    loop = asyncio.get_running_loop()
    received = bytearray()

    def readable() -> None:
        try:
            received.extend(os.read(master, 256))
        except BlockingIOError:
            return
        while len(received) >= 8:  # unit, function, address, count, [byte count, bits], CRC
            unit, function, address, count = struct.unpack(">BBHH", received[:6])
            size = 8 if function != 15 else 9 + received[6] if len(received) > 6 else 0
            if not size or len(received) < size:
                return
            del received[:size]
            frame = bytes([unit]) + reply(function, address, count)
            os.write(master, frame + crc16(frame))

    loop.add_reader(master, readable)
    try:
        yield LinkSettings("rs485", "serial", path, baudrate=115200, timeout_s=1.0)
    finally:
        loop.remove_reader(master)
        termios.tcflush(master, termios.TCIOFLUSH)
        os.close(master)
        os.close(slave)


DEVICES = {"tcp": tcp_device, "rtu": rtu_device}


async def read_with(transport: Literal["tcp", "rtu"], reply: Reply, count: int = 2
                    ) -> list[int] | list[bool]:
    async with DEVICES[transport](reply) as settings:
        link = ModbusLink(settings)
        try:
            await link.open()
            return await link.read(RegisterKind.HOLDING, 100, count, unit=7)
        finally:
            link.close()


def echo(function: int, address: int, count: int) -> bytes:
    """The reply to FC15: its function, address and count."""
    return struct.pack(">BHH", function, address, count)


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
@pytest.mark.parametrize("reply", [
    pytest.param(echo, id="echo"),
    pytest.param(lambda f, a, c: echo(f, a + 1, c), id="another-address"),
    pytest.param(lambda f, a, c: echo(f, a, c - 1), id="another-count"),
])
async def test_coils_are_set_only_when_the_reply_echoes_the_request(
    transport: Literal["tcp", "rtu"], reply: Reply
) -> None:
    async with DEVICES[transport](reply) as settings:
        link = ModbusLink(settings)
        try:
            await link.open()
            if reply is echo:
                await link.write_coils(16, [True, False, True], unit=7)
            else:
                with pytest.raises(FrameError, match="does not echo"):
                    await link.write_coils(16, [True, False, True], unit=7)
        finally:
            link.close()


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_a_reply_that_answers_the_request_is_read(transport: Literal["tcp", "rtu"]
                                                        ) -> None:
    assert await read_with(transport, registers) == [1, 2]


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
@pytest.mark.parametrize("reply", [
    pytest.param(lambda _f, a, c: registers(4, a, c), id="another-function"),
    pytest.param(lambda f, a, c: registers(f, a, c + 2), id="more-values"),
    pytest.param(lambda f, a, c: registers(f, a, c - 1), id="fewer-values"),
])
async def test_a_reply_that_answers_something_else_is_a_frame_error(
    transport: Literal["tcp", "rtu"], reply: Reply
) -> None:
    with pytest.raises(FrameError) as caught:
        await read_with(transport, reply)
    assert caught.value.bus in {"lan", "rs485"}
