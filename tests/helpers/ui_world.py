"""A hub with a real agent pushing from a simulated meter, for the dashboard's tests.

Territory ``dunkerque`` has gateway ``ponton-a``: an ``edge-agent run`` process (provisioned
through tests/helpers/gateway.py, as an installer would) polling a simulated Eastron SDM120
on Modbus TCP every half second, with a rule raising an alarm while the voltage is above
250 V. The test drives the alarm by setting the meter's voltage. Territory ``toulon`` has a
gateway of its own with one reading, for isolation tests; dunkerque's ``quai-b`` pushed
eight days of a berth's power every five minutes (a chart with a history). Accounts:
``alice`` (operator, dunkerque), ``bob`` (operator, toulon), ``sam`` (staff, dunkerque),
``root`` (admin).
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_agent.profiles import load_profile
from edge_agent.records import Reading, now_ms
from simulators.demo import agent_process
from simulators.modbus import ModbusSimulator, SimulatedMeter
from sync_server.ui.accounts import add_user
from tests.helpers.field import push
from tests.helpers.gateway import make_gateway
from tests.helpers.hub import HubProcess

__all__ = ["AGENT_SETTINGS", "HISTORY_DEVICE", "HISTORY_GATEWAY", "METER", "PASSWORD",
           "MeterThread", "UiWorld", "ui_world"]

PASSWORD = "correct horse battery"
GATEWAY = "ponton-a"
METER = "berth-a1"
HISTORY_GATEWAY = "quai-b"
HISTORY_DEVICE = "berth-b1"
#: Eight days of five-minute readings.
_HISTORY = 8 * 288

#: An agent polling a simulated SDM120 at {endpoint} as device {meter}, with an overvoltage rule.
AGENT_SETTINGS = """interval_s = 0.3
max_backoff_s = 1
timeout_s = 5
health_interval_s = 1

[[buses]]
name = "pontoon"
tcp = "{endpoint}"
timeout_ms = 300

[[devices]]
name = "{meter}"
bus = "pontoon"
profile = "eastron-sdm120"
unit = 2
interval_s = 0.5
quantities = ["voltage", "active_power"]

[[rules]]
name = "overvoltage"
device = "{meter}"
quantity = "voltage"
kind = "above"
threshold = 250
clear_at = 245
severity = "critical"
"""


class MeterThread:
    """A simulated SDM120 on Modbus TCP, served by a thread with its own event loop."""

    def __init__(self) -> None:
        self.meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=7)
        self.endpoint = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with ModbusSimulator([self.meter]) as server:
            self.endpoint = server.endpoint
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> MeterThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the simulated meter did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def set_voltage(self, volts: float) -> None:
        """What the meter measures from now on (from the test's thread)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.meter.set_value, "voltage", volts)


@dataclass
class UiWorld:
    """The running hub, agent and meter, and the accounts' names."""

    hub: HubProcess
    meter: MeterThread
    agent: subprocess.Popen[bytes]

    @property
    def ui(self) -> str:
        """The dashboard's base URL."""
        return f"{self.hub.url}/ui"


@contextmanager
def ui_world(hub: HubProcess, root: Path) -> Iterator[UiWorld]:
    """The world of the module docstring; the agent and meter stopped at exit."""
    engine = hub.engine
    hub.territory("dunkerque")
    hub.territory("toulon")
    for name, role, territory in (("alice", "operator", "dunkerque"),
                                  ("bob", "operator", "toulon"),
                                  ("sam", "staff", "dunkerque"), ("root", "admin", None)):
        add_user(engine, name, role, territory, PASSWORD)
    toulon = hub.enroll("toulon", "toulon-gw")
    push(hub, toulon["token"], "readings",
         [Reading("barrier-1", "parking_occupancy", now_ms(), 12.0)])
    quai = hub.enroll("dunkerque", HISTORY_GATEWAY)
    start = now_ms() - _HISTORY * 300_000
    push(hub, quai["token"], "readings", [
        Reading(HISTORY_DEVICE, "active_power", start + k * 300_000,
                round(1800 + 1200 * math.sin(k / 288 * 2 * math.pi) + 150 * math.sin(k / 7), 1))
        for k in range(_HISTORY)])
    with MeterThread() as meter:
        gateway = make_gateway(root, hub, "dunkerque", GATEWAY, counts={"readings": 0},
                               sync_settings=AGENT_SETTINGS.format(endpoint=meter.endpoint,
                                                                    meter=METER))
        with agent_process(gateway.config, root / "agent.log") as agent:
            yield UiWorld(hub, meter, agent)
