"""Badge in, barrier up: readers → decision → relay → event, on the gateway alone.

Each card a reader hands over is decided at once from the policy in force; an allowed card
pulses its gate's relay (timed by the board) or starts or stops a pedestal session, and the
decision becomes an ``access.granted`` or ``access.denied`` event, written to the outbox's
most urgent stream. The relay command goes first: the event waits for nothing the barrier
needs. Every relay board used by a gate or pedestal is switched all-off before anything
else, so a restart never leaves a barrier contact closed or an outlet on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.access.decision import Decision, Reason
from edge_agent.access.engine import AccessEngine
from edge_agent.access.sessions import SESSIONS_FILE, PedestalSessions
from edge_agent.config import GatewayConfig
from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.relay import RelayBoard
from edge_agent.drivers.readers import BadgePresented, BadgeReader
from edge_agent.errors import ControlError, DeviceError
from edge_agent.records import Event, Reading, now_ms

__all__ = ["AccessController", "GateStats"]

log = logging.getLogger("edge_agent.access")


@dataclass(slots=True)
class GateStats:
    """What ``status`` shows per gate."""

    granted: int = 0
    denied: int = 0
    actuator_failures: int = 0
    last: dict[str, Any] = field(default_factory=dict)


class AccessController:
    """The access side of one gateway: its readers, gates, pedestals and decisions."""

    def __init__(
        self,
        config: GatewayConfig,
        buses: list[ModbusBus],
        engine: AccessEngine,
        put_event: Callable[[Event], None],
        readers: list[BadgeReader],
        data_dir: Path,
    ) -> None:
        self.engine = engine
        self._put_event = put_event
        self.readers = readers
        self._reader_gate = {reader.name: reader.gate for reader in config.readers}
        self._gates = {gate.name: gate for gate in config.gates}
        self._pedestals = {pedestal.name: pedestal for pedestal in config.pedestals}
        self._devices = {device.name: (bus, device) for bus in buses for device in bus.devices}
        relays = {gate.relay for gate in config.gates} | {p.relay for p in config.pedestals}
        self.boards = {name: RelayBoard(bus, device.unit, name=name)
                       for name, (bus, device) in self._devices.items() if name in relays}
        self.sessions = (
            PedestalSessions(self._pedestals, self.boards, self._read_meter, put_event,
                             data_dir / SESSIONS_FILE)
            if config.pedestals else None)
        self.stats = {name: GateStats() for name in [*self._gates, *self._pedestals]}
        self._tasks: set[asyncio.Task[Decision]] = set()
        #: Set once every output was switched off at start (rules latch relays after that).
        self.outputs_off = asyncio.Event()

    async def run(self) -> None:
        """Switch every output off, close sessions left open, then serve readers until cancelled."""
        await self._all_off()
        self.outputs_off.set()
        if self.sessions is not None:
            await self.sessions.restore()
        async with asyncio.TaskGroup() as group:
            for reader in self.readers:
                group.create_task(reader.run(self.on_badge), name=f"reader[{reader.name}]")
            if self.sessions is not None:
                group.create_task(self.sessions.run(), name="pedestal-sessions")

    def on_badge(self, presented: BadgePresented) -> None:
        """A reader's callback: decide and act without holding the reader up."""
        gate = self._reader_gate.get(presented.reader)
        if gate is None:
            log.error("badge from reader %s, which stands at no gate", presented.reader)
            return
        task = asyncio.get_running_loop().create_task(
            self.present(gate, presented.raw, presented.ts_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def observe(self, readings: list[Reading]) -> None:
        """Polled readings pass by here: pedestal sessions follow their meters."""
        if self.sessions is not None and self.sessions.open:
            self.sessions.observe(readings)

    async def present(self, gate: str, raw: bytes, ts_ms: int) -> Decision:
        """Decide for card ``raw`` at ``gate``, act on it and record the event."""
        decision = self.engine.decide(gate, raw, now_ms())
        if decision.granted:
            decision = await self._act(decision)
        self._record(decision, ts_ms)
        return decision

    async def open_manually(self, gate: str) -> Decision:
        """Open ``gate`` on staff's command, whatever the policy says; logged as an event."""
        if gate not in self._gates:
            known = ", ".join(sorted(self._gates)) or "none"
            raise ControlError(f"no gate named {gate!r} on this gateway (gates: {known})")
        decision = await self._act(self.engine.manual(gate))
        self._record(decision, now_ms())
        return decision

    def report(self) -> dict[str, Any]:
        """The access state for ``status.json``."""
        policy = self.engine.policy
        return {
            "policy": None if policy is None else {
                "version": policy.version, "expires_at_ms": policy.expires_at_ms,
                "badges": len(policy.badges), "gates": len(policy.gates)},
            "problem": self.engine.problem,
            "readers": {reader.name: reader.health.as_dict() for reader in self.readers},
            "gates": {name: dataclasses.asdict(stats) for name, stats in self.stats.items()},
            "sessions": self.sessions.report() if self.sessions is not None else [],
        }

    async def _act(self, decision: Decision) -> Decision:
        if decision.gate in self._pedestals and self.sessions is not None:
            return await self.sessions.present(decision)
        gate = self._gates.get(decision.gate)
        if gate is None:
            return decision
        try:
            await self.boards[gate.relay].pulse(gate.channel, gate.pulse_ms)
        except DeviceError as exc:
            log.error("gate %s did not open: %s", gate.name, exc)
            self.stats[gate.name].actuator_failures += 1
            self._put_event(Event("alarm.gate_failed", gate.name, now_ms(), {"error": str(exc)}))
            return dataclasses.replace(decision, reason=Reason.SERVICE_UNAVAILABLE)
        return decision

    def _record(self, decision: Decision, ts_ms: int) -> None:
        event = decision.event(ts_ms)
        self._put_event(event)
        stats = self.stats.get(decision.gate)
        if stats is None:
            return
        if decision.granted:
            stats.granted += 1
        else:
            stats.denied += 1
        stats.last = {"ts_ms": ts_ms, "granted": decision.granted, **event.attrs}

    async def _read_meter(self, name: str) -> list[Reading]:
        bus, device = self._devices[name]
        return await bus.read_now(device)

    async def _all_off(self) -> None:
        for board in self.boards.values():
            try:
                await board.all_off()
            except DeviceError as exc:
                log.error("%s: could not switch every relay off at start: %s", board.name, exc)
                self._put_event(Event("alarm.relay_board_unreachable", board.name, now_ms(),
                                      {"error": str(exc)}))
