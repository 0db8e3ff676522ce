"""A Linky TIC line: the port read from the event loop, frames sampled into records.

The meter only talks, so the line needs no thread and no polling: the port's descriptor is
watched with ``loop.add_reader`` and every chunk goes through the decoder as it arrives.

``mode = "auto"`` starts at 1200 baud (a Linky leaves the factory in historic mode) and,
when no group passes its checksum within ``detect_s``, closes the port and tries 9600, and
so on until groups decode; at a wrong speed a UART only yields garbage, which the checksums
refuse. The same rule applies later: a line that falls silent for ``detect_s`` in auto mode
is retried at the other speed. A lost port is reopened with jittered exponential backoff.

Events: ``tic.meter`` with the meter's identity (ADCO/ADSC, PRM, contract) at the first
frame and whenever it changes, ``tic.tariff`` when the tariff period changes,
``tic.overpower`` at the first frame of an overpower episode and ``tic.overpower_cleared``
after a few frames without.
"""

from __future__ import annotations

import asyncio
import logging
import random
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.codecs.tic import ModeSetting, TicDecoder, TicFrame, TicMode, TicStats
from edge_agent.drivers.serial_port import SerialPort
from edge_agent.drivers.tic.mapping import MappedFrame, map_frame
from edge_agent.drivers.tic.sampling import Sampler, SamplingPolicy
from edge_agent.errors import TransportError
from edge_agent.records import Event, Reading, RecordSink, now_ms

__all__ = ["ModeSetting", "TicHealth", "TicLine", "TicSettings"]

log = logging.getLogger("edge_agent.tic")

_BACKOFF_FIRST_S = 0.2
_BACKOFF_MAX_S = 30.0
#: Frames in a row without overpower before it is cleared: a three-phase meter in historic
#: mode names the phase (ADIRn) in short frames, with a long frame without it every 21.
_CLEAR_AFTER_FRAMES = 3
#: Dropped bytes, groups and frames are logged at most this often, as one line of counts.
_DROPS_LOG_S = 60.0
#: Auto mode tries historic first: the factory setting of every Linky.
_AUTO_SPEEDS = (TicMode.HISTORIC.baudrate, TicMode.STANDARD.baudrate)


@dataclass(frozen=True, slots=True)
class TicSettings:
    """One configured TIC line."""

    #: The device name of its readings and events.
    name: str
    #: Serial path of the TIC adapter, e.g. /dev/ttyAMA0 or /dev/serial/by-id/...
    port: str
    mode: ModeSetting = "auto"
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    #: Auto mode: wait this long for a valid group at one speed before trying the other.
    detect_s: float = 5.0


@dataclass(slots=True)
class TicHealth:
    """Counters of one line since the agent started, for status and installers."""

    online: bool = False
    #: The speed the port is open at (or was last).
    baudrate: int | None = None
    #: The mode of the last frame decoded.
    mode: str | None = None
    last_frame_ms: int | None = None
    readings: int = 0
    events: int = 0
    #: Mapped labels whose data was not a number (the frame passed, the value did not).
    unreadable_values: int = 0
    port_errors: int = 0
    #: Auto mode: times the line was retried at the other speed.
    speed_switches: int = 0
    last_error: str = ""
    decoder: TicStats = field(default_factory=TicStats)


