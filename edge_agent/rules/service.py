"""The rules of a running gateway: engine, state file, executor and clock, wired together.

Readings reach :meth:`RuleService.observe` from the record buffer before the outbox writes
them, so a threshold crossed on a poll commands its relay within that same event-loop turn;
a tick each second raises silent devices and completes pending durations. Every alarm
change rewrites the state file, so a restart finds the raised alarms and applies their
latches again; the held latches are also commanded again every minute, since a relay board
that lost power comes back with every relay off. A step of the wall clock (NTP after a boot
without a real-time clock) is followed, not mistaken for a silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.codecs.bundle import VerifiedBundle
from edge_agent.config import GatewayConfig
from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.drivers.modbus.relay import RelayBoard
from edge_agent.errors import BundleError, ConfigError
from edge_agent.records import Event, Reading, now_ms
from edge_agent.rules.engine import RuleEngine
from edge_agent.rules.executor import ActionExecutor, SendDownlink
from edge_agent.rules.intents import Transition, describe
from edge_agent.rules.models import RuleConfig
from edge_agent.rules.sources import bundle_rules, merge_rules
from edge_agent.rules.state import STATE_FILE, load_state, save_state
from edge_agent.sync.bundles import BundleStore

__all__ = ["REASSERT_S", "TICK_S", "RuleService"]

log = logging.getLogger("edge_agent.rules")

#: How often staleness and pending durations are checked.
TICK_S = 1.0
#: How often held latches are commanded again (a relay board may have restarted).
REASSERT_S = 60.0
#: A wall clock moving this much more (or less) than the monotonic one was stepped.
_CLOCK_STEP_MS = 2000
_SAVE_RETRY_S = 5.0


class RuleService:
    """Engine, state file and executor of one gateway's rules."""

    def __init__(
        self,
        config: GatewayConfig,
        buses: list[ModbusBus],
        put_event: Callable[[Event], None],
        data_dir: Path,
        *,
        send_downlink: SendDownlink | None = None,
        reassert_s: float = REASSERT_S,
    ) -> None:
        self._config = config
        self.reassert_s = reassert_s
        self._put_event = put_event
        self._path = data_dir / STATE_FILE
        boards = {device.name: RelayBoard(bus, device.unit, name=device.name)
                  for bus in buses for device in bus.devices}
        self.engine = RuleEngine(config.rules, now_ms())
        self.executor = ActionExecutor(boards, send_downlink, put_event)
        #: Bundle rules left out on this gateway, and why.
        self.skipped: list[str] = []
        self.bundle_version: int | None = None
        self._dirty = asyncio.Event()
        #: Saves are numbered: one from the state task still in its thread at shutdown must
        #: not replace the final save's newer content.
        self._serial = itertools.count(1)
        self._saved_serial = 0
        self._save_lock = threading.Lock()
        #: Latches held for others (car-park signs), and the boards they are on.
        self._held: list[Callable[[], Mapping[tuple[str, int], bool]]] = []
        self._held_boards: set[str] = set()

    def hold_latches(self, latches: Callable[[], Mapping[tuple[str, int], bool]],
                     boards: Iterable[str]) -> None:
        """Have the executor hold ``latches()`` too: after the boards are off at start, and
        again every ``reassert_s``, as the rules' own. Call before :meth:`run`."""
        self._held.append(latches)
        self._held_boards.update(boards)

    def held_latches(self) -> dict[tuple[str, int], bool]:
        """Every latch the executor holds: the raised rules' and the others'."""
        held = dict(self.engine.held_latches())
        for latches in self._held:
            held.update(latches())
        return held

    async def start(self, bundles: BundleStore | None) -> None:
        """Take up the held config bundle's rules and the state of the last run."""
        if bundles is not None:
            try:
                held = await asyncio.to_thread(bundles.current, "config")
            except BundleError as exc:
                log.error("config bundle refused (%s): the file's rules only", exc)
                held = None
            if held is not None:
                self.install_bundle(held)
        saved = await asyncio.to_thread(load_state, self._path)
        self._emit(self.engine.restore(saved, now_ms()))
        self._dirty.set()

    def observe(self, readings: list[Reading]) -> None:
        """A record-buffer observer: every reading passes here on its way to the outbox."""
        try:
            transitions = self.engine.feed(readings)
        except Exception:  # a bug in a rule must never cost the readings their way to disk
            log.exception("rules failed on %d readings; they are stored all the same",
                          len(readings))
            return
        if transitions:
            self._emit(transitions)

    def install_bundle(self, bundle: VerifiedBundle) -> None:
        """Put a newly accepted config bundle's rules in force; an invalid one changes nothing."""
        try:
            from_bundle = bundle_rules(bundle.payload, f"config bundle version {bundle.version}")
        except ConfigError as exc:
            log.error("%s; the rules in force stay", exc)
            return
        rules, self.skipped = merge_rules(self._config.rules, from_bundle,
                                          self._config.device_names(),
                                          self._config.relay_outputs())
        for problem in self.skipped:
            log.info("config bundle version %d: %s (left out)", bundle.version, problem)
        self.bundle_version = bundle.version
        self._emit(self.engine.install(rules, now_ms()))
        self._dirty.set()
        log.info("config bundle version %d: %d rules in force (%d from the bundle)",
                 bundle.version, len(rules), len(from_bundle) - len(self.skipped))

    async def run(self, ready: Callable[[], Awaitable[object]] | None = None) -> None:
        """Act, tick and keep the state file until cancelled; the state is saved on the way out.

        ``ready`` is awaited before the latches are applied again (see ActionExecutor.run).
        """
        own = {board for rule in self.engine.rules for board in rule.boards()}
        own = (own | self._held_boards) - self._config.access_boards()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.executor.run(self.held_latches, sorted(own),
                                                    ready), name="rule-actions")
                group.create_task(self._tick(), name="rule-tick")
                group.create_task(self._keep_state(), name="rule-state")
        finally:
            with contextlib.suppress(OSError):
                self._save()

    def report(self) -> dict[str, Any]:
        """Rules, latches and action counters, for ``status.json``."""
        return {
            "rules": self.engine.report(),
            "latches": [{"board": board, "channel": channel, "on": on}
                        for (board, channel), on in sorted(self.engine.held_latches().items())],
            "bundle_version": self.bundle_version,
            "skipped": self.skipped,
            "actions": self.executor.report(),
        }

    @property
    def rules(self) -> list[RuleConfig]:
        """The rules in force."""
        return self.engine.rules

    def _emit(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            self.executor.submit(transition.intents)  # the relay first: the event can wait
            self._put_event(transition.event)
            attrs = transition.event.attrs
            log.warning("%s %s on %s: %s = %s%s", transition.event.kind, attrs["rule"],
                        transition.event.device, attrs["quantity"] or "(any)", attrs["value"],
                        "".join(f"; {describe(intent)}" for intent in transition.intents))
        if transitions:
            self._dirty.set()

    async def _tick(self) -> None:
        wall, steady = now_ms(), time.monotonic_ns() // 1_000_000
        reasserted = steady
        while True:
            await asyncio.sleep(TICK_S)
            last_wall, last_steady = wall, steady
            wall, steady = now_ms(), time.monotonic_ns() // 1_000_000
            step = (wall - last_wall) - (steady - last_steady)
            if abs(step) > _CLOCK_STEP_MS:
                log.warning("the wall clock was stepped by %+.1f s; silences and durations "
                            "follow it", step / 1000)
                self.engine.shift(step)
            self._emit(self.engine.tick(wall))
            if steady - reasserted >= self.reassert_s * 1000:
                reasserted = steady
                self.executor.reassert(self.held_latches())

    async def _keep_state(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            save = self._prepare_save()
            try:
                await asyncio.to_thread(save)
            except OSError as exc:
                log.error("cannot save %s (%s); retry in %.0f s", self._path, exc, _SAVE_RETRY_S)
                self._dirty.set()
                await asyncio.sleep(_SAVE_RETRY_S)

    def _save(self) -> None:
        self._prepare_save()()

    def _prepare_save(self) -> Callable[[], None]:
        """The state as it is now, ready to be written (in a thread or not)."""
        serial, snapshot = next(self._serial), self.engine.snapshot()
        latches = self.engine.held_latches()

        def write() -> None:
            with self._save_lock:
                if serial > self._saved_serial:
                    save_state(self._path, snapshot, latches)
                    self._saved_serial = serial

        return write
