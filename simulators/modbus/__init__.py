"""Simulated Modbus meters and relay boards, served over Modbus TCP or RTU on a pty.

Any device profile can be served; values evolve realistically (energy counters integrate
power and only grow, voltage sits near 230 V, relays hold what was written), faults can be
switched per unit id while a client polls, and an RTU bus can cost real wire time.

Python API (an async context manager; blocking clients belong in a thread)::

    from edge_agent.profiles import load_profile
    from simulators.modbus import Fault, ModbusSimulator, SimulatedMeter

    meters = [SimulatedMeter(1, load_profile("eastron-sdm630")),
              SimulatedMeter(2, load_profile("waveshare-relay-8ch"))]
    async with ModbusSimulator(meters, transport="rtu", line_timing=True) as sim:
        sim.address                        # "/dev/pts/7" (rtu) or ("127.0.0.1", port) (tcp)
        sim.meter(1).set_fault(Fault.no_reply())
        sim.meter(1).clear_fault()
        sim.meter(1).value("active_energy_import")  # what a read returns now, scaled
        sim.meter(2).set_value("input_state_1", True)
        sim.meter(2).coil_writes           # [CoilWrite(at, address, value), ...]

``SimulatedMeter(unit, profile, *, seed=None, update_interval=1.0, fault=None,
clock=time.monotonic)``
    One device. ``value(q)``, ``set_value(q, v)`` (counters jump and keep growing, inputs and
    relays hold, other quantities are pinned until ``unpin(q)``; a pinned active power drives
    currents and counters, so 0 W stops the meter), ``registers(q)``, ``refresh()``,
    ``set_fault(f)``, ``clear_fault()``, ``fault``, ``coil_writes``, ``request_count``.
    Measurements refresh at read time, at most every ``update_interval`` seconds, so a read
    and a following ``value(q)`` agree exactly. ``bind``, ``sim_device``, ``on_access`` and
    ``filter_reply`` are the glue ModbusSimulator uses.
``SimulatedRelayBoard(unit, *, fault=None)``
    A Waveshare Modbus RTU Relay (D) with the board's own commands: toggle, all relays
    (0x00FF), flash on/off (0x0200/0x0400 + channel) timed by the board. ``relay(n)``,
    ``input(n)``, ``set_input(n, active)``, ``commands`` (``RelayCommand(at_ns, function,
    address, channel, action, value, pulse_ms)``), ``pulses(channel)``, ``switches``
    (``RelaySwitch(at_ns, channel, on)``). ``LoopDetector(board, n)`` drives input n like a
    vehicle loop: ``arrive()``, ``leave()``, ``await vehicle(dwell_s)``.
``Fault``
    ``Fault.none()``, ``.no_reply()``, ``.exception(code)``, ``.corrupt_crc(probability)``
    (RTU only), ``.slow(seconds)``; ``parse_fault("unit=3:no-reply")`` reads the CLI form.
``ModbusSimulator(meters, *, transport="tcp", host="127.0.0.1", port=0, line=None,
line_timing=False)``
    One endpoint with distinct unit ids, any mix of profiles. ``address``, ``port``,
    ``device_path``, ``endpoint``, ``meters``, ``meter(unit)``, ``start()``, ``stop()``.
``SimulatorGroup(simulators)`` and ``tcp_meters(profile, count, *, units=(1,),
first_port=0, ...)``
    Many endpoints at once, e.g. 200 TCP meters each on its own port; ``endpoints``.
``LineSettings(baudrate=9600, parity="N", stopbits=1, bytesize=8)``
    An RTU line format and its timing (``char_time``, ``frame_gap``, ``frame_time(n)``).

Behaviour worth knowing:

- Unknown unit ids get no reply at all, like an absent RS-485 node (pymodbus alone would
  answer exception 4).
- Each register table is one block from its first to its last point with the gaps filled
  with zeros, so block reads across holes work as on an Eastron meter; reads outside it get
  exception 2. Profile limits are enforced as a real device does: more registers than
  ``max_registers_per_request`` gets exception 3, an odd start or count on an
  ``even_address`` device exception 2.
- Coil writes (FC05/FC15) are logged with wall-clock times; writes to holding registers
  that hold a point set that point (a counter preset, for example).

Command line: ``python -m simulators.modbus --help``.
"""

from simulators.modbus.faults import Fault, FaultKind, parse_fault
from simulators.modbus.loop_detector import LoopDetector
from simulators.modbus.meter import CoilWrite, SimulatedMeter, Transport
from simulators.modbus.pty_bridge import PtyBridge
from simulators.modbus.relay_board import RelayCommand, RelaySwitch, SimulatedRelayBoard
from simulators.modbus.server import ModbusSimulator, SimulatorGroup, tcp_meters
from simulators.modbus.timing import LineSettings

__all__ = [
    "CoilWrite",
    "Fault",
    "FaultKind",
    "LineSettings",
    "LoopDetector",
    "ModbusSimulator",
    "PtyBridge",
    "RelayCommand",
    "RelaySwitch",
    "SimulatedMeter",
    "SimulatedRelayBoard",
    "SimulatorGroup",
    "Transport",
    "parse_fault",
    "tcp_meters",
]