class TicLine:
    """Reads one Linky until cancelled, handing readings and events to ``sink``.

    ``on_frame`` sees every decoded frame before sampling (``edge-agent tic listen``).
    """

    def __init__(self, settings: TicSettings, sink: RecordSink, *,
                 on_frame: Callable[[TicFrame], None] | None = None) -> None:
        self.settings = settings
        self.sink = sink
        self.decoder = TicDecoder()
        self.health = TicHealth(decoder=self.decoder.stats)
        self._on_frame = on_frame
        self._sampler = Sampler(settings.sampling)
        self._speeds = (_AUTO_SPEEDS if settings.mode == "auto"
                        else (TicMode(settings.mode).baudrate,))
        self._speed = 0
        self._identity: dict[str, str] = {}
        self._tariff: str | None = None
        self._overpower = False
        #: Frames in a row that said no overpower while one was on.
        self._calm = 0
        self._attempt = 0
        self._warned = False
        self._switch_logged = False
        #: Drop counters at the last drops log line, and when it was written.
        self._drops_logged: tuple[int, ...] = (0, 0, 0, 0, 0)
        self._drops_logged_at = -_DROPS_LOG_S

    @property
    def name(self) -> str:
        """The configured device name."""
        return self.settings.name

    def check(self) -> None:
        """Open the port once and close it, for commands that must fail at once."""
        self._open(self._speeds[0]).close()

    async def run(self) -> None:
        """Read, decode and sample until cancelled; port failures are retried, never raised."""
        try:
            while True:
                try:
                    await self._session()
                except TransportError as exc:
                    self._port_failed(str(exc))
                except Exception as exc:  # a bug must not stop the line for good
                    log.exception("tic %s failed unexpectedly", self.name)
                    self._port_failed(f"{type(exc).__name__}: {exc}")
                else:
                    continue  # auto mode moved to the other speed: reopen at once
                delay = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** self._attempt)
                self._attempt += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        finally:
            self.health.online = False

    def report(self) -> dict[str, Any]:
        """The line's state and counters, for status.json."""
        health = self.health
        return {
            "name": self.name, "port": self.settings.port, "mode_setting": self.settings.mode,
            "mode": health.mode, "baudrate": health.baudrate, "online": health.online,
            "last_frame_ms": health.last_frame_ms, "readings": health.readings,
            "events": health.events, "overpower": self._overpower,
            "unreadable_values": health.unreadable_values, "port_errors": health.port_errors,
            "speed_switches": health.speed_switches, "last_error": health.last_error,
            **health.decoder.as_dict(),
        }

    def _open(self, baudrate: int) -> SerialPort:
        """The port at ``baudrate``, 7E1; 8N1 where the port refuses 7 bits.

        A pseudo-terminal (the simulator, a socat bridge) refuses 7E1 when its speed is
        unchanged. 8N1 frames the same 10 bits, the parity landing in bit 7, which the
        decoder masks.
        """
        try:
            return SerialPort(self.name, self.settings.port, baudrate=baudrate, parity="E",
                              bytesize=7, what="TIC adapter")
        except TransportError as exc:
            if not isinstance(exc.__cause__, termios.error):
                raise
        return SerialPort(self.name, self.settings.port, baudrate=baudrate,
                          what="TIC adapter")

    async def _session(self) -> None:
        """Read at the current speed until the port is lost (TransportError) or, in auto
        mode, ``detect_s`` passes without a valid group (returns at the other speed)."""
        baudrate = self._speeds[self._speed]
        port = self._open(baudrate)
        loop = asyncio.get_running_loop()
        fd = port.fileno()
        lost: asyncio.Future[None] = loop.create_future()
        try:
            loop.add_reader(fd, self._readable, port, fd, lost)
            if self._warned:
                log.info("tic %s: back online", self.name)
            self._warned = False
            self._attempt = 0
            self.health.online = True
            self.health.baudrate = baudrate
            auto = len(self._speeds) > 1
            while True:  # a fixed mode waits for the port's loss only
                groups = self.decoder.stats.groups
                await asyncio.wait([lost], timeout=self.settings.detect_s if auto else None)
                if lost.done():
                    lost.result()  # raises the TransportError that ended the session
                if self.decoder.stats.groups == groups:
                    self._next_speed(baudrate)
                    return
        finally:
            loop.remove_reader(fd)
            port.close()
            self.decoder.discard()

    def _next_speed(self, baudrate: int) -> None:
        self._speed = (self._speed + 1) % len(self._speeds)
        self.health.speed_switches += 1
        level = logging.DEBUG if self._switch_logged else logging.INFO
        log.log(level, "tic %s: no valid group at %d baud within %.0f s; trying %d baud "
                "(auto mode alternates until frames decode)", self.name, baudrate,
                self.settings.detect_s, self._speeds[self._speed])
        self._switch_logged = True

    def _port_failed(self, message: str) -> None:
        self.health.port_errors += 1
        self.health.last_error = message
        if self.health.online or not self._warned:
            log.warning("tic %s; retrying until it is back", message)
        self._warned = True
        self.health.online = False

    def _readable(self, port: SerialPort, fd: int, lost: asyncio.Future[None]) -> None:
        try:
            data = port.read_available()
        except TransportError as exc:
            asyncio.get_running_loop().remove_reader(fd)  # a hung-up port stays readable
            if not lost.done():
                lost.set_exception(exc)
            return
        for frame in self.decoder.feed(data):
            try:
                self._take(frame)
            except Exception:  # a bug in a consumer: the line keeps reading
                log.exception("tic %s: a frame could not be handled", self.name)
        self._log_drops()

    def _drops(self) -> tuple[int, ...]:
        stats = self.decoder.stats
        return (stats.garbage_bytes, stats.bad_checksums, stats.malformed_groups,
                stats.interrupted_frames, stats.rejected_frames)

    def _log_drops(self) -> None:
        """One warning a minute at most, with what was dropped since the last one."""
        now = time.monotonic()
        if self.health.mode is None or now - self._drops_logged_at < _DROPS_LOG_S:
            return  # before the first frame, the speed switches say what is wrong
        drops = self._drops()
        if drops == self._drops_logged:
            return
        new = [now_count - then for now_count, then in zip(drops, self._drops_logged,
                                                           strict=True)]
        self._drops_logged, self._drops_logged_at = drops, now
        log.warning("tic %s at %s baud dropped %d garbage bytes, %d groups with a bad checksum, "
                    "%d malformed groups, %d interrupted and %d rejected frames (a noisy line, "
                    "or the wrong speed when it does not stop)", self.name,
                    self.health.baudrate, *new)

    def _take(self, frame: TicFrame) -> None:
        ts = now_ms()
        if self.health.mode != frame.mode:
            log.info("tic %s: %s mode at %s baud", self.name, frame.mode, self.health.baudrate)
            self._drops_logged = self._drops()  # the frame cut by the opening is no news
        self.health.mode = frame.mode
        self.health.last_frame_ms = ts
        if self._on_frame is not None:
            self._on_frame(frame)
        mapped = map_frame(frame)
        self.health.unreadable_values += len(mapped.unreadable)
        self._events(mapped, ts)
        chosen = self._sampler.select(mapped.values, time.monotonic())
        if chosen:
            self.health.readings += len(chosen)
            self.sink.put_readings([Reading(self.name, quantity, ts, value, quality)
                                    for quantity, value, quality in chosen])

    def _events(self, mapped: MappedFrame, ts: int) -> None:
        """Identity, tariff and overpower changes as events."""
        if "serial" in mapped.identity and mapped.identity != self._identity:
            self._identity = mapped.identity
            self._event("tic.meter", ts, {"mode": str(mapped.mode), **mapped.identity,
                                          "tariff": mapped.tariff})
        if mapped.tariff is not None:
            if self._tariff is not None and mapped.tariff != self._tariff:
                self._event("tic.tariff", ts, {
                    "label": mapped.tariff, "previous": self._tariff,
                    "period": mapped.values.get("tariff_period")})
            self._tariff = mapped.tariff
        self._overpower_event(mapped, ts)

    def _overpower_event(self, mapped: MappedFrame, ts: int) -> None:
        """Raise at the first frame in overpower, clear after a few frames without."""
        if mapped.overpower is None:
            return
        if mapped.overpower == self._overpower:
            self._calm = 0
            return
        if not mapped.overpower:
            self._calm += 1
            if self._calm < _CLEAR_AFTER_FRAMES:
                return
        self._calm = 0
        self._overpower = mapped.overpower
        power: dict[str, Any] = {key: mapped.values[key] for key in (
            "apparent_power", "subscribed_power") if key in mapped.values}
        self._event("tic.overpower" if mapped.overpower else "tic.overpower_cleared", ts,
                    {**mapped.overpower_detail, **power})

    def _event(self, kind: str, ts: int, attrs: dict[str, Any]) -> None:
        self.health.events += 1
        self.sink.put_event(Event(kind, self.name, ts, attrs))
