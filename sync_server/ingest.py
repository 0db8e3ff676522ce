"""Storing a pushed batch exactly once: the heart of the sync protocol on the hub side.

A stream's row is locked for the whole transaction (``FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` locks the file), so two hub processes serving one gateway queue instead of
racing. Records above the stream's high-water mark are new and are inserted; records at or
below it must equal what is stored, or the batch is refused whole with ``seq_conflict``.
The ``(stream_id, seq)`` primary key backs this up: no path can store a record twice.

Clocks: a Raspberry Pi has no real-time clock, so a gateway may stamp records with 1970 (or
with a stale restored time) until NTP answers. Records stamped before 2020 are corrected by
the skew measured at sending when the gateway's clock is still off then (the same boot,
the same error) when that lands them between 2020 and a day after the hub's clock, and
flagged; records stamped in the future are flagged. Plausible timestamps are never rewritten:
a skew measured now says nothing about when they were taken. Flags are ``clock_corrections``
rows, one per run of consecutive seqs.

Before any of this, every record is checked against what the hub's readers need
(sync_server/record_checks.py): a batch holding one they could not read back is refused
whole with ``400 invalid_record``, naming the record, and nothing of it is stored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from edge_agent.records import Event, Reading
from sync_server.bad_records import count_refused, readable_attrs
from sync_server.db.schema import clock_corrections, events, gateways, readings, series, streams
from sync_server.errors import BadRequest, Conflict
from sync_server.gateway_facts import GatewayFacts
from sync_server.record_checks import (
    PLAUSIBLE_FROM_MS,
    Problem,
    TimeWindow,
    first_problem,
    ingest_window,
)
from sync_server.wire import DecodedBatch

__all__ = ["ClockPolicy", "GatewayRef", "PushResult", "store_batch", "stream_marks"]

@dataclass(frozen=True, slots=True)
class GatewayRef:
    """The caller, as its token says: never as the request says."""

    id: int
    territory_id: int
    name: str
    #: Which box is speaking: a reissue makes a new incarnation with fresh streams.
    incarnation: int


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """How far a gateway's clock may drift before its timestamps are shifted."""

    tolerance_ms: int


@dataclass(frozen=True, slots=True)
class PushResult:
    """What the hub answers a push with (docs/sync-protocol.md)."""

    stream: str
    first_seq: int
    last_seq: int
    stored: int
    duplicates: int
    acked: dict[str, int]


def stream_marks(conn: Connection, gateway: GatewayRef) -> dict[str, int]:
    """The high-water mark of each stream of a gateway's current incarnation."""
    query = select(streams.c.name, streams.c.acked_seq).where(
        streams.c.gateway_id == gateway.id, streams.c.incarnation == gateway.incarnation)
    return {name: int(seq) for name, seq in conn.execute(query)}


def store_batch(
    engine: Engine,
    gateway: GatewayRef,
    stream: str,
    batch: DecodedBatch,
    *,
    received_ms: int,
    sent_at_ms: int | None,
    backlog: int | None,
    clock: ClockPolicy,
    facts: GatewayFacts | None = None,
) -> PushResult:
    """Store what is new in ``batch``, check what is not, and answer with the marks.

    ``received_ms`` is the hub's clock when the request arrived, ``sent_at_ms`` the
    gateway's when it sent it: their difference is the gateway's clock skew. ``facts``
    is what the push said of the gateway, kept once the batch is.
    """
    received = received_ms
    window = ingest_window(received)
    _check_records(batch, window, sent_at_ms)
    skew = None if sent_at_ms is None else received - sent_at_ms
    shift = skew if skew is not None and abs(skew) > clock.tolerance_ms else 0
    last_seq = batch.first_seq + len(batch.records) - 1
    with engine.begin() as conn:
        seen: dict[str, str | int] = {"last_seen_ms": received,
                                      **(facts.columns() if facts else {})}
        if backlog is not None:
            seen["backlog"] = backlog
        if skew is not None:
            seen["clock_skew_ms"] = skew
        conn.execute(update(gateways).where(gateways.c.id == gateway.id).values(**seen))
        stream_id, acked = _lock_stream(conn, gateway, stream, batch.record_type)
        old_count = max(0, min(last_seq, acked) - batch.first_seq + 1)
        missing = _check_replayed(conn, gateway, stream_id, batch, old_count)
        new = [(batch.first_seq + i, batch.records[i])
               for i in range(old_count, len(batch.records))]
        to_store = missing + new
        implausible = 0
        if to_store:
            timestamps, flags = _timestamps(to_store, window, shift, received + clock.tolerance_ms)
            _insert(conn, gateway, stream_id, to_store, timestamps)
            if flags:
                conn.execute(clock_corrections.insert(), [
                    {"territory_id": gateway.territory_id, "gateway_id": gateway.id,
                     "stream_id": stream_id, "first_seq": first, "last_seq": last,
                     "skew_ms": applied, "implausible": last - first + 1, "at_ms": received}
                    for first, last, applied in flags])
                implausible = sum(last - first + 1 for first, last, _ in flags)
            if implausible:
                conn.execute(update(gateways).where(gateways.c.id == gateway.id).values(
                    implausible_ts_total=gateways.c.implausible_ts_total + implausible))
        if last_seq > acked:
            conn.execute(update(streams).where(streams.c.id == stream_id)
                         .values(acked_seq=last_seq))
        marks = stream_marks(conn, gateway)
    return PushResult(stream, batch.first_seq, last_seq, len(to_store),
                      len(batch.records) - len(to_store), marks)


