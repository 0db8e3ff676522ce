"""Serving simulated meters over Modbus TCP or RTU-over-pty with pymodbus.

A :class:`ModbusSimulator` is one endpoint: a TCP port, or an RTU bus on a pty pair, with one
or more meters (distinct unit ids, any mix of profiles). :class:`SimulatorGroup` runs several
endpoints together, e.g. 200 TCP meters each on its own port.

Unknown unit ids stay silent, as an absent RS-485 node does. pymodbus 3.16.1 instead answers
exception 4 (its SimCore raises KeyError for an id it does not know): the simulator registers
a catch-all device (id 0, which pymodbus uses for every unknown id) and drops, in the
``trace_packet`` hook, every reply whose unit id is not a configured meter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer
from pymodbus.simulator import SimDevice

from edge_agent.profiles import DeviceProfile
from simulators.modbus.meter import SimulatedMeter, Transport
from simulators.modbus.pty_bridge import PtyBridge
from simulators.modbus.registers import empty_tables
from simulators.modbus.relay_board import RawCoilWriteRequest, SimulatedRelayBoard
from simulators.modbus.timing import LineSettings

__all__ = ["ModbusSimulator", "SimulatorGroup", "tcp_meters"]

#: Offset of the unit id in a reply frame: first byte of RTU, after the 6-byte MBAP start.
_UNIT_OFFSET: dict[Transport, int] = {"rtu": 0, "tcp": 6}


class ModbusSimulator:
    """One endpoint serving ``meters``: an async context manager that starts and stops it.

    ``transport="tcp"`` listens on ``host:port`` (port 0 picks a free one); ``"rtu"`` serves
    a pty pair whose client end is :attr:`address`. ``line`` is the RTU line format (default:
    the first meter's factory settings) and ``line_timing`` makes the pty cost real wire time.
    ``echo`` sends every request back to the client too, as RS-485 adapters without automatic
    direction control do.
    """

    def __init__(
        self,
        meters: Sequence[SimulatedMeter],
        *,
        transport: Transport = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
        line: LineSettings | None = None,
        line_timing: bool = False,
        echo: bool = False,
    ) -> None:
        if not meters:
            raise ValueError("a simulator needs at least one meter")
        units = [meter.unit for meter in meters]
        if len(set(units)) != len(units):
            raise ValueError(f"unit ids must be distinct on one endpoint, got {units}")
        if transport not in _UNIT_OFFSET:
            raise ValueError(f"transport must be 'tcp' or 'rtu', got {transport!r}")
        if (line_timing or echo) and transport != "rtu":
            raise ValueError("line timing and echo emulate an RS-485 line: they need rtu")
        for meter in meters:
            meter.bind(transport)
        self.transport: Transport = transport
        self.line = line or LineSettings.from_profile(meters[0].profile)
        self.line_timing = line_timing
        self.echo = echo
        self._meters = {meter.unit: meter for meter in meters}
        self._host = host
        self._port = port
        self._server: ModbusBaseServer | None = None
        self._bridge: PtyBridge | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start serving; afterwards :attr:`address` says where."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        devices = [SimDevice(0, simdata=empty_tables())]
        devices += [meter.sim_device() for meter in self._meters.values()]
        try:
            if self.transport == "tcp":
                await self._start_tcp(devices)
            else:
                await self._start_rtu(devices)
        except BaseException:
            await self.stop()
            raise

    async def _start_tcp(self, devices: list[SimDevice]) -> None:
        server = ModbusTcpServer(devices, address=(self._host, self._port),
                                 trace_packet=self._trace_packet, trace_pdu=self._trace_pdu,
                                 custom_pdu=[RawCoilWriteRequest])
        self._server = server
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus: "Could not start listen"; it logs the cause
            raise OSError(f"cannot listen on {self._host}:{self._port}") from exc
        listener = server.transport
        if not isinstance(listener, asyncio.Server) or not listener.sockets:
            raise OSError(f"cannot listen on {self._host}:{self._port}")
        self._port = int(listener.sockets[0].getsockname()[1])

    async def _start_rtu(self, devices: list[SimDevice]) -> None:
        bridge = PtyBridge(self.line, line_timing=self.line_timing, echo=self.echo)
        self._bridge = bridge
        bridge.open()
        # A pty carries bytes, not bits: parity and stop bits only matter for the wire time,
        # so the server end stays 8N1 (some kernels refuse even parity on a pty: EINVAL).
        server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=bridge.server_path,
            baudrate=self.line.baudrate,
            trace_packet=self._trace_packet,
            trace_pdu=self._trace_pdu,
            custom_pdu=[RawCoilWriteRequest],
        )
        self._server = server
        await server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop serving and release the port or ptys; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]  # untyped in pymodbus
            # Let the closed transports run connection_lost before their fds are checked.
            for _ in range(3):
                await asyncio.sleep(0)
        bridge, self._bridge = self._bridge, None
        if bridge is not None:
            bridge.close()

    # -- where and what --------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int] | str:
        """``(host, port)`` for TCP, the client pty path (``/dev/pts/N``) for RTU."""
        return (self._host, self.port) if self.transport == "tcp" else self.device_path

    @property
    def port(self) -> int:
        """The TCP port served (the chosen one when 0 was asked for)."""
        if self.transport != "tcp" or self._server is None:
            raise RuntimeError("only a running TCP simulator has a port")
        return self._port

    @property
    def device_path(self) -> str:
        """The pty a client opens, for a running RTU simulator."""
        if self._bridge is None:
            raise RuntimeError("only a running RTU simulator has a device path")
        return self._bridge.client_path

    @property
    def line_gap_violations(self) -> int:
        """Requests a client started before t3.5 of line silence (RTU with line timing)."""
        return 0 if self._bridge is None else self._bridge.gap_violations

    @property
    def endpoint(self) -> str:
        """The address as text: ``127.0.0.1:5020`` or ``/dev/pts/7``."""
        address = self.address
        return address if isinstance(address, str) else f"{address[0]}:{address[1]}"

    @property
    def meters(self) -> list[SimulatedMeter]:
        """The meters served, in unit id order of creation."""
        return list(self._meters.values())

    def meter(self, unit: int) -> SimulatedMeter:
        """The meter with unit id ``unit``."""
        try:
            return self._meters[unit]
        except KeyError:
            units = list(self._meters)
            raise KeyError(f"no meter with unit id {unit}; units are {units}") from None

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        """pymodbus hook on every frame: silence absent units and let meters spoil replies."""
        offset = _UNIT_OFFSET[self.transport]
        if not sending or len(packet) <= offset:
            return packet
        meter = self._meters.get(packet[offset])
        return b"" if meter is None else meter.filter_reply(packet)

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus hook on every decoded request: a relay board answers its own commands."""
        board = None if sending else self._meters.get(pdu.dev_id)
        return board.take_request(pdu) if isinstance(board, SimulatedRelayBoard) else pdu


class SimulatorGroup:
    """Several simulators started together and stopped together."""

    def __init__(self, simulators: Sequence[ModbusSimulator]) -> None:
        self.simulators = list(simulators)
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            for simulator in self.simulators:
                await stack.enter_async_context(simulator)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    @property
    def endpoints(self) -> list[str]:
        """Each simulator's address as text, in order."""
        return [simulator.endpoint for simulator in self.simulators]


def tcp_meters(
    profile: DeviceProfile,
    count: int,
    *,
    units: Sequence[int] = (1,),
    host: str = "127.0.0.1",
    first_port: int = 0,
    seed: int | None = None,
    update_interval: float = 1.0,
) -> SimulatorGroup:
    """``count`` TCP endpoints, each its own meter(s), like a field of Ethernet meters.

    Ports are ``first_port``, ``first_port + 1``, … or all chosen freely when it is 0.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    simulators = []
    for index in range(count):
        meters = [
            SimulatedMeter(unit, profile, update_interval=update_interval,
                           seed=None if seed is None else seed + index * 256 + unit)
            for unit in units
        ]
        port = first_port + index if first_port else 0
        simulators.append(ModbusSimulator(meters, transport="tcp", host=host, port=port))
    return SimulatorGroup(simulators)
