"""Carrying out what the rules ask: relay pulses and latches, LoRa downlinks.

An alarm must act even when the field misbehaves: a relay board that does not answer, a LoRa
source that is down. Each action runs in its own task so one dead board never delays another
board's barrier; a failed action is logged, counted, reported once as ``alarm.action_failed``
and retried with exponential backoff. Pulses and downlinks give up after a few tries (a
barrier pulse an hour late would surprise everyone); a latch is retried until it holds or a
newer command for the same relay replaces it, since a flood-road barrier must end up closed.
Nothing here needs the hub.

Start-up: the boards that only rules use are switched all off (the design's safe state),
then the latches of the alarms still raised are applied again. ``ready`` lets the runtime
make that wait until the access controller has switched its own boards off, so a shared
board's latch is not undone by the access side's start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from edge_agent.drivers.modbus.relay import RelayBoard
from edge_agent.errors import DeviceError, EdgeError
from edge_agent.records import Event, now_ms
from edge_agent.rules.intents import Downlink, Intent, RelayPulse, RelaySet, describe

__all__ = ["ActionExecutor", "ActionStats", "SendDownlink"]

log = logging.getLogger("edge_agent.rules")

#: The LoRa source's downlink: ``send_downlink(device, fport, data, confirmed)``.
SendDownlink = Callable[[str, int, bytes, bool], Awaitable[None]]

_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 30.0
#: Tries at a pulse or a downlink before giving up; latches are tried until they hold.
_MAX_ATTEMPTS = 6


@dataclass(slots=True)
class ActionStats:
    """What ``status`` shows about the actions."""

    performed: int = 0
    failures: int = 0
    retries: int = 0
    gave_up: int = 0
    superseded: int = 0
    no_lora_source: int = 0
    #: Latches commanded again: at start, and periodically against a board that restarted.
    reasserted: int = 0


class ActionExecutor:
    """Performs intents on relay boards (by device name) and through ``send_downlink``."""

    def __init__(
        self,
        boards: Mapping[str, RelayBoard],
        send_downlink: SendDownlink | None,
        put_event: Callable[[Event], None],
        *,
        first_delay_s: float = _FIRST_DELAY_S,
        max_delay_s: float = _MAX_DELAY_S,
    ) -> None:
        self._boards = boards
        #: The LoRa source's downlink; None until one is configured (the runtime may set it
        #: once its LoRa source exists).
        self.send_downlink = send_downlink
        self._put_event = put_event
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self.stats = ActionStats()
        #: Set once the start-up commands went out: later intents wait for it.
        self.started = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set once ``run`` ended: the gateway is stopping, no relay is commanded any more.
        self.closed = False
        self._generation: dict[tuple[str, int], int] = {}
        #: The latest command per relay, to tell whether one is still on its way.
        self._latest: dict[tuple[str, int], asyncio.Task[None]] = {}

    def submit(self, intents: Iterable[Intent]) -> None:
        """Start carrying out ``intents`` now, each on its own; returns at once."""
        for intent in intents:
            if self.closed:
                log.warning("rule %s: %s not done: the gateway is stopping", intent.rule,
                            describe(intent))
                continue
            generation = 0
            if isinstance(intent, RelaySet):
                key = (intent.board, intent.channel)
                generation = self._generation[key] = self._generation.get(key, 0) + 1
            task = asyncio.get_running_loop().create_task(self._carry_out(intent, generation),
                                                          name=f"rule-action[{intent.rule}]")
            if isinstance(intent, RelaySet):
                self._latest[intent.board, intent.channel] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def reassert(self, latches: Mapping[tuple[str, int], bool]) -> None:
        """Command the held ``latches`` again, except relays with a command on its way.

        A relay board that lost power comes back with every relay off, and nothing tells
        the gateway; the runtime calls this periodically so a held barrier closes again.
        """
        for (board, channel), on in latches.items():
            latest = self._latest.get((board, channel))
            if latest is None or latest.done():
                self.stats.reasserted += 1
                self.submit([RelaySet("(held)", board, channel, on)])

    async def run(self, latches: Callable[[], Mapping[tuple[str, int], bool]],
                  own_boards: Iterable[str],
                  ready: Callable[[], Awaitable[object]] | None = None) -> None:
        """Switch ``own_boards`` off, apply ``latches()`` again, then act until cancelled.

        A relay commanded since start keeps that newer command.
        """
        try:
            for name in own_boards:
                board = self._boards.get(name)
                if board is None:
                    continue
                try:
                    await board.all_off()
                except DeviceError as exc:
                    log.error("%s: could not switch every relay off at start: %s", name, exc)
            if ready is not None:
                await ready()
            self.started.set()
            self.reassert(latches())
            await asyncio.Event().wait()
        finally:
            self.closed = True
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def report(self) -> dict[str, Any]:
        """The counters, for ``status.json``."""
        return {**asdict(self.stats), "in_flight": len(self._tasks)}

    async def _carry_out(self, intent: Intent, generation: int) -> None:
        await self.started.wait()
        if isinstance(intent, Downlink) and self.send_downlink is None:
            self.stats.no_lora_source += 1
            log.warning("rule %s: %s not sent: no LoRa source is configured", intent.rule,
                        describe(intent))
            return
        attempt = 0
        while True:
            if self._superseded(intent, generation):
                self.stats.superseded += 1
                return
            attempt += 1
            permanent = False
            try:
                await self._perform(intent)
            except EdgeError as exc:
                error = str(exc)
            except ValueError as exc:  # a channel the board does not have: no retry helps
                error, permanent = str(exc), True
            except Exception as exc:  # the LoRa source's bug must not stop the gateway
                log.exception("rule %s: %s failed unexpectedly", intent.rule, describe(intent))
                error = f"{type(exc).__name__}: {exc}"
            else:
                self.stats.performed += 1
                return
            self.stats.failures += 1
            if attempt == 1:
                self._put_event(Event("alarm.action_failed", _target(intent), now_ms(), {
                    "rule": intent.rule, "action": describe(intent), "error": error}))
            if permanent or (not isinstance(intent, RelaySet) and attempt >= _MAX_ATTEMPTS):
                log.error("rule %s: %s failed %d times, given up: %s", intent.rule,
                          describe(intent), attempt, error)
                self.stats.gave_up += 1
                return
            delay = min(self._first_delay_s * 2.0 ** (attempt - 1), self._max_delay_s)
            log.error("rule %s: %s failed (%s); retry in %.1f s", intent.rule, describe(intent),
                      error, delay)
            self.stats.retries += 1
            await asyncio.sleep(delay)

    async def _perform(self, intent: Intent) -> None:
        match intent:
            case RelayPulse(board=board, channel=channel, ms=ms):
                await self._board(board).pulse(channel, ms)
            case RelaySet(board=board, channel=channel, on=on):
                await self._board(board).set(channel, on)
            case Downlink(device=device, fport=fport, data=data, confirmed=confirmed):
                assert self.send_downlink is not None
                await self.send_downlink(device, fport, data, confirmed)
                log.info("rule %s: %s sent", intent.rule, describe(intent))

    def _board(self, name: str) -> RelayBoard:
        board = self._boards.get(name)
        if board is None:
            raise DeviceError("not a relay board of this gateway", device=name)
        return board

    def _superseded(self, intent: Intent, generation: int) -> bool:
        if not isinstance(intent, RelaySet):
            return False
        return self._generation.get((intent.board, intent.channel), 0) != generation


def _target(intent: Intent) -> str:
    return intent.device if isinstance(intent, Downlink) else intent.board