def _insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _lock_stream(
    conn: Connection, gateway: GatewayRef, name: str, record_type: str
) -> tuple[int, int]:
    query = (
        select(streams.c.id, streams.c.acked_seq, streams.c.record_type)
        .where(streams.c.gateway_id == gateway.id, streams.c.incarnation == gateway.incarnation,
               streams.c.name == name)
        .with_for_update()
    )
    row = conn.execute(query).first()
    if row is None:
        # Insert only when missing: PostgreSQL spends a sequence value on every
        # INSERT ... ON CONFLICT, even one that inserts nothing.
        conn.execute(_insert_ignoring_conflicts(conn, streams).values(
            territory_id=gateway.territory_id, gateway_id=gateway.id,
            incarnation=gateway.incarnation, name=name, record_type=record_type, acked_seq=0))
        row = conn.execute(query).one()
    if row.record_type != record_type:
        raise Conflict(f"stream {name!r} holds {row.record_type}s; this batch holds "
                       f"{record_type}s", code="stream_type")
    return int(row.id), int(row.acked_seq)


def _check_replayed(
    conn: Connection, gateway: GatewayRef, stream_id: int, batch: DecodedBatch, count: int
) -> list[tuple[int, Reading | Event]]:
    """Compare records at or below the mark with what is stored; return those not stored.

    Records below the mark that are not stored were evicted at the gateway before it sent
    them, or lost in a hole; storing them now keeps "exactly once" either way.
    """
    if count == 0:
        return []
    first, last = batch.first_seq, batch.first_seq + count - 1
    if batch.record_type == "reading":
        stored = _stored_readings(conn, gateway, stream_id, first, last)
    else:
        stored = _stored_events(conn, stream_id, first, last)
    missing: list[tuple[int, Reading | Event]] = []
    for offset in range(count):
        seq = first + offset
        record = batch.records[offset]
        kept = stored.get(seq)
        if kept is None:
            missing.append((seq, record))
        elif not _same(kept, record):
            raise Conflict(
                f"seq {seq} of stream {batch.stream} was stored with different content; "
                "nothing of this batch was stored. Was the gateway's outbox replaced, "
                "restored from a backup or copied to another box?", code="seq_conflict")
    return missing


def _same(kept: tuple[Any, ...], record: Reading | Event) -> bool:
    """Whether a stored record is ``record`` again.

    A timestamp from before 2020 was corrected when stored, by a skew that a replay measures
    again a few milliseconds differently: the rest of the record must match.
    """
    if isinstance(record, Reading):
        value = record.value if math.isfinite(record.value) else None
        incoming: tuple[Any, ...] = (record.device, record.quantity, record.ts_ms, value,
                                     int(record.quality))
        ts_at = 2
    else:
        incoming, ts_at = (record.kind, record.device, record.ts_ms, record.attrs), 2
    if record.ts_ms < PLAUSIBLE_FROM_MS:
        return kept[:ts_at] + kept[ts_at + 1:] == incoming[:ts_at] + incoming[ts_at + 1:]
    return kept == incoming


