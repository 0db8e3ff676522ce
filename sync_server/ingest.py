"""Storing a pushed batch exactly once: the heart of the sync protocol on the hub side.

The gateway's row and its streams' rows are locked for the whole transaction (``UPDATE``,
then ``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` locks the file), so two hub
processes serving one gateway queue instead of racing; the streams' marks the answer gives
come from that one locking query. Records above the stream's high-water mark are new and
are inserted; records at or below it must equal what is stored, or the batch is refused
whole with ``seq_conflict``.
The ``(stream_id, seq)`` key backs this up (on PostgreSQL the partitioned readings' key also
holds ``ts_ms``, so there the stream's row lock and the check of every seq at or below the
mark are what keep a seq stored once).

Clocks: a Raspberry Pi has no real-time clock, so a gateway may stamp records with 1970 (or
with a stale restored time) until NTP answers. Records stamped before 2020 are corrected by
the skew measured at sending when the gateway's clock is still off then (the same boot,
the same error) when that lands them between 2020 and a day after the hub's clock, and
flagged; records stamped in the future are flagged. Plausible timestamps are never rewritten:
a skew measured now says nothing about when they were taken. Flags are ``clock_corrections``
rows, one per run of consecutive seqs.

A push's token is checked inside the same transaction: the gateway row is updated only where
it still holds that token (``token_digest``), so a token revoked or reissued while its batch
was on its way stores nothing (401), and the door's check before the body (which may come
from what this process already saw, sync_server/api/known_tokens.py) never admits a batch
on its own.

Before any of this, every record is checked against what the hub's readers need
(sync_server/record_checks.py): a batch holding one they could not read back is refused
whole with ``400 invalid_record``, naming the record, and nothing of it is stored.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from edge_agent.codecs.batch import ReadingColumns
from edge_agent.records import Event, Reading
from sync_server.bad_records import count_refused, readable_attrs
from sync_server.db.engine import transaction
from sync_server.db.partitions import dropped_months_holding
from sync_server.db.schema import clock_corrections, events, gateways, readings, series, streams
from sync_server.errors import BadRequest, Conflict, Unauthorized
from sync_server.gateway_facts import GatewayFacts
from sync_server.reading_rows import copy_readings
from sync_server.record_checks import (
    PLAUSIBLE_FROM_MS,
    Problem,
    TimeWindow,
    first_problem,
    first_reading_problem,
    ingest_window,
)
from sync_server.rollups import note_late_readings
from sync_server.wire import DecodedBatch

__all__ = [
    "TOKEN_REFUSED",
    "ClockPolicy",
    "GatewayRef",
    "PushResult",
    "store_batch",
    "stream_marks",
]

#: Why a gateway token is refused, unknown or revoked alike (neither is told apart).
TOKEN_REFUSED = "token refused: unknown or revoked; re-provision the gateway"

#: Series ids by database, then by gateway (``_series_ids``); emptied past this many gateways.
_SERIES_IDS: weakref.WeakKeyDictionary[Engine, dict[int, dict[tuple[str, str], int]]] = (
    weakref.WeakKeyDictionary())
_SERIES_LOCK = threading.Lock()
_MAX_CACHED_GATEWAYS = 20_000

# Built once: a push runs each, and building a statement costs more than running it here.
_MARKS = select(streams.c.name, streams.c.acked_seq).where(
    streams.c.gateway_id == bindparam("gateway"),
    streams.c.incarnation == bindparam("incarnation"))
#: Every stream of the gateway, locked: the pushed one's mark to move, the others' marks to
#: answer with (the gateway's row, updated first, already keeps its other pushes out).
_LOCK_STREAMS = (
    select(streams.c.id, streams.c.name, streams.c.acked_seq, streams.c.record_type)
    .where(streams.c.gateway_id == bindparam("gateway"),
           streams.c.incarnation == bindparam("incarnation"))
    .with_for_update())
_SERIES_OF = select(series.c.device, series.c.quantity, series.c.id).where(
    series.c.gateway_id == bindparam("gateway"))

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
    return {name: int(seq) for name, seq in conn.execute(
        _MARKS, {"gateway": gateway.id, "incarnation": gateway.incarnation})}


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
    token_digest: str | None = None,
) -> PushResult:
    """Store what is new in ``batch``, check what is not, and answer with the marks.

    ``received_ms`` is the hub's clock when the request arrived, ``sent_at_ms`` the
    gateway's when it sent it: their difference is the gateway's clock skew. ``facts``
    is what the push said of the gateway, kept once the batch is. With ``token_digest``,
    nothing is stored unless ``gateway`` still holds that token (Unauthorized otherwise).
    One transaction, run again once if its connection turned out dead.
    """
    window = ingest_window(received_ms)
    _check_records(batch, window, sent_at_ms)
    skew = None if sent_at_ms is None else received_ms - sent_at_ms
    seen: dict[str, str | int] = {"last_seen_ms": received_ms,
                                  **(facts.columns() if facts else {})}
    if backlog is not None:
        seen["backlog"] = backlog
    if skew is not None:
        seen["clock_skew_ms"] = skew
    shift = skew if skew is not None and abs(skew) > clock.tolerance_ms else 0
    this_gateway = gateways.c.id == gateway.id
    if token_digest is not None:
        this_gateway &= (gateways.c.token_hash == token_digest) & (
            gateways.c.incarnation == gateway.incarnation)

    def store(conn: Connection) -> PushResult:
        if conn.execute(update(gateways).where(this_gateway).values(**seen)).rowcount == 0:
            raise Unauthorized(TOKEN_REFUSED)
        return _store(conn, gateway, stream, batch, received_ms, window, shift, clock)

    return transaction(engine, store)


def _store(
    conn: Connection, gateway: GatewayRef, stream: str, batch: DecodedBatch, received: int,
    window: TimeWindow, shift: int, clock: ClockPolicy,
) -> PushResult:
    last_seq = batch.first_seq + len(batch.records) - 1
    stream_id, acked, marks = _lock_stream(conn, gateway, stream, batch.record_type)
    old_count = max(0, min(last_seq, acked) - batch.first_seq + 1)
    missing = _check_replayed(conn, gateway, stream_id, batch, old_count)
    if missing and batch.record_type == "reading":
        missing = _outside_dropped_months(conn, batch, missing, window, shift,
                                          received + clock.tolerance_ms)
    to_store = missing + list(range(old_count, len(batch.records)))
    implausible = 0
    if to_store:
        timestamps, flags = _timestamps(batch, to_store, window, shift,
                                        received + clock.tolerance_ms)
        _insert(conn, gateway, stream_id, batch, to_store, timestamps)
        if missing and batch.record_type == "reading":
            note_late_readings(conn, stream_id, [batch.first_seq + i for i in missing])
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
        marks[stream] = last_seq
    return PushResult(stream, batch.first_seq, last_seq, len(to_store),
                      len(batch.records) - len(to_store), marks)


def _insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _lock_stream(
    conn: Connection, gateway: GatewayRef, name: str, record_type: str
) -> tuple[int, int, dict[str, int]]:
    """Lock the gateway's streams, creating ``name`` if missing: its id and mark, and every
    stream's mark, in one round trip."""
    params = {"gateway": gateway.id, "incarnation": gateway.incarnation}
    rows = {row.name: row for row in conn.execute(_LOCK_STREAMS, params)}
    if name not in rows:
        # Insert only when missing: PostgreSQL spends a sequence value on every
        # INSERT ... ON CONFLICT, even one that inserts nothing.
        conn.execute(_insert_ignoring_conflicts(conn, streams).values(
            territory_id=gateway.territory_id, gateway_id=gateway.id,
            incarnation=gateway.incarnation, name=name, record_type=record_type, acked_seq=0))
        rows = {row.name: row for row in conn.execute(_LOCK_STREAMS, params)}
    row = rows[name]
    if row.record_type != record_type:
        raise Conflict(f"stream {name!r} holds {row.record_type}s; this batch holds "
                       f"{record_type}s", code="stream_type")
    return int(row.id), int(row.acked_seq), {
        str(other.name): int(other.acked_seq) for other in rows.values()}


