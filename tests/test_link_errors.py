"""No library exception escapes the Modbus link untranslated, on either path.

The RTU path (rtu.py) runs pymodbus and pyserial: each of their exceptions is raised inside a
call on a line opened over a real pty, and must leave as a DeviceError naming unit and bus.
Requests the Modbus specification forbids are refused before sending on both paths (pymodbus
does not check them all), and the device never sees them.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import pymodbus.exceptions
import pytest
import serial
from pymodbus.pdu import ModbusPDU

from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.drivers.modbus.rtu import RtuLine
from edge_agent.errors import DeviceError
from edge_agent.profiles import RegisterKind
from simulators.modbus import ModbusSimulator, SimulatedRelayBoard

pytestmark = pytest.mark.usefixtures("no_leaks")

PYMODBUS_ERRORS = sorted(
    (cls for _, cls in inspect.getmembers(pymodbus.exceptions, inspect.isclass)
     if issubclass(cls, Exception)),
    key=lambda cls: cls.__name__,
)


@pytest.fixture
async def board_sim() -> AsyncIterator[tuple[SimulatedRelayBoard, ModbusSimulator]]:
    board = SimulatedRelayBoard(1)
    async with ModbusSimulator([board], transport="rtu") as sim:
        yield board, sim


@pytest.mark.parametrize(
    "error_class", [*PYMODBUS_ERRORS, serial.SerialException, OSError, ValueError],
    ids=lambda cls: cls.__name__,
)
async def test_every_library_exception_becomes_a_device_error(
    error_class: type[Exception], board_sim: tuple[SimulatedRelayBoard, ModbusSimulator],
) -> None:
    assert len(PYMODBUS_ERRORS) >= 6
    _, sim = board_sim
    line = RtuLine(LinkSettings("rs485", "serial", sim.device_path, timeout_s=0.3))

    async def failing_call() -> ModbusPDU:
        raise error_class("boom")

    try:
        await line.open()
        with pytest.raises(DeviceError) as caught:
            await line._execute(failing_call, unit=3)
        assert await line.read(RegisterKind.COIL, 0, 8, 1) == [False] * 8  # the line still works
    finally:
        line.close()
    assert caught.value.device == "unit 3"
    assert caught.value.bus == "rs485"


REFUSED: dict[str, Callable[[ModbusLink], Awaitable[object]]] = {
    "no-coils": lambda link: link.write_coils(0, [], unit=1),
    "too-many-coils": lambda link: link.write_coils(0, [True] * 1969, unit=1),
    "no-registers": lambda link: link.read(RegisterKind.HOLDING, 0, 0, unit=1),
    "too-many-registers": lambda link: link.read(RegisterKind.HOLDING, 0, 126, unit=1),
    "too-many-bits": lambda link: link.read(RegisterKind.COIL, 0, 2001, unit=1),
    "address-past-the-end": lambda link: link.write_coil(0x10000, True, unit=1),
}


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
@pytest.mark.parametrize("request_", REFUSED.values(), ids=REFUSED.keys())
async def test_requests_the_specification_forbids_are_refused_before_sending(
    transport: Literal["tcp", "rtu"], request_: Callable[[ModbusLink], Awaitable[object]],
) -> None:
    board = SimulatedRelayBoard(1)
    async with ModbusSimulator([board], transport=transport) as sim:
        settings = (LinkSettings("lan", "tcp", sim.endpoint) if transport == "tcp"
                    else LinkSettings("lan", "serial", sim.device_path))
        link = ModbusLink(settings)
        try:
            await link.open()
            with pytest.raises(DeviceError, match="request refused before sending") as caught:
                await request_(link)
            assert await link.read(RegisterKind.COIL, 0, 8, unit=1) == [False] * 8
        finally:
            link.close()
    assert (caught.value.device, caught.value.bus) == ("unit 1", "lan")
    assert board.request_count == 1  # only the read after the refusal