def _timestamps(
    records: list[tuple[int, Reading | Event]], window: TimeWindow, shift: int, latest: int
) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Timestamps to store, and flagged runs ``(first seq, last seq, shift applied)``.

    A stamp before 2020 is moved by ``shift`` only if that lands it between 2020 and the
    window's end: a shift that cannot place it (a clock set back between stamping and
    sending) would only make it wrong differently, so the stamp is kept and flagged.
    """
    stored: list[int] = []
    flags: list[tuple[int, int, int]] = []
    for seq, record in records:
        ts = record.ts_ms
        applied = None
        if ts < PLAUSIBLE_FROM_MS:
            applied = shift if PLAUSIBLE_FROM_MS <= ts + shift <= window.latest_ms else 0
        elif ts > latest:
            applied = 0
        stored.append(ts + (applied or 0))
        if applied is None:
            continue
        if flags and flags[-1][1] == seq - 1 and flags[-1][2] == applied:
            flags[-1] = (flags[-1][0], seq, applied)
        else:
            flags.append((seq, seq, applied))
    return stored, flags


def _check_records(batch: DecodedBatch, window: TimeWindow, sent_at_ms: int | None) -> None:
    """BadRequest (counted) naming the header, or the first record, no reader could read."""
    if sent_at_ms is not None:
        _refuse_if(window.problem("X-Ponton-Sent-At", sent_at_ms), "header", batch)
    found = first_problem(batch.records, window)
    if found is not None:
        index, problem = found
        _refuse_if(problem, f"record {index} (seq {batch.first_seq + index})", batch)


def _refuse_if(problem: Problem | None, where: str, batch: DecodedBatch) -> None:
    if problem is not None:
        count_refused(problem)
        raise BadRequest(f"{where} of stream {batch.stream}: {problem}; nothing of this "
                         "batch was stored", code="invalid_record")


def _stored_readings(
    conn: Connection, gateway: GatewayRef, stream_id: int, first: int, last: int
) -> dict[int, tuple[Any, ...]]:
    query = (
        select(readings.c.seq, series.c.device, series.c.quantity, readings.c.ts_ms,
               readings.c.value, readings.c.quality)
        .join_from(readings, series, readings.c.series_id == series.c.id)
        .where(readings.c.stream_id == stream_id, readings.c.seq.between(first, last),
               series.c.gateway_id == gateway.id)
    )
    return {int(row[0]): tuple(row[1:]) for row in conn.execute(query)}


def _stored_events(
    conn: Connection, stream_id: int, first: int, last: int
) -> dict[int, tuple[Any, ...]]:
    query = select(events.c.seq, events.c.kind, events.c.device, events.c.ts_ms,
                   events.c.attrs).where(events.c.stream_id == stream_id,
                                         events.c.seq.between(first, last))
    return {int(seq): (kind, device, ts, _stored_attrs(attrs))
            for seq, kind, device, ts, attrs in conn.execute(query)}


def _stored_attrs(text: str) -> object:
    """A stored event's attributes to compare a replay with. A row no reader can read
    (stored before records were checked) stays text: the replay then conflicts, loudly."""
    attrs = readable_attrs(text)
    return text if isinstance(attrs, Problem) else attrs


def _insert(
    conn: Connection,
    gateway: GatewayRef,
    stream_id: int,
    records: list[tuple[int, Reading | Event]],
    timestamps: list[int],
) -> None:
    """Insert ``records`` with the ``timestamps`` decided for them."""
    if isinstance(records[0][1], Event):
        conn.execute(events.insert(), [
            {"stream_id": stream_id, "seq": seq, "territory_id": gateway.territory_id,
             "gateway_id": gateway.id, "kind": e.kind, "device": e.device,
             "ts_ms": ts, "attrs": json.dumps(e.attrs, sort_keys=True)}
            for (seq, e), ts in zip(records, timestamps, strict=True) if isinstance(e, Event)
        ])
        return
    reading_rows = [(seq, r, ts) for (seq, r), ts in zip(records, timestamps, strict=True)
                    if isinstance(r, Reading)]
    ids = _series_ids(conn, gateway, {(r.device, r.quantity) for _, r, _ in reading_rows})
    rows = [
        (stream_id, seq, ids[(r.device, r.quantity)], ts,
         r.value if math.isfinite(r.value) else None, int(r.quality))
        for seq, r, ts in reading_rows
    ]
    _bulk_insert_readings(conn, rows)


def _bulk_insert_readings(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """COPY on PostgreSQL (several times faster than INSERT); executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(
            "COPY readings (stream_id, seq, series_id, ts_ms, value, quality) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        return
    conn.exec_driver_sql(
        "INSERT INTO readings (stream_id, seq, series_id, ts_ms, value, quality)"
        " VALUES (?, ?, ?, ?, ?, ?)", rows)


def _series_ids(
    conn: Connection, gateway: GatewayRef, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    query = select(series.c.device, series.c.quantity, series.c.id).where(
        series.c.gateway_id == gateway.id)
    ids = {(device, quantity): int(sid) for device, quantity, sid in conn.execute(query)}
    absent = keys - ids.keys()
    if absent:
        conn.execute(_insert_ignoring_conflicts(conn, series), [
            {"territory_id": gateway.territory_id, "gateway_id": gateway.id,
             "device": device, "quantity": quantity} for device, quantity in sorted(absent)
        ])
        ids.update({(device, quantity): int(sid)
                    for device, quantity, sid in conn.execute(query)})
    return ids