def _record(batch: DecodedBatch, position: int) -> Reading | Event:
    records = batch.records
    return records.reading(position) if isinstance(records, ReadingColumns) else records[position]


def _check_replayed(
    conn: Connection, gateway: GatewayRef, stream_id: int, batch: DecodedBatch, count: int
) -> list[int]:
    """Compare records at or below the mark with what is stored; return the positions in
    the batch of those not stored.

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
    missing: list[int] = []
    for offset in range(count):
        seq = first + offset
        kept = stored.get(seq)
        if kept is None:
            missing.append(offset)
        elif not _same(kept, _record(batch, offset)):
            raise Conflict(
                f"seq {seq} of stream {batch.stream} was stored with different content; "
                "nothing of this batch was stored. Was the gateway's outbox replaced, "
                "restored from a backup or copied to another box?", code="seq_conflict")
    return missing


def _outside_dropped_months(conn: Connection, batch: DecodedBatch, missing: list[int],
                            window: TimeWindow, shift: int, latest: int) -> list[int]:
    """The replayed readings at ``missing`` except those of a month retention dropped.

    Such a reading was stored, rolled up and let go with its month (its ack was lost on the
    way back): stored again, the rollups would count it twice. It is answered as a duplicate.
    """
    stamps, _ = _timestamps(batch, missing, window, shift, latest)
    expired = dropped_months_holding(conn, stamps)
    if not expired:
        return missing
    return [position for position, ts in zip(missing, stamps, strict=True)
            if ts not in expired]


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
    batch: DecodedBatch, positions: list[int], window: TimeWindow, shift: int, latest: int
) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Timestamps to store for the records at ``positions``, and flagged runs ``(first seq,
    last seq, shift applied)``.

    A stamp before 2020 is moved by ``shift`` only if that lands it between 2020 and the
    window's end: a shift that cannot place it (a clock set back between stamping and
    sending) would only make it wrong differently, so the stamp is kept and flagged.
    """
    records = batch.records
    stamps = ([records.ts_ms[p] for p in positions] if isinstance(records, ReadingColumns)
              else [records[p].ts_ms for p in positions])
    if min(stamps) >= PLAUSIBLE_FROM_MS and max(stamps) <= latest:
        return stamps, []  # every clock was right: nothing to shift or flag
    stored: list[int] = []
    flags: list[tuple[int, int, int]] = []
    for position, ts in zip(positions, stamps, strict=True):
        seq = batch.first_seq + position
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
    records = batch.records
    found = (first_reading_problem(records, window) if isinstance(records, ReadingColumns)
             else first_problem(records, window))
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
    batch: DecodedBatch,
    positions: list[int],
    timestamps: list[int],
) -> None:
    """Insert the records at ``positions`` with the ``timestamps`` decided for them."""
    records = batch.records
    if isinstance(records, ReadingColumns):
        ids = _series_ids(conn, gateway, records.series)
        copy_readings(conn, stream_id, records, [ids[key] for key in records.series],
                      positions, timestamps)
        return
    conn.execute(events.insert(), [
        {"stream_id": stream_id, "seq": batch.first_seq + p,
         "territory_id": gateway.territory_id, "gateway_id": gateway.id, "kind": e.kind,
         "device": e.device, "ts_ms": ts, "attrs": json.dumps(e.attrs, sort_keys=True)}
        for p, ts in zip(positions, timestamps, strict=True) for e in (records[p],)
    ])


def _series_ids(
    conn: Connection, gateway: GatewayRef, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The ids of a gateway's series ``keys``, created if missing.

    Ids seen committed are kept per process: a series is never renumbered or deleted, and a
    gateway pushes the same few hundred again and again. An id created here is kept only
    once a later push reads it back, since this transaction may still roll back.
    """
    with _SERIES_LOCK:
        cache = _SERIES_IDS.setdefault(conn.engine, {})
    known = cache.get(gateway.id)
    if known is not None and all(key in known for key in keys):
        return known
    query = (_SERIES_OF, {"gateway": gateway.id})
    ids = {(device, quantity): int(sid) for device, quantity, sid in conn.execute(*query)}
    if len(cache) >= _MAX_CACHED_GATEWAYS:
        cache.clear()
    cache[gateway.id] = dict(ids)
    absent = set(keys) - ids.keys()
    if absent:
        conn.execute(_insert_ignoring_conflicts(conn, series), [
            {"territory_id": gateway.territory_id, "gateway_id": gateway.id,
             "device": device, "quantity": quantity} for device, quantity in sorted(absent)
        ])
        ids.update({(device, quantity): int(sid)
                    for device, quantity, sid in conn.execute(*query)})
    return ids
