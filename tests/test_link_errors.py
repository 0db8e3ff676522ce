"""No pymodbus or pyserial exception escapes the Modbus link untranslated."""

from __future__ import annotations

import inspect

import pymodbus.exceptions
import pytest
import serial
from pymodbus.pdu import ModbusPDU

from edge_agent.drivers.modbus.link import LinkSettings, ModbusLink
from edge_agent.errors import DeviceError
from edge_agent.profiles import load_profile
from simulators.modbus import ModbusSimulator, SimulatedMeter

PYMODBUS_ERRORS = sorted(
    (cls for _, cls in inspect.getmembers(pymodbus.exceptions, inspect.isclass)
     if issubclass(cls, Exception)),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize(
    "error_class", [*PYMODBUS_ERRORS, serial.SerialException, OSError, ValueError],
    ids=lambda cls: cls.__name__,
)
async def test_every_library_exception_becomes_a_device_error(
    error_class: type[Exception],
) -> None:
    assert len(PYMODBUS_ERRORS) >= 6
    link = ModbusLink(LinkSettings("lan", "tcp", "127.0.0.1:9"))

    async def failing_call() -> ModbusPDU:
        raise error_class("boom")

    try:
        with pytest.raises(DeviceError) as caught:
            await link._execute(failing_call, unit=3)
    finally:
        link.close()
    assert caught.value.device == "unit 3"
    assert caught.value.bus == "lan"


async def test_arguments_pymodbus_refuses_become_a_device_error() -> None:
    """pymodbus checks counts before sending and raises ValueError: translated too."""
    meter = SimulatedMeter(1, load_profile("waveshare-relay-8ch"))
    async with ModbusSimulator([meter]) as sim:
        link = ModbusLink(LinkSettings("lan", "tcp", sim.endpoint))
        try:
            await link.open()
            with pytest.raises(DeviceError, match="request refused before sending"):
                await link.write_coils(0, [], unit=1)
        finally:
            link.close()
