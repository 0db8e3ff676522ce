"""The car parks of a running gateway: model, state file, sign relays and clock, wired together.

Readings reach :meth:`CarParkService.observe` from the record buffer before the outbox
writes them, as the rules' do; what the car parks say (occupancy, capacity) goes back into
the same buffer, so rules can watch a car park like any device. The "COMPLET" signs are
latches carried out by the rules' executor: one start-up order for every relay of the
gateway (boards off, then held latches again) and one retry policy. A tick each second
closes the coalescing windows and runs the daily resets; every change rewrites the state
file, and a stop sends the occupancy still held in its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.parking.config import CarParkConfig
from edge_agent.parking.model import CarPark, Output
from edge_agent.parking.state import STATE_FILE, load_state, save_state
from edge_agent.records import Event, Reading, now_ms
from edge_agent.rules.executor import ActionExecutor
from edge_agent.rules.intents import RelaySet

__all__ = ["TICK_S", "CarParkService"]

log = logging.getLogger("edge_agent.parking")

#: How often coalescing windows and resets are checked.
TICK_S = 1.0
_SAVE_RETRY_S = 5.0
#: Saves are at least this far apart: a busy car park must not fsync per vehicle. Lane
#: values are saved with the occupancy they led to, so after a power cut a counter's pulses
#: since the last save are counted at the next start from the saved value: none is lost.
_SAVE_EVERY_S = 1.0


class CarParkService:
    """Every ``[[car_parks]]`` entry of one gateway."""

    def __init__(
        self,
        configs: list[CarParkConfig],
        executor: ActionExecutor,
        put_readings: Callable[[list[Reading]], None],
        put_event: Callable[[Event], None],
        data_dir: Path,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._configs = configs
        self._executor = executor
        self._put_readings = put_readings
        self._put_event = put_event
        self._path = data_dir / STATE_FILE
        #: The wall clock in UTC milliseconds (tests put a virtual one here).
        self.clock = clock
        self.parks: list[CarPark] = []
        self._dirty = asyncio.Event()
        self._serial = itertools.count(1)
        self._saved_serial = 0
        self._save_lock = threading.Lock()

    async def start(self) -> None:
        """Take up the last run's state; send capacity and occupancy as they stand."""
        saved = await asyncio.to_thread(load_state, self._path)
        self.parks = [CarPark(config, saved.get(config.name)) for config in self._configs]
        now = self.clock()
        for park in self.parks:
            self._emit(park, park.start(now))
            log.info("car park %s: %d of %d%s", park.name, park.state.occupancy,
                     park.config.capacity, " (full)" if park.state.full else "")
        self._dirty.set()

    def observe(self, readings: list[Reading]) -> None:
        """A record-buffer observer: lanes and spot sensors are counted as they pass."""
        now = self.clock()
        for park in self.parks:
            if not any(reading.device in park.devices for reading in readings):
                continue
            revision = park.revision
            try:
                out = park.feed(readings, now)
            except Exception:  # a bug here must never cost the readings their way to disk
                log.exception("car park %s failed on %d readings; they are stored all the "
                              "same", park.name, len(readings))
                continue
            self._emit(park, out)
            if park.revision != revision:
                self._dirty.set()

    def tick(self) -> None:
        """Close the coalescing windows that are due and run the resets that are."""
        now = self.clock()
        for park in self.parks:
            self._emit(park, park.tick(now))

    def held_latches(self) -> dict[tuple[str, int], bool]:
        """The sign relays held on: those of the full car parks."""
        return {(park.config.sign.board, park.config.sign.channel): True
                for park in self.parks if park.config.sign is not None and park.state.full}

    def sign_boards(self) -> set[str]:
        """The relay boards of the signs."""
        return {config.sign.board for config in self._configs if config.sign is not None}

    async def run(self) -> None:
        """Tick and keep the state file until cancelled; held values go out on the way out."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._tick(), name="car-park-tick")
                group.create_task(self._keep_state(), name="car-park-state")
        finally:
            now = self.clock()
            for park in self.parks:
                self._emit(park, park.flush(now))
            with contextlib.suppress(OSError):
                self._prepare_save()()

    def report(self) -> list[dict[str, Any]]:
        """Each car park's occupancy and counters, for ``status.json``."""
        return [park.report() for park in self.parks]

    def _emit(self, park: CarPark, out: Output) -> None:
        if not out:
            return
        if out.sign is not None and park.config.sign is not None:
            sign = park.config.sign
            self._executor.submit([RelaySet(f"car park {park.name}", sign.board, sign.channel,
                                            out.sign)])
        for event in out.events:
            self._put_event(event)
            log.info("%s %s: %d of %d", event.kind, park.name, park.state.occupancy,
                     park.config.capacity)
        if out.readings:
            self._put_readings(out.readings)
        self._dirty.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.tick()

    async def _keep_state(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await asyncio.to_thread(self._prepare_save())
            except OSError as exc:
                log.error("cannot save %s (%s); retry in %.0f s", self._path, exc, _SAVE_RETRY_S)
                self._dirty.set()
                await asyncio.sleep(_SAVE_RETRY_S)
            else:
                await asyncio.sleep(_SAVE_EVERY_S)

    def _prepare_save(self) -> Callable[[], None]:
        """The state as it is now, ready to be written; an older save never replaces it."""
        serial = next(self._serial)
        snapshot = {park.name: dataclasses.replace(
            park.state, lanes=dict(park.state.lanes), spots=dict(park.state.spots))
            for park in self.parks}

        def write() -> None:
            with self._save_lock:
                if serial > self._saved_serial:
                    save_state(self._path, snapshot)
                    self._saved_serial = serial

        return write

