"""A marina in the field for the dashboard's browser tests: a real ``edge-agent run`` process
provisioned through tests/helpers/gateway.py, reading two simulated RDM6300 badge readers
(ptys: the gate ``gate-a`` and the pedestal ``berth-a12``) and, on Modbus TCP, a relay board
(the gate on channel 1, the outlet on channel 2), the berth's SDM120 meter and a pulse
counter at the entry and exit lanes of car park ``P-capitainerie`` (40 spaces).

Territory ``port`` has the rules of tests/helpers/marina_world.py; accounts ``olga``
(operator), ``sid`` (staff) and ``ada`` (admin) sign in with its PASSWORD.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from edge_agent.profiles import load_profile
from simulators.demo import agent_process
from simulators.modbus import ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from simulators.readers import CardReaderSimulator
from sync_server.db.schema import events
from sync_server.ui.accounts import add_user
from tests.helpers.gateway import make_gateway
from tests.helpers.hub import HubProcess
from tests.helpers.marina_world import PASSWORD, RULES
from tests.helpers.ui_world import MeterThread

__all__ = ["GATEWAY", "MarinaField", "marina_field"]

GATEWAY = "port-gw"

_AGENT_SETTINGS = """interval_s = 0.3
bundle_interval_s = 0.5
max_backoff_s = 1
timeout_s = 5

[[buses]]
name = "pontoon"
tcp = "{endpoint}"
timeout_ms = 300

[[devices]]
name = "relays-a"
bus = "pontoon"
profile = "waveshare-relay-8ch"
unit = 1
interval_s = 5

[[devices]]
name = "berth-a12-meter"
bus = "pontoon"
profile = "eastron-sdm120"
unit = 2
interval_s = 0.5
quantities = ["active_energy_import"]

[[devices]]
name = "sfar"
bus = "pontoon"
profile = "isma-sfar-4di"
unit = 3
interval_s = 0.2
quantities = ["pulse_count_1", "pulse_count_2"]

[[readers]]
name = "reader-gate-a"
profile = "rdm6300"
port = "{gate}"
gate = "gate-a"
duplicate_window_ms = 300

[[readers]]
name = "reader-berth-a12"
profile = "rdm6300"
port = "{pedestal}"
gate = "berth-a12"
duplicate_window_ms = 300

[[gates]]
name = "gate-a"
relay = "relays-a"
channel = 1
pulse_ms = 300

[[pedestals]]
name = "berth-a12"
relay = "relays-a"
channel = 2
energy_meter = "berth-a12-meter"

[[car_parks]]
name = "P-capitainerie"
capacity = 40
entries = [{{device = "sfar", quantity = "pulse_count_1"}}]
exits = [{{device = "sfar", quantity = "pulse_count_2"}}]
"""


class FieldThread(MeterThread):
    """The relay board, the berth meter and the lane counter on one Modbus TCP simulator."""

    def __init__(self) -> None:
        super().__init__()
        self.board = SimulatedRelayBoard(1)
        self.meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=3,
                                    update_interval=0.2)
        self.lanes = SimulatedMeter(3, load_profile("isma-sfar-4di"), update_interval=1e9)
        self.lanes.set_value("pulse_count_1", 1000)
        self.lanes.set_value("pulse_count_2", 1000)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with ModbusSimulator([self.board, self.meter, self.lanes]) as server:
            self.endpoint = server.endpoint
            self._ready.set()
            await self._stop.wait()

    def cars(self, entered: int, left: int) -> None:
        """The lane counters from now on (from the test's thread)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.lanes.set_value, "pulse_count_1", 1000 + entered)
        self._loop.call_soon_threadsafe(self.lanes.set_value, "pulse_count_2", 1000 + left)


@dataclass
class MarinaField:
    """The running hub, agent, simulators and readers."""

    hub: HubProcess
    field: FieldThread
    gate: CardReaderSimulator
    pedestal: CardReaderSimulator
    agent: subprocess.Popen[bytes]

    @property
    def ui(self) -> str:
        """The dashboard's base URL."""
        return f"{self.hub.url}/ui"

    def present(self, reader: CardReaderSimulator, card: str) -> None:
        """Show card ``card`` (10 hex digits) to ``reader`` once."""
        reader.send(reader.frame(bytes.fromhex(card)))

    def decisions(self, gate: str) -> list[dict[str, Any]]:
        """The decisions the hub holds for ``gate``, oldest first (attrs and kind)."""
        with self.hub.engine.connect() as conn:
            found = conn.execute(select(events.c.kind, events.c.attrs).where(
                events.c.device == gate, events.c.kind.in_(("access.granted",
                                                            "access.denied")))
                .order_by(events.c.ts_ms)).all()
        return [{"kind": kind, **json.loads(attrs)} for kind, attrs in found]


@contextmanager
def marina_field(hub: HubProcess, root: Path) -> Iterator[MarinaField]:
    """The world of the module docstring; the agent, simulators and readers stopped at exit."""
    hub.territory("port")
    for name, role, territory in (("olga", "operator", "port"), ("sid", "staff", "port"),
                                  ("ada", "admin", None)):
        add_user(hub.engine, name, role, territory, PASSWORD)
    with hub.operator("port") as api:
        assert api.put("/v1/policy/rules", json=RULES).status_code == 200
    gate, pedestal = CardReaderSimulator("rdm6300"), CardReaderSimulator("rdm6300")
    gate.open()
    pedestal.open()
    try:
        field = FieldThread()
        with field:
            settings = _AGENT_SETTINGS.format(endpoint=field.endpoint, gate=gate.path,
                                              pedestal=pedestal.path)
            gateway = make_gateway(root, hub, "port", GATEWAY, counts={"readings": 0},
                                   sync_settings=settings)
            with agent_process(gateway.config, root / "agent.log") as agent:
                yield MarinaField(hub, field, gate, pedestal, agent)
    finally:
        gate.close()
        pedestal.close()
