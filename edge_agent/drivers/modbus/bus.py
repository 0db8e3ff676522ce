"""The scheduler of one Modbus bus: one frame on the wire at a time, dead devices fenced off.

An RS-485 line (or a TCP endpoint) carries one transaction at a time. The bus polls each
device when it is due, puts commands (relay writes) ahead of the next poll request, keeps the
silence the line and each device need between frames, and backs off devices that stop
answering so a dead meter costs one short timeout now and then instead of stalling the rest.

Each device keeps a fixed grid of slots. A poll that starts within a second of its slot is
stamped with the slot's time, one timestamp for all its readings (they compress to almost
nothing on the wire); a later one with the time it started. Before a poll the bus waits for
room in the record buffer (backpressure); the slots a device misses, whatever the cause (a
busy line, a busy machine, a full buffer), are counted as ``late`` and reported coalesced
(edge_agent/overload.py), never dropped one by one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from edge_agent.drivers.modbus.decoding import readings_from_response
from edge_agent.drivers.modbus.device import PolledDevice
from edge_agent.drivers.modbus.link import ModbusLink
from edge_agent.drivers.modbus.planner import ReadRequest, split_at_holes
from edge_agent.drivers.modbus.timing import inter_frame_gap_s
from edge_agent.errors import (
    CodecError,
    DeviceError,
    DeviceException,
    DeviceTimeout,
    FrameError,
    TransportError,
)
from edge_agent.overload import Backpressure, Lateness
from edge_agent.records import Event, Reading, RecordSink, now_ms

__all__ = ["BusPolicy", "ModbusBus", "backoff_s", "next_slot", "wake_time"]

log = logging.getLogger("edge_agent.modbus")

_ILLEGAL_DATA_ADDRESS = 2
#: A bus wakes on a grid of its shortest poll interval / this (at most _MAX_TICK_S).
_TICKS_PER_INTERVAL = 20
_MAX_TICK_S = 0.5
#: Illegal function or address: usually a profile that does not match the device.
_PROFILE_MISMATCH_CODES = (1, 2)
#: A poll that starts this late after its slot is stamped when it starts, not at the slot.
_ON_TIME_S = 1.0
#: A change of the wall clock against the monotonic one beyond this is a clock step.
_CLOCK_STEP_MS = 20.0


@dataclass(frozen=True, slots=True)
class BusPolicy:
    """How patient a bus is with devices that stop answering."""

    #: Consecutive failed polls before a device is declared offline.
    offline_after: int = 3
    #: Longest wait between two attempts at an offline device.
    max_backoff_s: float = 60.0


def next_slot(due: float, interval_s: float, now: float) -> float:
    """The slot of the device's fixed grid to poll after the one due at ``due``: late polls
    do not drift.

    Normally the next one. When the poll overran it (a busy line, a busy machine, a full
    buffer), the latest slot already begun: the device is polled again at once, for that
    slot, and only the slots before it are skipped. Catch-up polls are never bunched, and a
    device whose poll takes longer than its interval is polled back to back instead of
    idling until the next slot (which wasted up to half the line past the knee).
    """
    if interval_s <= 0:
        return now
    passed = max(1, math.floor((now - due) / interval_s))
    return due + passed * interval_s


def wake_time(due: float, tick_s: float) -> float:
    """The first multiple of ``tick_s`` at or after ``due`` (``due`` itself when 0).

    Buses due within the same tick wake in the same turn of the event loop: each wakeup
    costs a turn whatever it does, so 200 one-meter buses polled every 10 s cost a few
    wakeups a second instead of one per poll.
    """
    return math.ceil(due / tick_s) * tick_s if tick_s > 0 else due


def backoff_s(failures: int, interval_s: float, policy: BusPolicy) -> float:
    """Wait before the next try at a device that failed ``failures`` polls in a row.

    The regular interval until it is offline, then doubling, with ±10 % jitter so devices
    that failed together do not retry together, and never more than the policy's cap (or
    the device's own interval, when that is longer).
    """
    doublings = min(max(0, failures - policy.offline_after + 1), 30)
    cap = max(policy.max_backoff_s, interval_s)
    return min(cap, interval_s * 2.0**doublings * random.uniform(0.9, 1.1))


class ModbusBus:
    """Polls the devices of one link and runs commands on it, one transaction at a time."""

    def __init__(
        self,
        link: ModbusLink,
        devices: list[PolledDevice],
        sink: RecordSink,
        *,
        policy: BusPolicy = BusPolicy(),
        clock: Callable[[], float] = time.monotonic,
        backpressure: Backpressure | None = None,
        lateness: Lateness | None = None,
    ) -> None:
        self.link = link
        self.devices = devices
        self._sink = sink
        self._policy = policy
        self._clock = clock
        settings = link.settings
        self._line_gap_s = (inter_frame_gap_s(settings.baudrate, settings.parity, settings.stopbits)
                            if settings.is_rtu else 0.0)
        self._quiet_since = 0.0
        self._tick_s = min(_MAX_TICK_S, min((d.interval_s for d in devices), default=0.0)
                           / _TICKS_PER_INTERVAL)
        #: Silences wait for the tick too on TCP; on RTU the line's timing is exact.
        self._silence_tick_s = 0.0 if settings.is_rtu else self._tick_s
        self._commands: deque[tuple[Callable[[], Awaitable[None]], asyncio.Future[None],
                                    float]] = deque()
        #: Resolved to end a :meth:`_sleep` early (a command, a stop).
        self._waiter: asyncio.Future[None] | None = None
        #: Set by run(): asyncio.get_running_loop() costs a getpid() system call per sleep.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._backpressure = backpressure
        self._lateness = lateness if lateness is not None else Lateness(sink.put_event)
        #: Wall clock minus the bus clock, in ms: turns a slot into a timestamp.
        self._wall_offset_ms = 0.0

    @property
    def name(self) -> str:
        """The bus name from the configuration."""
        return self.link.settings.name

    def overdue(self, device: PolledDevice) -> int:
        """Slots of ``device``'s grid that passed while its poll waits (a full buffer, a
        busy line): they are counted as ``late`` once it is polled, and status shows them
        meanwhile, so a stalled gateway does not look on time."""
        if self._loop is None or self._stopping or device.interval_s <= 0:
            return 0
        # Of the slots begun since the one due, the latest is still polled (next_slot).
        begun = math.floor((self._clock() - device.next_due) / device.interval_s)
        return max(0, begun - 1)

    def stop(self) -> None:
        """Finish the transaction in flight, then leave :meth:`run`."""
        self._stopping = True
        self._wake()

    async def run(self, *, start_offset_s: float = 0.0) -> None:
        """Poll until :meth:`stop`; the port is closed on the way out, whatever happens.

        ``start_offset_s`` delays the first polls, to spread many buses over time.
        """
        self._quiet_since = self._clock()  # the line's past is unknown: wait t3.5
        self._loop = asyncio.get_running_loop()
        start = self._quiet_since + start_offset_s
        spread = min((d.interval_s for d in self.devices), default=0.0)
        for index, device in enumerate(self.devices):
            # Spread first polls over the shortest interval: devices do not all fall due
            # together, and none waits a long interval before its first reading.
            device.next_due = start + spread * index / len(self.devices)
        try:
            while not self._stopping:
                if self._commands:
                    await self._run_command()
                    continue
                if not self.devices:
                    await self._sleep(None)
                    continue
                device = min(self.devices, key=lambda d: d.next_due)
                delay = wake_time(device.next_due, self._tick_s) - self._clock()
                if delay > 0:
                    await self._sleep(delay)
                    continue
                if self._backpressure is not None and self._backpressure.room <= 0:
                    self._backpressure.notify_when_room(self._wake)
                    await self._sleep(None)
                    continue
                await self._poll_and_schedule(device)
                self._lateness.report()
        finally:
            self.link.close()
            for _call, future, _silence in self._commands:
                future.cancel()

    async def execute(self, call: Callable[[], Awaitable[None]], *, min_silence_s: float = 0.0
                      ) -> None:
        """Run a command (a relay write) before the next poll request; wait for its result.

        DeviceError when the command fails or the bus is stopping.
        """
        if self._stopping:
            raise TransportError("the bus is stopping; command not sent", bus=self.name)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commands.append((call, future, min_silence_s))
        self._wake()
        await future

    async def read_now(self, device: PolledDevice) -> list[Reading]:
        """Read ``device`` at once, ahead of its schedule, as a command (a meter index at the
        start of a pedestal session); its health and schedule are untouched.

        DeviceError when a request fails.
        """
        readings: list[Reading] = []

        async def read_all() -> None:
            for index, request in enumerate(device.requests):
                if index:  # the command path kept the silence before the first request only
                    await asyncio.sleep(max(self._line_gap_s, device.min_silence_s))
                data = await self.link.read(request.kind, request.address, request.count,
                                            device.unit)
                try:
                    readings.extend(readings_from_response(request, data, device=device.name,
                                                           ts_ms=now_ms()))
                except CodecError as exc:
                    raise FrameError(f"malformed reply: {exc}", device=device.name,
                                     bus=self.name) from exc

        await self.execute(read_all, min_silence_s=device.min_silence_s)
        return readings

    def still_offline(self, names: Collection[str]) -> None:
        """Devices announced offline before a restart: their next answer announces them back."""
        for device in self.devices:
            if device.name in names:
                device.health.online = False

    async def read_device(self, device: PolledDevice, ts_ms: int | None = None
                          ) -> list[Reading]:
        """Poll ``device`` once and return its readings; DeviceError when it fails.

        Every reading is stamped ``ts_ms`` (when the poll started, by default).
        """
        stamp = now_ms() if ts_ms is None else ts_ms
        readings: list[Reading] = []
        device.health.polls += 1
        for request in list(device.requests):
            readings += await self._read(device, request, stamp)
        return device.check_counters(readings)

    def _slot_ms(self, due: float) -> int:
        """The timestamp of a poll due at ``due`` (bus clock) that starts now."""
        now = self._clock()
        wall = now_ms()
        offset = wall - now * 1000.0
        if abs(offset - self._wall_offset_ms) > _CLOCK_STEP_MS:
            self._wall_offset_ms = offset  # the first poll, or the wall clock was set
        if now - due > _ON_TIME_S:
            return wall
        return round(due * 1000.0 + self._wall_offset_ms)

    async def _poll_and_schedule(self, device: PolledDevice) -> None:
        try:
            readings = await self.read_device(device, self._slot_ms(device.next_due))
        except DeviceError as exc:
            self._on_failure(device, exc)
            return
        except Exception as exc:  # a bug in one device's path must not stop the whole bus
            log.exception("%s on %s: unexpected error while polling", device.name, self.name)
            self._on_failure(device, DeviceError(f"internal error: {exc!r}", device=device.name,
                                                 bus=self.name))
            return
        self._on_success(device)
        self._sink.put_readings(readings)

    async def _read(self, device: PolledDevice, request: ReadRequest, ts_ms: int
                    ) -> list[Reading]:
        await self._keep_silence(device.min_silence_s, commands_first=True)
        device.health.requests += 1
        timed_out = False
        try:
            await self.link.open()
            data = await self.link.read(request.kind, request.address, request.count, device.unit)
        except DeviceException as exc:
            if exc.code == _ILLEGAL_DATA_ADDRESS and request.has_holes:
                self._split(device, request)
            reason = exc.reason
            if exc.code in _PROFILE_MISMATCH_CODES:
                reason += (f" reading {request.kind.value} registers "
                           f"{request.address}..{request.address + request.count - 1}; "
                           f"is {device.profile.id} the right profile for this device?")
            raise DeviceException(reason, code=exc.code, device=device.name,
                                  bus=self.name) from exc
        except DeviceError as exc:
            timed_out = isinstance(exc, DeviceTimeout)
            raise type(exc)(exc.reason, device=device.name, bus=self.name) from exc
        finally:
            self._line_released(timed_out=timed_out)
        try:
            return readings_from_response(request, data, device=device.name, ts_ms=ts_ms)
        except CodecError as exc:
            raise FrameError(f"malformed reply: {exc}", device=device.name, bus=self.name
                             ) from exc

    def _split(self, device: PolledDevice, request: ReadRequest) -> None:
        """Stop reading across holes this device does not define."""
        index = device.requests.index(request)
        device.requests[index : index + 1] = split_at_holes(request, device.profile.limits)
        log.warning("%s refuses reads across undefined registers at %d..%d; reading around them",
                    device.name, request.address, request.address + request.count - 1)

    def _on_success(self, device: PolledDevice) -> None:
        health = device.health
        if health.online is False:
            self._lateness.logs.log(log, logging.INFO, "%s on %s answers again", device.name,
                                    self.name)
            self._sink.put_event(Event("device.online", device.name, now_ms(), {
                "bus": self.name, "unit": device.unit,
                "offline_since_ms": health.last_ok_ms}))
        health.online = True
        health.consecutive_failures = 0
        health.last_ok_ms = now_ms()
        due = device.next_due
        device.next_due = next_slot(due, device.interval_s, self._clock())
        if device.interval_s > 0:
            # Slots strictly between the one just polled and the next were missed.
            late = round((device.next_due - due) / device.interval_s) - 1
            if late > 0:
                health.late += late
                self._lateness.note(device.name, self.name, late, device.interval_s)

    def _on_failure(self, device: PolledDevice, exc: DeviceError) -> None:
        health = device.health
        health.failed_polls += 1
        health.consecutive_failures += 1
        health.last_error = exc.reason
        if isinstance(exc, DeviceTimeout):
            health.timeouts += 1
        elif isinstance(exc, DeviceException):
            health.exceptions[exc.code] += 1
        elif isinstance(exc, FrameError):
            health.frame_errors += 1
        elif isinstance(exc, TransportError):
            health.transport_errors += 1
        policy = self._policy
        if health.consecutive_failures == policy.offline_after and health.online is not False:
            health.online = False
            self._lateness.logs.log(log, logging.WARNING, "%s is offline after %d failed polls: %s",
                                    device.name, health.consecutive_failures, exc)
            self._sink.put_event(Event("device.offline", device.name, now_ms(), {
                "bus": self.name, "unit": device.unit, "reason": str(exc)}))
        else:
            self._lateness.logs.log(log, logging.INFO, "%s", exc)
        device.next_due = self._clock() + backoff_s(
            health.consecutive_failures, device.interval_s, policy)

    async def _run_command(self) -> None:
        call, future, min_silence_s = self._commands.popleft()
        timed_out = False
        try:
            await self._keep_silence(min_silence_s, commands_first=False)
            await self.link.open()
            await call()
        except DeviceError as exc:
            timed_out = isinstance(exc, DeviceTimeout)
            if not future.done():
                future.set_exception(exc)
        except Exception as exc:  # the caller must get an answer, and the bus must go on
            log.exception("command on %s failed unexpectedly", self.name)
            if not future.done():
                future.set_exception(DeviceError(f"command failed: {exc!r}", bus=self.name))
        else:
            if not future.done():
                future.set_result(None)
        finally:
            self._line_released(timed_out=timed_out)
            if not future.done():  # the bus itself was cancelled mid-command
                future.cancel()

    def _line_released(self, *, timed_out: bool) -> None:
        """Note when the line went quiet.

        After a timeout on RTU the reply may still come: RTU frames carry no transaction id,
        so a late reply would be taken for the answer to the next request. Waiting one more
        timeout lets it arrive while nothing is pending, and pymodbus then discards it.
        """
        self._quiet_since = self._clock()
        if timed_out and self.link.settings.is_rtu:
            self._quiet_since += self.link.settings.timeout_s

    async def _keep_silence(self, device_silence_s: float, *, commands_first: bool) -> None:
        """Wait out the line's inter-frame gap and the silence the next device needs.

        A poll waits with ``commands_first``: a command arriving meanwhile runs first.
        """
        while True:
            if commands_first and self._commands and not self._stopping:
                await self._run_command()
                continue
            delay = wake_time(self._quiet_since + max(self._line_gap_s, device_silence_s),
                              self._silence_tick_s) - self._clock()
            if delay <= 0:
                return
            if commands_first and not self._stopping:
                await self._sleep(delay)
            else:
                await asyncio.sleep(delay)

    async def _sleep(self, delay: float | None) -> None:
        """Wait ``delay`` seconds (None: until woken), or less if a command or a stop comes.

        One future and one timer handle: no task per sleep, as ``wait_for`` would create.
        """
        if self._commands or self._stopping:
            return
        loop = self._loop or asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if delay is None else loop.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
