"""Berth pedestal sessions: a badge switches an outlet on, the meters say what it cost.

A session opens when an allowed badge is presented at a free pedestal: the meter indexes are
read first (no index, no unbilled service), then the outlet relay is switched on. It closes
when the same badge is presented again, when it reaches its maximum duration or its credit,
or when the gateway restarts (every relay is switched off at start, so an outlet never stays
on across a crash unnoticed). Closing switches the outlet off, reads the indexes again and
emits ``session.closed`` with the energy and water used: billing evidence, so the open
sessions are kept in ``sessions.json`` and a restart closes them rather than forgetting them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.access.decision import Decision, Reason
from edge_agent.codecs.pseudonyms import pseudonym_text
from edge_agent.config import PedestalConfig
from edge_agent.drivers.modbus.relay import RelayBoard
from edge_agent.durable import replace_durably
from edge_agent.errors import DeviceError
from edge_agent.records import Event, Reading, now_ms

__all__ = ["SESSIONS_FILE", "MeterReader", "PedestalSessions", "Session"]

log = logging.getLogger("edge_agent.access")

SESSIONS_FILE = "sessions.json"
ENERGY = "active_energy_import"
WATER = "water_volume"
_CHECK_PERIOD_S = 1.0

#: Reads one meter now and returns its readings (DeviceError when it does not answer).
MeterReader = Callable[[str], Awaitable[list[Reading]]]


@dataclass(slots=True)
class Session:
    """One open session: who, where, since when, from which indexes."""

    pedestal: str
    badge: str
    started_ms: int
    energy_start_kwh: float | None = None
    water_start_m3: float | None = None
    #: The latest indexes seen while the session runs (polls), to enforce credit.
    energy_now_kwh: float | None = None
    water_now_m3: float | None = None


class PedestalSessions:
    """The sessions of every pedestal of the gateway."""

    def __init__(
        self,
        pedestals: Mapping[str, PedestalConfig],
        boards: Mapping[str, RelayBoard],
        read_meter: MeterReader,
        put_event: Callable[[Event], None],
        path: Path,
    ) -> None:
        self._pedestals = pedestals
        self._boards = boards
        self._read_meter = read_meter
        self._put_event = put_event
        self._path = path
        self.open: dict[str, Session] = {}
        self._lock = asyncio.Lock()

    async def restore(self) -> None:
        """Close what a previous run left open (its outlets are already off)."""
        try:
            saved = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s): open sessions of the last run are lost", self._path,
                      exc)
            return
        for item in saved if isinstance(saved, list) else [saved]:
            try:
                session = Session(**item)
            except TypeError:
                log.error("%s: unreadable session %r left out", self._path, item)
                continue
            if session.pedestal in self._pedestals:
                self.open[session.pedestal] = session
        for pedestal in list(self.open):
            await self.close(pedestal, "restart", switch_off=False)

    async def present(self, decision: Decision) -> Decision:
        """Start or stop a session for an allowed badge; the decision as it finally stands."""
        pedestal, badge = decision.gate, decision.pseudonym
        if badge is None:
            return decision
        async with self._lock:
            session = self.open.get(pedestal)
            if session is not None:
                if session.badge != pseudonym_text(badge):
                    return dataclasses.replace(decision, reason=Reason.PEDESTAL_BUSY)
                await self._close_locked(pedestal, "badge", switch_off=True)
                return decision
            return await self._start_locked(pedestal, pseudonym_text(badge), decision)

    def observe(self, readings: list[Reading]) -> None:
        """Follow the meters' polled indexes; a session past its credit is closed."""
        for session in self.open.values():
            config = self._pedestals[session.pedestal]
            for reading in readings:
                if reading.device == config.energy_meter and reading.quantity == ENERGY:
                    session.energy_now_kwh = reading.value
                elif reading.device == config.water_meter and reading.quantity == WATER:
                    session.water_now_m3 = reading.value

    async def run(self) -> None:
        """Close sessions past their maximum duration or credit, until cancelled."""
        while True:
            await asyncio.sleep(_CHECK_PERIOD_S)
            for pedestal, session in list(self.open.items()):
                reason = self._limit_reached(session)
                if reason is not None:
                    await self.close(pedestal, reason, switch_off=True)

    async def close(self, pedestal: str, reason: str, *, switch_off: bool) -> None:
        """Close the session of ``pedestal`` and emit ``session.closed``."""
        async with self._lock:
            if pedestal in self.open:
                await self._close_locked(pedestal, reason, switch_off=switch_off)

    def report(self) -> list[dict[str, Any]]:
        """The open sessions, for ``status.json``."""
        return [dataclasses.asdict(session) for session in self.open.values()]

    def _limit_reached(self, session: Session) -> str | None:
        config = self._pedestals[session.pedestal]
        if now_ms() - session.started_ms >= config.max_duration_h * 3_600_000:
            return "timeout"
        used_kwh = _used(session.energy_start_kwh, session.energy_now_kwh)
        used_m3 = _used(session.water_start_m3, session.water_now_m3)
        if (config.credit_kwh is not None and used_kwh is not None
                and used_kwh >= config.credit_kwh):
            return "credit"
        if config.credit_m3 is not None and used_m3 is not None and used_m3 >= config.credit_m3:
            return "credit"
        return None

    async def _start_locked(self, pedestal: str, badge: str, decision: Decision) -> Decision:
        config = self._pedestals[pedestal]
        try:
            energy, water = await self._indexes(config)
            await self._boards[config.relay].set(config.channel, True)
        except DeviceError as exc:
            log.error("pedestal %s: no session for badge %s: %s", pedestal, badge, exc)
            with contextlib.suppress(DeviceError):
                await self._boards[config.relay].set(config.channel, False)
            return dataclasses.replace(decision, reason=Reason.SERVICE_UNAVAILABLE)
        self.open[pedestal] = Session(pedestal, badge, now_ms(), energy, water, energy, water)
        await asyncio.to_thread(self._save)
        self._put_event(Event("session.opened", pedestal, now_ms(), {
            "badge": badge, "energy_start_kwh": energy, "water_start_m3": water,
            "energy_meter": config.energy_meter, "water_meter": config.water_meter}))
        return decision

    async def _close_locked(self, pedestal: str, reason: str, *, switch_off: bool) -> None:
        session = self.open.pop(pedestal)
        config = self._pedestals[pedestal]
        if switch_off:
            try:
                await self._boards[config.relay].set(config.channel, False)
            except DeviceError as exc:
                log.error("pedestal %s: outlet may still be on: %s", pedestal, exc)
                self._put_event(Event("alarm.outlet_stuck", pedestal, now_ms(),
                                      {"error": str(exc)}))
        try:
            energy, water = await self._indexes(config)
        except DeviceError as exc:
            log.warning("pedestal %s: closing indexes not read (%s); the last polled ones "
                        "are used", pedestal, exc)
            energy, water = session.energy_now_kwh, session.water_now_m3
        self._put_event(Event("session.closed", pedestal, now_ms(), {
            "badge": session.badge, "started_ms": session.started_ms, "ended_ms": now_ms(),
            "reason": reason,
            "kwh": _used(session.energy_start_kwh, energy),
            "m3": _used(session.water_start_m3, water),
            "energy_start_kwh": session.energy_start_kwh, "energy_end_kwh": energy,
            "water_start_m3": session.water_start_m3, "water_end_m3": water}))
        await asyncio.to_thread(self._save)

    async def _indexes(self, config: PedestalConfig) -> tuple[float | None, float | None]:
        energy = await self._index(config.energy_meter, ENERGY)
        water = await self._index(config.water_meter, WATER)
        return energy, water

    async def _index(self, meter: str | None, quantity: str) -> float | None:
        if meter is None:
            return None
        readings = await self._read_meter(meter)
        for reading in readings:
            if reading.quantity == quantity:
                return reading.value
        raise DeviceError(f"meter {meter} gave no {quantity}", device=meter)

    def _save(self) -> None:
        """Replace the file durably: a power cut leaves the old list or the new one."""
        replace_durably(self._path,
                        json.dumps([dataclasses.asdict(s) for s in self.open.values()]).encode())


def _used(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 6)
