"""The record buffer between producers and the outbox writer.

Buses, LoRa sources, TIC lines and the rules put records here without ever waiting for the
disk; the gateway's writer takes them out in one transaction per flush. Observers (access,
rules, car parks) see each reading on its way in, before it is written, so a reflex never
waits for an fsync. A source whose messages must be acknowledged once durable (an MQTT
broker) queues a callback that runs after the transaction that holds them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge_agent.records import Event, Reading, now_ms

__all__ = ["RecordBuffer"]

log = logging.getLogger("edge_agent.buffer")

#: Events of these kinds go to the alarms stream, ahead of every other record: alarms, and
#: access decisions (staff and the hub see who went through a gate at once).
_URGENT_PREFIXES = ("alarm.", "access.")


class RecordBuffer:
    """Records waiting for the writer; filling it never blocks a bus.

    Records leave the buffer only once the outbox has them, so a failed write loses nothing.
    While the outbox cannot be written (disk full, I/O error), readings beyond
    ``max_readings`` are dropped oldest first and a ``gap`` event says what was dropped;
    events are always kept. ``alarm.*`` and ``access.*`` events wait in their own list, for
    the alarms stream. ``observers`` see every reading on its way, before the outbox has it
    (pedestal sessions follow their meters, rules act on thresholds without waiting for disk).
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
        #: An event is waiting: write now rather than gather more readings first.
        self.urgent = asyncio.Event()
        self._max_readings = max_readings
        #: Keys of source messages whose records are queued (see Outbox.append_many).
        self.deliveries: list[str] = []
        #: Called once the records queued before them are on disk (a broker ack).
        self.on_durable: list[Callable[[], object]] = []

    def put_readings(self, readings: list[Reading]) -> None:
        """Queue the readings of one poll."""
        for observer in self.observers:
            observer(readings)
        self.readings.extend(readings)
        excess = len(self.readings) - self._max_readings
        if excess > 0:
            dropped = self.readings[:excess]
            del self.readings[:excess]
            self.put_event(Event("gap", "", now_ms(), {
                "reason": "outbox not writable, memory buffer full", "stream": "readings",
                "count": excess, "from_ts_ms": dropped[0].ts_ms,
                "to_ts_ms": dropped[-1].ts_ms}))
            log.error("outbox not writable: dropped the %d oldest readings held in memory",
                      excess)
        self.ready.set()

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
        self.ready.set()
        self.urgent.set()

    def written_deliveries(self, keys: int, callbacks: int) -> None:
        """The outbox has the first ``keys`` delivery keys: run the first ``callbacks``."""
        del self.deliveries[:keys]
        done = self.on_durable[:callbacks]
        del self.on_durable[:callbacks]
        self._settle()
        for callback in done:
            callback()

    def written_readings(self, count: int) -> None:
        """The outbox has the first ``count`` readings: forget them."""
        del self.readings[:count]
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

    def _settle(self) -> None:
        if not self.events and not self.alarms and not self.on_durable:
            self.urgent.clear()
        if not self and not self.on_durable:
            self.ready.clear()
