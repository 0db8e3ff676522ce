"""The record buffer between producers and the outbox writer.

Buses, LoRa sources, TIC lines and the rules put records here without ever waiting for the
disk; the gateway's writer takes them out in batches, one transaction each. A bus that can
wait asks for room first (edge_agent/overload.py): past a high-water mark it stretches its
schedule instead of filling memory, so readings are dropped here only when producers that
cannot wait (uplinks, frames) find the buffer full while the outbox is not writable.
Observers (access, rules, car parks) see each reading on its way in, before it is written, so
a reflex never waits for an fsync. A source whose messages must be acknowledged once durable
(an MQTT broker) queues a callback that runs after the transaction that holds them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge_agent.overload import RateLimit
from edge_agent.records import Event, Reading, now_ms

__all__ = ["RecordBuffer"]

log = logging.getLogger("edge_agent.buffer")

#: Events of these kinds go to the alarms stream, ahead of every other record: alarms, and
#: access decisions (staff and the hub see who went through a gate at once).
_URGENT_PREFIXES = ("alarm.", "access.")
#: Readings the writer takes in one transaction: room frees as each batch is on disk.
WRITE_BATCH = 10_000
#: Shortest time between two drop reports (log line and ``gap`` event).
_DROP_REPORT_PERIOD_S = 1.0


class RecordBuffer:
    """Records waiting for the writer; filling it never blocks a producer.

    Records leave the buffer only once the outbox has them, so a failed write loses nothing.
    Producers that can wait (the buses) see :attr:`room` and wait for it past four fifths of
    ``max_readings``; the last fifth absorbs the polls in flight. Readings beyond
    ``max_readings`` are dropped oldest first (never those a transaction is writing), and a
    ``gap`` event says what was dropped (one a second at most, coalesced); events are always
    kept. ``alarm.*`` and ``access.*`` events
    wait in their own list, for the alarms stream. ``observers`` see every reading on its
    way, before the outbox has it (pedestal sessions follow their meters, rules act on
    thresholds without waiting for disk).
    """

    def __init__(self, max_readings: int = 100_000) -> None:
        self.observers: list[Callable[[list[Reading]], None]] = []
        #: See every event on its way in (device announcements kept across restarts).
        self.event_observers: list[Callable[[Event], None]] = []
        self.readings: list[Reading] = []
        self.events: list[Event] = []
        self.alarms: list[Event] = []
        #: Something is waiting to be written.
        self.ready = asyncio.Event()
        #: An event or a whole batch is waiting: write now rather than gather more first.
        self.urgent = asyncio.Event()
        self._max_readings = max_readings
        self._high_water = max_readings - max_readings // 5
        self._room_waiters: list[Callable[[], None]] = []
        self._drop_reports = RateLimit(_DROP_REPORT_PERIOD_S)
        #: Dropped readings not yet told in a ``gap`` event: count, first and last ts_ms.
        self._dropped: tuple[int, int, int] | None = None
        #: Readings dropped since the start (the outbox not writable for long).
        self.dropped_total = 0
        #: Keys of source messages whose records are queued (see Outbox.append_many).
        self.deliveries: list[str] = []
        #: Called once the records queued before them are on disk (a broker ack).
        self.on_durable: list[Callable[[], object]] = []
        #: Per callback: readings queued before it (counted since the start), and its keys.
        self._delivery_marks: list[tuple[int, int]] = []
        #: Readings ever queued, and ever written or dropped: where a batch ends.
        self._queued_total = 0
        self._removed_total = 0
        #: The first readings, taken by the transaction in progress: never dropped, since
        #: ``written_readings`` removes them by position once they are on disk.
        self._writing = 0

    def put_readings(self, readings: list[Reading]) -> None:
        """Queue the readings of one poll."""
        for observer in self.observers:
            observer(readings)
        self.readings.extend(readings)
        self._queued_total += len(readings)
        excess = len(self.readings) - self._max_readings
        if excess > 0:
            self._drop(excess)
        if len(self.readings) >= WRITE_BATCH:
            self.urgent.set()  # a whole batch waits: no reason to gather longer
        self.ready.set()

    @property
    def room(self) -> int:
        """Readings that may still be queued before the buses should wait."""
        return self._high_water - len(self.readings)

    def notify_when_room(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` once there is room again (at once when there is)."""
        if self.room > 0:
            wake()
        else:
            self._room_waiters.append(wake)

    def _drop(self, excess: int) -> None:
        """Drop the oldest readings that no transaction is writing."""
        start = self._writing
        dropped = self.readings[start:start + excess]
        del self.readings[start:start + excess]
        self._removed_total += excess
        self.dropped_total += excess
        count, first, _last = self._dropped or (0, dropped[0].ts_ms, 0)
        self._dropped = (count + excess, first, dropped[-1].ts_ms)
        if self._drop_reports.allow():
            self._report_drops()

    def _report_drops(self) -> None:
        if self._dropped is None:
            return
        count, first, last = self._dropped
        self._dropped = None
        self.put_event(Event("gap", "", now_ms(), {
            "reason": "outbox not writable, memory buffer full", "stream": "readings",
            "count": count, "from_ts_ms": first, "to_ts_ms": last}))
        log.error("outbox not writable: dropped the %d oldest readings held in memory", count)

    def put_event(self, event: Event) -> None:
        """Queue one event (for the alarms stream when its kind is urgent)."""
        for observer in self.event_observers:
            observer(event)
        (self.alarms if event.kind.startswith(_URGENT_PREFIXES) else self.events).append(event)
        self.ready.set()
        self.urgent.set()

    def put_delivered(self, keys: list[str], on_durable: Callable[[], object]) -> None:
        """A source message is queued whole: ``on_durable`` once its records are on disk.

        The message's records were queued before this call. Writing starts at once, since
        the source holds the message unacknowledged until then.
        """
        self.deliveries.extend(keys)
        self.on_durable.append(on_durable)
        self._delivery_marks.append((self._queued_total, len(keys)))
        self.ready.set()
        self.urgent.set()

    def written_deliveries(self, keys: int, callbacks: int) -> None:
        """The outbox has the first ``keys`` delivery keys: run the first ``callbacks``."""
        del self.deliveries[:keys]
        done = self.on_durable[:callbacks]
        del self.on_durable[:callbacks]
        del self._delivery_marks[:callbacks]
        self._settle()
        for callback in done:
            callback()

    def written_readings(self, count: int) -> None:
        """The outbox has the first ``count`` readings: forget them."""
        del self.readings[:count]
        self._writing = 0
        self._removed_total += count
        if self._room_waiters and self.room > 0:
            for wake in self._room_waiters:
                wake()
            self._room_waiters.clear()
        if self._dropped is not None and (not self.readings or self._drop_reports.allow()):
            self._report_drops()
        self._settle()

    def written_events(self, count: int) -> None:
        """The outbox has the first ``count`` events: forget them."""
        del self.events[:count]
        self._settle()

    def written_alarms(self, count: int) -> None:
        """The outbox has the first ``count`` alarms: forget them."""
        del self.alarms[:count]
        self._settle()

    def __len__(self) -> int:
        return len(self.readings) + len(self.events) + len(self.alarms)

    def batch(self) -> tuple[list[Reading], list[str], int]:
        """What the next transaction takes: readings (one batch at most), delivery keys and
        durable callbacks. Keys and callbacks go with the last of the readings queued before
        them, so a broker is never acknowledged before its records are on disk."""
        readings = self.readings[:WRITE_BATCH]
        self._writing = len(readings)
        written_by_then = self._removed_total + len(readings)
        keys = callbacks = 0
        for mark, count in self._delivery_marks:
            if mark > written_by_then:
                break
            keys += count
            callbacks += 1
        return readings, self.deliveries[:keys], callbacks

    def _settle(self) -> None:
        if (not self.events and not self.alarms and not self.on_durable
                and len(self.readings) < WRITE_BATCH):
            self.urgent.clear()
        if not self and not self.on_durable:
            self.ready.clear()
