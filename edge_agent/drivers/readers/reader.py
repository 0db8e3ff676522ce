"""A badge reader: its port read from the event loop, duplicate cards folded, a lost port reopened.

The port's descriptor is watched with ``loop.add_reader``: a frame is decoded and handed to
the callback in the same callback that read its last byte, with no thread or polling delay
in between (the access benchmark counts every millisecond from frame to relay).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.codecs.badge_frames import CardRead, DecoderStats, Frame, FrameDecoder
from edge_agent.errors import TransportError
from edge_agent.profiles.readers import ReaderProfile
from edge_agent.records import now_ms

__all__ = ["BadgePresented", "BadgeReader", "Port", "ReaderHealth", "ReaderSettings"]

log = logging.getLogger("edge_agent.readers")

#: Reopening a lost port: first wait, and the longest (a replugged USB adapter is back fast).
_BACKOFF_FIRST_S = 0.2
_BACKOFF_MAX_S = 5.0


@dataclass(frozen=True, slots=True)
class BadgePresented:
    """A card presented to a reader: one per presentation, however long the card is held."""

    #: The configured reader name.
    reader: str
    #: The card's identifier: its raw bytes as the card gives them.
    raw: bytes
    #: ``em4100`` or ``iso14443a``.
    technology: str
    #: Wall clock, UTC milliseconds.
    ts_ms: int
    #: ``time.monotonic_ns()`` when the frame's last byte was read, to measure latency.
    received_ns: int


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    """One configured reader."""

    name: str
    profile: ReaderProfile
    #: Serial path or pyserial URL, or ``/dev/input/eventN`` for a keyboard wedge.
    port: str
    #: The same card on this reader again within it is suppressed (and the window restarts).
    duplicate_window_s: float = 1.5


@dataclass(slots=True)
class ReaderHealth:
    """Counters of one reader since it was opened, for status and the installer's checks."""

    #: Frames that passed their checks (cards, and a PN532's acknowledgements and answers).
    frames: int = 0
    #: Presentations handed over.
    badges: int = 0
    #: Cards read again within the duplicate window, not handed over.
    duplicates: int = 0
    #: Times the port could not be opened or was lost.
    port_errors: int = 0
    #: PN532 commands left without a usable answer in time.
    timeouts: int = 0
    online: bool = False
    last_error: str = ""
    #: What the decoder dropped; shown as garbage_bytes, bad_checksums, partial_frames.
    drops: DecoderStats = field(default_factory=DecoderStats)

    @property
    def garbage_bytes(self) -> int:
        """Bytes that could not belong to a frame."""
        return self.drops.garbage_bytes

    @property
    def bad_checksums(self) -> int:
        """Frames with a wrong checksum (or a garbled answer)."""
        return self.drops.bad_checksums

    @property
    def partial_frames(self) -> int:
        """Frames cut short."""
        return self.drops.partial_frames

    def as_dict(self) -> dict[str, Any]:
        """Every counter by name, for status.json."""
        return {
            "online": self.online, "frames": self.frames, "badges": self.badges,
            "duplicates": self.duplicates, "garbage_bytes": self.garbage_bytes,
            "bad_checksums": self.bad_checksums, "partial_frames": self.partial_frames,
            "timeouts": self.timeouts, "port_errors": self.port_errors,
            "last_error": self.last_error,
        }


class Port(Protocol):
    """An open reader port: a descriptor to watch, and reads that never block."""

    def fileno(self) -> int:
        """The descriptor the event loop watches."""
        ...

    def read_available(self) -> bytes:
        """What has arrived (may be empty); TransportError when the port is gone."""
        ...

    def write(self, data: bytes) -> None:
        """Send ``data``; TransportError when the port is gone."""
        ...

    def close(self) -> None:
        """Close the port; safe to call twice."""
        ...


