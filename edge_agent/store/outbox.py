"""The durable outbox: every record the gateway produced, until the hub acknowledges it.

One SQLite file in WAL mode with ``synchronous=FULL``. Each append is one transaction, so a
record whose append returned survives a kill -9 or a power cut. Records get a per-stream
sequence number, strictly increasing from 1 and never reused, which the hub uses to
deduplicate. ``next_batch`` serves the most urgent stream first; ``ack`` deletes what the hub
confirmed. Under a disk quota the oldest records of evictable streams give way and a ``gap``
event says exactly what was dropped (see ``edge_agent.store.quota``).

The class is synchronous and guards its one connection with a lock: the async runtime calls
it through ``asyncio.to_thread``. One process writes a given file.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import repeat
from pathlib import Path
from types import TracebackType
from typing import Self, cast

from edge_agent.errors import StoreError
from edge_agent.records import Event, Quality, Reading
from edge_agent.store.connection import connect, quick_check, sqlite_errors, transaction
from edge_agent.store.migrations import migrate
from edge_agent.store.models import (
    DEFAULT_STREAMS,
    Batch,
    RecordType,
    SeqRange,
    StreamSpec,
    StreamStats,
)
from edge_agent.store.quota import QuotaOutcome, enforce_quota, release_pages
from edge_agent.store.streams import check_specs, checkpoint_pages, gap_stream_for, load_streams
from edge_agent.store.tables import (
    KEPT_DELIVERIES,
    StreamState,
    insert_events,
    record_deliveries,
    save_state,
    stream_stats,
)

__all__ = ["Outbox"]

logger = logging.getLogger("edge_agent.store")

_QUALITIES = {int(quality): quality for quality in Quality}

_INSERT_READINGS = (
    "INSERT INTO readings (stream_id, seq, series_id, ts_ms, value, quality)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_READINGS = (
    "SELECT seq, series_id, ts_ms, value, quality FROM readings"
    " WHERE stream_id = ? AND seq >= ? ORDER BY seq LIMIT ?"
)
_SELECT_EVENTS = (
    "SELECT seq, kind, device, ts_ms, attrs FROM events"
    " WHERE stream_id = ? AND seq >= ? ORDER BY seq LIMIT ?"
)

#: Writes the rows of one append: ``(connection, stream id, first seq)``.
_RowWriter = Callable[[sqlite3.Connection, int, int], None]


def _event_writer(events: Sequence[Event]) -> _RowWriter:
    def write(conn: sqlite3.Connection, stream_id: int, first: int) -> None:
        insert_events(conn, stream_id, first, events)

    return write


class Outbox:
    """Durable, prioritised, quota-bounded store of records waiting for the hub.

    Build it with ``Outbox.open``; use it as a context manager or call ``close``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        states: dict[str, StreamState],
        series: dict[tuple[str, str], int],
        *,
        quota_bytes: int | None,
        gap_stream: str | None,
    ) -> None:
        """Wrap an opened, migrated connection; ``Outbox.open`` is the way to get one."""
        self.path = path
        self.quota_bytes = quota_bytes
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self._states = states
        self._order = sorted(states, key=lambda name: (states[name].spec.priority, name))
        self._series = series
        self._series_names = {sid: key for key, sid in series.items()}
        self._gap_stream = gap_stream
        self._quota_warned = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        quota_bytes: int | None = None,
        streams: Sequence[StreamSpec] = DEFAULT_STREAMS,
    ) -> Outbox:
        """Open (creating or upgrading) the outbox at ``path``.

        Runs SQLite's quick integrity check first: StoreCorrupt says which file and what to
        do. ``quota_bytes`` bounds the records' size on disk (see ``edge_agent.store.quota``).
        """
        path = Path(path)
        specs = check_specs(streams)
        gap_stream = gap_stream_for(specs)
        if quota_bytes is not None:
            if quota_bytes <= 0:
                raise ValueError(f"quota_bytes must be positive, got {quota_bytes}")
            if gap_stream is None:
                raise ValueError("a quota needs a non-evictable event stream for gap events")
        conn = connect(path, wal_autocheckpoint=checkpoint_pages(quota_bytes))
        try:
            quick_check(conn, path)
            migrate(conn, path)
            states = load_streams(conn, path, specs)
            with sqlite_errors(path, "load series"):
                series = {
                    (str(device), str(quantity)): int(sid)
                    for sid, device, quantity in conn.execute(
                        "SELECT id, device, quantity FROM series"
                    )
                }
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, states, series, quota_bytes=quota_bytes, gap_stream=gap_stream)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; SQLite checkpoints the WAL into it. Closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with sqlite_errors(self.path, "close"):
                    conn.close()

    def append_readings(self, readings: Sequence[Reading], *, stream: str = "readings") -> SeqRange:
        """Store ``readings`` in one transaction; on return they are on disk.

        An empty sequence writes nothing and returns an empty range (``first == last + 1``).
        """
        self._state(stream, "reading")
        return self.append_many([(stream, readings)])[0]

    def append_events(self, events: Sequence[Event], *, stream: str = "events") -> SeqRange:
        """Store ``events`` in one transaction; on return they are on disk.

        Attributes must be plain JSON values (no NaN): StoreError otherwise, nothing written.
        """
        self._state(stream, "event")
        return self.append_many([(stream, events)])[0]

    def append_many(
        self,
        parts: Sequence[tuple[str, Sequence[Reading] | Sequence[Event]]],
        *,
        deliveries: Sequence[str] = (),
    ) -> list[SeqRange]:
        """Store records of several streams, and delivery keys, in one transaction.

        ``deliveries`` name the source messages these records came from (an MQTT uplink's
        id): committed with the records, they let a source recognise a message the broker
        delivers again after a crash (see :meth:`recent_deliveries`). One range per part.
        """
        new_series: dict[tuple[str, str], int] = {}
        writes: list[tuple[str, int, _RowWriter]] = []
        for stream, records in parts:
            state = self._state(stream)
            if state.spec.record_type == "reading":
                writes.append((stream, len(records), self._reading_writer(
                    cast(Sequence[Reading], records), new_series)))
            else:
                writes.append((stream, len(records), _event_writer(cast(Sequence[Event], records))))
        return self._append(writes, new_series, deliveries)

    def recent_deliveries(self, limit: int = KEPT_DELIVERIES) -> list[str]:
        """The keys of the last ``limit`` source messages stored, oldest first."""
        with self._lock:
            conn = self._connection()
            with sqlite_errors(self.path, "read deliveries"):
                rows = conn.execute(
                    "SELECT key FROM deliveries ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
        return [str(key) for (key,) in reversed(rows)]

    def _reading_writer(
        self, readings: Sequence[Reading], new_series: dict[tuple[str, str], int]
    ) -> _RowWriter:
        def write(conn: sqlite3.Connection, stream_id: int, first: int) -> None:
            series = self._series
            try:
                ids = [series[(r.device, r.quantity)] for r in readings]
            except KeyError:
                ids = [self._series_id(conn, r.device, r.quantity, new_series) for r in readings]
            conn.executemany(
                _INSERT_READINGS,
                zip(
                    repeat(stream_id),
                    range(first, first + len(readings)),
                    ids,
                    [r.ts_ms for r in readings],
                    [r.value for r in readings],
                    [int(r.quality) for r in readings],
                ),
            )

        return write

    def next_batch(
        self, *, limit: int = 5000, stream: str | None = None, after_seq: int = 0
    ) -> Batch | None:
        """The oldest waiting records of the most urgent non-empty stream, or None.

        ``stream`` restricts the answer to one stream (diagnostics, per-stream senders).
        ``after_seq`` skips records up to that seq, so a sender can read the next batch of a
        stream while the previous one is still on its way to the hub.
        Nothing is removed: the same records come back until they are acknowledged.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if after_seq and stream is None:
            raise ValueError("after_seq needs a stream")
        with self._lock:
            conn = self._connection()
            names = self._order if stream is None else [self._state(stream).spec.name]
            for name in names:
                state = self._states[name]
                if state.depth == 0:
                    continue
                with sqlite_errors(self.path, f"read {name}"):
                    records = self._read(conn, state, limit, max(state.head_seq, after_seq + 1))
                if records:
                    return Batch(name, records, records[0][0], records[-1][0])
            return None

    def ack(self, stream: str, up_to_seq: int) -> int:
        """Delete every record of ``stream`` with seq <= ``up_to_seq``; return how many.

        Acknowledging an old seq again is a harmless no-op; acknowledging past the last seq
        written is a StoreError, since the hub cannot have seen records that do not exist.
        """
        with self._lock:
            conn = self._connection()
            state = self._state(stream)
            if up_to_seq > state.last_seq:
                raise StoreError(
                    f"outbox {self.path}: ack of {stream} up to seq {up_to_seq} but the last "
                    f"seq written is {state.last_seq}; was the outbox file replaced or "
                    "restored from a backup?"
                )
            if up_to_seq <= state.acked_seq:
                return 0
            new = replace(state, acked_seq=up_to_seq, head_seq=max(state.head_seq, up_to_seq + 1))
            deleted = 0
            with transaction(conn, self.path, f"ack {stream}"):
                if up_to_seq >= state.head_seq:
                    deleted = conn.execute(
                        f"DELETE FROM {state.table} WHERE stream_id = ? AND seq BETWEEN ? AND ?",
                        (state.id, state.head_seq, up_to_seq),
                    ).rowcount
                save_state(conn, new)
            self._states[stream] = new
            return deleted

    def stats(self) -> list[StreamStats]:
        """Counters of every configured stream, most urgent first; O(streams)."""
        with self._lock:
            conn = self._connection()
            with sqlite_errors(self.path, "stats"):
                return [stream_stats(conn, self._states[name]) for name in self._order]

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"outbox {self.path} is closed")
        return self._conn

    def _state(self, stream: str, record_type: RecordType | None = None) -> StreamState:
        state = self._states.get(stream)
        if state is None:
            known = ", ".join(self._order)
            raise StoreError(f"no stream {stream!r} in the outbox; known streams: {known}")
        if record_type is not None and state.spec.record_type != record_type:
            raise StoreError(
                f"stream {stream!r} holds {state.spec.record_type}s, not {record_type}s"
            )
        return state

    def _append(
        self,
        writes: Sequence[tuple[str, int, _RowWriter]],
        new_series: dict[tuple[str, str], int],
        deliveries: Sequence[str],
    ) -> list[SeqRange]:
        """Run the ``writes`` (stream, count, writer) and the quota in one transaction.

        The new state is adopted on commit. ``new_series`` collects series inserted by the
        writers; they enter the cache only once the transaction committed, so a rollback
        leaves cache and file in step.
        """
        with self._lock:
            conn = self._connection()
            staged = dict(self._states)
            ranges: list[SeqRange] = []
            steps: list[tuple[_RowWriter, int, int]] = []
            for stream, count, write in writes:
                state = staged.get(stream) or self._state(stream)
                first = state.last_seq + 1
                ranges.append(SeqRange(stream, first, first + count - 1))
                if count:
                    staged[stream] = replace(state, last_seq=state.last_seq + count)
                    steps.append((write, state.id, first))
            if not steps and not deliveries:
                return ranges
            outcome = QuotaOutcome()
            with transaction(conn, self.path, f"append to {', '.join(s for s, _, _ in writes)}"):
                for write, stream_id, first in steps:
                    write(conn, stream_id, first)
                if deliveries:
                    record_deliveries(conn, deliveries, keep=KEPT_DELIVERIES)
                if self.quota_bytes is not None:
                    assert self._gap_stream is not None
                    outcome = enforce_quota(conn, staged, self.quota_bytes, self._gap_stream)
                for name, new in staged.items():
                    if new is not self._states[name]:
                        save_state(conn, new)
            self._states = staged
            self._series.update(new_series)
            self._series_names.update((sid, key) for key, sid in new_series.items())
            self._report(outcome)
            return ranges

    def _series_id(
        self,
        conn: sqlite3.Connection,
        device: str,
        quantity: str,
        new_series: dict[tuple[str, str], int],
    ) -> int:
        """Id of a (device, quantity) pair, inserting it within the current transaction."""
        key = (device, quantity)
        sid = self._series.get(key) or new_series.get(key)
        if sid is None:
            cursor = conn.execute(
                "INSERT INTO series (device, quantity) VALUES (?, ?)", (device, quantity)
            )
            assert cursor.lastrowid is not None
            sid = new_series[key] = cursor.lastrowid
        return sid

    def _read(
        self, conn: sqlite3.Connection, state: StreamState, limit: int, from_seq: int
    ) -> list[tuple[int, Reading | Event]]:
        args = (state.id, from_seq, limit)
        if state.spec.record_type == "event":
            return [
                (seq, Event(kind, device, ts_ms, json.loads(attrs)))
                for seq, kind, device, ts_ms, attrs in conn.execute(_SELECT_EVENTS, args)
            ]
        names = self._series_names
        nan = math.nan
        return [
            (
                seq,
                Reading(*names[sid], ts_ms, nan if value is None else value, _QUALITIES[quality]),
            )
            for seq, sid, ts_ms, value, quality in conn.execute(_SELECT_READINGS, args)
        ]

    def _report(self, outcome: QuotaOutcome) -> None:
        """Log what the quota did, after its transaction committed, and hand pages back.

        Nothing here raises: the append it follows is already on disk.
        """
        for eviction in outcome.evictions:
            logger.warning(
                "outbox %s over its %d-byte quota: dropped %d records of stream %s never "
                "sent to the hub (seq %d to %d, ts_ms %d to %d); a gap event records it",
                self.path,
                self.quota_bytes,
                eviction.count,
                eviction.stream,
                eviction.first_seq,
                eviction.last_seq,
                eviction.from_ts_ms,
                eviction.to_ts_ms,
            )
        if outcome.over_quota_bytes is None:
            self._quota_warned = False
        elif not self._quota_warned:
            self._quota_warned = True
            logger.warning(
                "outbox %s holds %d bytes, over its %d-byte quota, and only records that are "
                "never evicted (events, alarms) are left; writing continues",
                self.path,
                outcome.over_quota_bytes,
                self.quota_bytes,
            )
        if outcome.evictions and self.quota_bytes is not None and self._conn is not None:
            # The append is committed: a failure here must not make the caller write it again.
            try:
                release_pages(self._conn, self.quota_bytes)
            except (sqlite3.Error, sqlite3.Warning) as exc:
                logger.warning("outbox %s: could not release free pages: %s", self.path, exc)