class BadgeReader(abc.ABC):
    """Reads one reader until stopped; subclasses open its port and may talk to it."""

    #: Silence after which an unfinished frame is dropped (and counted).
    idle_s = 0.1

    def __init__(self, settings: ReaderSettings, decoder: FrameDecoder) -> None:
        self.settings = settings
        self.health = ReaderHealth()
        self.decoder = decoder
        decoder.stats = self.health.drops
        self._on_badge: Callable[[BadgePresented], None] | None = None
        self._end: asyncio.Future[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._stopping = False
        self._last: tuple[bytes, int] | None = None
        self._warned = False
        #: Failed opens since the port was last open, for the backoff.
        self._attempt = 0

    @property
    def name(self) -> str:
        """The configured reader name."""
        return self.settings.name

    @abc.abstractmethod
    def open_port(self) -> Port:
        """Open the port; TransportError saying what to check when it cannot be opened."""

    def check(self) -> None:
        """Open the port once and close it, for commands that must fail at once, not retry."""
        self.open_port().close()

    def _conversation(self, port: Port) -> Coroutine[Any, Any, None] | None:
        """What to say to the reader while the port is open; most readers only talk."""
        return None

    def _on_frame(self, frame: Frame, received_ns: int) -> None:
        """A decoded frame; cards are presented, a subclass may take its other frames."""
        if isinstance(frame, CardRead):
            self._card(frame, received_ns)

    async def run(self, on_badge: Callable[[BadgePresented], None]) -> None:
        """Hand every presentation to ``on_badge`` until :meth:`stop` or cancellation.

        A port that cannot be opened or is lost is reopened with backoff; bad frames are
        only counted. ``on_badge`` runs in the event loop and must not block.
        """
        self._on_badge = on_badge
        try:
            while not self._stopping:
                try:
                    await self._session()
                except TransportError as exc:
                    self._port_failed(str(exc))
                except Exception as exc:  # a bug must not stop the reader for good
                    log.exception("reader %s failed unexpectedly", self.name)
                    self._port_failed(f"{type(exc).__name__}: {exc}")
                else:
                    return
                delay = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** self._attempt)
                self._attempt += 1
                await self._sleep(delay * random.uniform(0.5, 1.0))
        finally:
            self.health.online = False

    def stop(self) -> None:
        """Make :meth:`run` return once the port is closed."""
        self._stopping = True
        if self._end is not None:
            _resolve(self._end)

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less if stopped meanwhile."""
        loop = asyncio.get_running_loop()
        self._end = end = loop.create_future()
        handle = loop.call_later(delay, _resolve, end)
        try:
            await end
        finally:
            handle.cancel()
            self._end = None

    def _port_failed(self, message: str) -> None:
        self.health.port_errors += 1
        self.health.last_error = message
        if self.health.online or not self._warned:
            log.warning("reader %s: %s; retrying until it is back", self.name, message)
        else:
            log.debug("reader %s: still unavailable: %s", self.name, message)
        self._warned = True
        self.health.online = False

    async def _session(self) -> None:
        """Open the port, read it until stopped (returns) or lost (TransportError), close it."""
        if self._stopping:
            return
        port = self.open_port()
        loop = asyncio.get_running_loop()
        fd = port.fileno()
        self._end = end = loop.create_future()
        task: asyncio.Task[None] | None = None
        try:
            loop.add_reader(fd, self._readable, port, fd)
            if self._warned:
                log.info("reader %s: back online", self.name)
            self._warned = False
            self._attempt = 0
            self.health.online = True
            conversation = self._conversation(port)
            if conversation is not None:
                task = loop.create_task(conversation, name=f"reader[{self.name}].conversation")
                task.add_done_callback(self._conversation_ended)
            await end
        finally:
            loop.remove_reader(fd)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            port.close()
            self._end = None
            if self._idle is not None:
                self._idle.cancel()
            self.decoder.discard()

    def _conversation_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._end is None or self._end.done():
            return
        exc = task.exception()
        if exc is not None:
            self._end.set_exception(exc)

    def _readable(self, port: Port, fd: int) -> None:
        try:
            data = port.read_available()
        except TransportError as exc:
            asyncio.get_running_loop().remove_reader(fd)  # a hung-up port stays readable
            if self._end is not None and not self._end.done():
                self._end.set_exception(exc)
            return
        if not data:
            return
        received_ns = time.monotonic_ns()
        for frame in self.decoder.feed(data):
            self.health.frames += 1
            self._on_frame(frame, received_ns)
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.idle_s, self.decoder.discard)

    def _card(self, card: CardRead, received_ns: int) -> None:
        """Present a card unless it is the same card again within the duplicate window."""
        last, self._last = self._last, (card.raw, received_ns)
        window_ns = self.settings.duplicate_window_s * 1e9
        if last is not None and last[0] == card.raw and received_ns - last[1] < window_ns:
            self.health.duplicates += 1
            return
        self.health.badges += 1
        presented = BadgePresented(self.name, card.raw, card.technology.value, now_ms(),
                                   received_ns)
        if self._on_badge is None:
            return
        try:
            self._on_badge(presented)
        except Exception:  # the consumer's bug: the reader keeps reading
            log.exception("reader %s: the badge callback failed", self.name)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
