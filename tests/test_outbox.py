"""The outbox on real SQLite files: round trips, sequence numbers, priorities, acks, schema."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.errors import StoreCorrupt, StoreError
from edge_agent.records import Event, Quality, Reading
from edge_agent.store import DEFAULT_STREAMS, Batch, Outbox, SeqRange, StreamSpec, read_stats
from edge_agent.store.connection import connect, sqlite_errors
from edge_agent.store.migrations import MIGRATIONS, Migration, migrate, schema_version

TS = 1_795_564_800_000


def readings(n: int, *, start: int = 0, devices: int = 3) -> list[Reading]:
    return [
        Reading(f"meter-{i % devices}", "active_power", TS + i * 1000, i * 1.5)
        for i in range(start, start + n)
    ]


def events(n: int, *, kind: str = "access.granted", start: int = 0) -> list[Event]:
    return [
        Event(kind, f"gate-{i % 2}", TS + i, {"badge": f"b{i}", "i": i})
        for i in range(start, start + n)
    ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def outbox(path: Path) -> Iterator[Outbox]:
    with Outbox.open(path) as box:
        yield box


def drain(box: Outbox, *, limit: int = 5000) -> list[Batch]:
    """Take and acknowledge every batch, as the sync client does."""
    batches = []
    while (batch := box.next_batch(limit=limit)) is not None:
        batches.append(batch)
        box.ack(batch.stream, batch.last_seq)
    return batches


def test_readings_and_events_round_trip_every_field(outbox: Outbox) -> None:
    sent_readings = [
        Reading("meter-1", "active_energy_import", TS, 12345.678, Quality.GOOD),
        Reading("meter-1", "active_power", TS + 1, -0.0, Quality.SUSPECT),
        Reading("meter-2", "active_power", -5, 1e308, Quality.GOOD),
        Reading("meter-2", "voltage_l1", 2**62, math.inf, Quality.INVALID),
        Reading("ponton-é", "water_volume", TS + 3, -math.inf, Quality.INVALID),
    ]
    nan_reading = Reading("meter-3", "active_power", TS + 4, math.nan, Quality.INVALID)
    sent_events = [
        Event("access.granted", "gate-1", TS, {"badge": "a1b2", "zone": "pontoon-A", "n": 3}),
        Event("device.offline", "meter-1", TS + 1),
        Event(
            "session.closed",
            "pedestal-4",
            TS + 2,
            {"kwh": 1.25, "m3": None, "ok": True, "nested": {"list": [1, "x", 2.5]}},
        ),
    ]
    alarm = Event("alarm.raised", "level-3", TS + 9, {"threshold": 2.5, "value": 2.7})

    assert outbox.append_readings([*sent_readings, nan_reading]) == SeqRange("readings", 1, 6)
    assert outbox.append_events(sent_events) == SeqRange("events", 1, 3)
    assert outbox.append_events([alarm], stream="alarms") == SeqRange("alarms", 1, 1)

    batches = {batch.stream: batch for batch in drain(outbox)}
    assert batches["alarms"].records == [(1, alarm)]
    assert batches["events"].records == list(enumerate(sent_events, 1))
    got = batches["readings"].records
    assert got[:5] == list(enumerate(sent_readings, 1))
    seq, back = got[5]
    assert seq == 6
    assert isinstance(back, Reading)
    assert (back.device, back.quantity, back.ts_ms, back.quality) == (
        "meter-3",
        "active_power",
        TS + 4,
        Quality.INVALID,
    )
    assert math.isnan(back.value)
    assert isinstance(back.quality, Quality)


def test_seqs_increase_per_stream_across_ack_and_reopen(path: Path) -> None:
    with Outbox.open(path) as box:
        assert box.append_readings(readings(10)) == SeqRange("readings", 1, 10)
        assert box.append_readings(readings(5)) == SeqRange("readings", 11, 15)
        assert box.append_events(events(2)) == SeqRange("events", 1, 2)
        drain(box)
        assert [stat.depth for stat in box.stats()] == [0, 0, 0]
        assert box.append_readings(readings(1)) == SeqRange("readings", 16, 16)
        box.ack("readings", 16)
    with Outbox.open(path) as box:
        assert box.append_readings(readings(3)) == SeqRange("readings", 17, 19)
        assert box.append_events(events(1)) == SeqRange("events", 3, 3)
        assert box.append_events(events(1), stream="alarms") == SeqRange("alarms", 1, 1)
        batch = box.next_batch(stream="readings")
        assert batch is not None
        assert [seq for seq, _ in batch.records] == [17, 18, 19]


def test_empty_append_returns_an_empty_range_and_writes_nothing(outbox: Outbox) -> None:
    outbox.append_readings(readings(4))
    empty = outbox.append_readings([])
    assert empty == SeqRange("readings", 5, 4)
    assert len(empty) == 0
    assert not empty
    assert outbox.append_events([]) == SeqRange("events", 1, 0)
    assert outbox.append_readings(readings(1)) == SeqRange("readings", 5, 5)


def test_next_batch_serves_alarms_then_events_then_readings(outbox: Outbox) -> None:
    outbox.append_readings(readings(7))
    outbox.append_events(events(4))
    outbox.append_events(events(2, kind="alarm.raised"), stream="alarms")

    order = [
        (batch.stream, batch.first_seq, batch.last_seq, len(batch))
        for batch in drain(outbox, limit=3)
    ]
    assert order == [
        ("alarms", 1, 2, 2),
        ("events", 1, 3, 3),
        ("events", 4, 4, 1),
        ("readings", 1, 3, 3),
        ("readings", 4, 6, 3),
        ("readings", 7, 7, 1),
    ]
    assert outbox.next_batch() is None


def test_an_alarm_written_later_overtakes_waiting_readings(outbox: Outbox) -> None:
    outbox.append_readings(readings(100))
    batch = outbox.next_batch(limit=10)
    assert batch is not None
    assert batch.stream == "readings"
    outbox.append_events(events(1, kind="alarm.raised"), stream="alarms")
    batch = outbox.next_batch(limit=10)
    assert batch is not None
    assert batch.stream == "alarms"


def test_next_batch_does_not_remove_anything(outbox: Outbox) -> None:
    outbox.append_events(events(3))
    assert outbox.next_batch() == outbox.next_batch()
    with pytest.raises(ValueError, match="limit"):
        outbox.next_batch(limit=0)


def test_next_batch_after_a_seq_reads_ahead_of_what_is_in_flight(outbox: Outbox) -> None:
    outbox.append_readings(readings(10))
    ahead = outbox.next_batch(limit=4, stream="readings", after_seq=4)
    assert ahead is not None
    assert (ahead.first_seq, ahead.last_seq) == (5, 8)
    assert outbox.next_batch(stream="readings", after_seq=10) is None
    outbox.ack("readings", 6)
    behind = outbox.next_batch(limit=2, stream="readings", after_seq=3)
    assert behind is not None
    assert behind.first_seq == 7, "acknowledged records are never served again"
    with pytest.raises(ValueError, match="after_seq needs a stream"):
        outbox.next_batch(after_seq=3)


def test_ack_deletes_exactly_up_to_seq_and_is_idempotent(outbox: Outbox) -> None:
    outbox.append_readings(readings(10))
    assert outbox.ack("readings", 4) == 4
    assert outbox.ack("readings", 4) == 0
    assert outbox.ack("readings", 2) == 0
    assert outbox.ack("readings", 0) == 0
    batch = outbox.next_batch()
    assert batch is not None
    assert [seq for seq, _ in batch.records] == list(range(5, 11))
    assert outbox.ack("readings", 10) == 6
    stats = {stat.name: stat for stat in outbox.stats()}
    assert (stats["readings"].depth, stats["readings"].acked_seq) == (0, 10)


def test_ack_beyond_the_last_seq_is_refused(outbox: Outbox) -> None:
    outbox.append_readings(readings(3))
    with pytest.raises(StoreError, match=r"up to seq 4 but the last seq written is 3"):
        outbox.ack("readings", 4)
    with pytest.raises(StoreError, match="last seq written is 0"):
        outbox.ack("events", 1)
    assert outbox.next_batch() is not None


def test_unknown_stream_names_the_known_ones(outbox: Outbox) -> None:
    known = "known streams: alarms, events, readings"
    with pytest.raises(StoreError, match=known):
        outbox.append_readings(readings(1), stream="reading")
    with pytest.raises(StoreError, match=known):
        outbox.append_events(events(1), stream="alarm")
    with pytest.raises(StoreError, match=known):
        outbox.ack("nope", 1)
    with pytest.raises(StoreError, match=known):
        outbox.next_batch(stream="nope")


def test_a_stream_takes_only_its_record_type(outbox: Outbox) -> None:
    with pytest.raises(StoreError, match="'readings' holds readings, not events"):
        outbox.append_events(events(1), stream="readings")
    with pytest.raises(StoreError, match="'alarms' holds events, not readings"):
        outbox.append_readings(readings(1), stream="alarms")


def test_event_attrs_that_are_not_json_are_refused_and_nothing_is_written(outbox: Outbox) -> None:
    bad = [*events(2), Event("barrier.state", "barrier-1", TS, {"at": object()})]
    with pytest.raises(StoreError, match=r"'barrier\.state' from 'barrier-1': attrs must be JSON"):
        outbox.append_events(bad)
    with pytest.raises(StoreError, match="attrs must be JSON"):
        outbox.append_events([Event("alarm.raised", "s", TS, {"value": math.nan})])
    assert outbox.next_batch() is None
    assert outbox.append_events(events(1)) == SeqRange("events", 1, 1)


def test_new_series_of_a_failed_append_do_not_leak_into_the_next(path: Path) -> None:
    with Outbox.open(path) as box:
        bad = [
            Reading("new-meter", "active_power", TS, 1.0),
            Reading("m", "q", "yesterday", 2.0),  # type: ignore[arg-type]
        ]
        with pytest.raises(StoreError, match="append to readings failed"):
            box.append_readings(bad)
        box.append_readings([Reading("new-meter", "active_power", TS, 3.0)])
    with Outbox.open(path) as box:
        batch = box.next_batch()
        assert batch is not None
        assert batch.records == [(1, Reading("new-meter", "active_power", TS, 3.0))]


def test_stats_report_depth_oldest_and_counters(outbox: Outbox) -> None:
    assert [(s.name, s.priority, s.depth, s.oldest_ts_ms) for s in outbox.stats()] == [
        ("alarms", 0, 0, None),
        ("events", 1, 0, None),
        ("readings", 9, 0, None),
    ]
    outbox.append_readings(readings(5, start=10))
    outbox.append_events(events(3, start=100))
    outbox.ack("readings", 2)
    stats = {stat.name: stat for stat in outbox.stats()}
    assert stats["readings"].depth == 3
    assert stats["readings"].oldest_ts_ms == TS + 12 * 1000
    assert (stats["readings"].last_seq, stats["readings"].acked_seq) == (5, 2)
    assert stats["readings"].evicted_total == 0
    assert (stats["events"].depth, stats["events"].oldest_ts_ms) == (3, TS + 100)


def test_read_stats_from_another_connection_while_the_outbox_is_open(path: Path) -> None:
    with Outbox.open(path) as box:
        box.append_readings(readings(5))
        box.append_events(events(2), stream="alarms")
        box.ack("readings", 1)
        assert read_stats(path) == box.stats()
    after = [(s.name, s.depth, s.last_seq, s.acked_seq) for s in read_stats(path)]
    assert after == [("alarms", 2, 2, 0), ("events", 0, 0, 0), ("readings", 4, 5, 1)]


def test_read_stats_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="check that the directory exists"):
        read_stats(tmp_path / "missing.db")
    older = tmp_path / "older.db"
    conn = connect(older)
    try:
        migrate(conn, older, MIGRATIONS[:1])
    finally:
        conn.close()
    with pytest.raises(StoreError, match=r"schema version 1 .* start the agent once"):
        read_stats(older)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    with pytest.raises(StoreCorrupt):
        read_stats(garbage)


def test_concurrent_threads_get_distinct_contiguous_seqs(outbox: Outbox) -> None:
    ranges: list[SeqRange] = []

    def produce() -> None:
        for _ in range(20):
            ranges.append(outbox.append_readings(readings(7)))

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = sorted(seq for rng in ranges for seq in range(rng.first, rng.last + 1))
    assert seqs == list(range(1, 4 * 20 * 7 + 1))


def test_closed_outbox_refuses_work(path: Path) -> None:
    box = Outbox.open(path)
    box.close()
    box.close()
    with pytest.raises(StoreError, match="is closed"):
        box.append_readings(readings(1))
    with pytest.raises(StoreError, match="is closed"):
        box.stats()


def test_custom_streams_and_a_changed_record_type(path: Path) -> None:
    streams = [
        StreamSpec("barriers", 2, "event", evictable=False),
        StreamSpec("energy", 5, "reading", evictable=True),
        StreamSpec("air", 5, "reading", evictable=True),
    ]
    with Outbox.open(path, streams=streams) as box:
        box.append_readings(readings(2), stream="energy")
        box.append_readings(readings(2), stream="air")
        box.append_events(events(1), stream="barriers")
        assert [batch.stream for batch in drain(box)] == ["barriers", "air", "energy"]
    with pytest.raises(StoreError, match="'energy' holds readings in this file"):
        Outbox.open(path, streams=[StreamSpec("energy", 5, "event", evictable=False)])
    with pytest.raises(ValueError, match="unique"):
        Outbox.open(path, streams=[*DEFAULT_STREAMS, DEFAULT_STREAMS[0]])


def test_a_path_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="check that the directory exists") as info:
        Outbox.open(tmp_path / "missing-dir" / "outbox.db")
    assert not isinstance(info.value.__cause__, StoreError)


def test_the_file_is_in_wal_mode_with_incremental_vacuum(outbox: Outbox, path: Path) -> None:
    outbox.append_readings(readings(1))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.Error,
        sqlite3.Warning,
        sqlite3.InterfaceError,
        sqlite3.DatabaseError,
        sqlite3.DataError,
        sqlite3.OperationalError,
        sqlite3.IntegrityError,
        sqlite3.InternalError,
        sqlite3.ProgrammingError,
        sqlite3.NotSupportedError,
    ],
)
def test_every_sqlite3_error_is_translated(path: Path, error: type[Exception]) -> None:
    with (
        pytest.raises(StoreError, match=re.escape(f"outbox {path}: testing failed")) as info,
        sqlite_errors(path, "testing"),
    ):
        raise error("boom")
    assert isinstance(info.value.__cause__, error)


# Schema and damaged files


@pytest.mark.parametrize("applied", range(len(MIGRATIONS)))
def test_a_file_at_an_older_schema_version_is_upgraded(path: Path, applied: int) -> None:
    conn = connect(path)
    try:
        assert migrate(conn, path, MIGRATIONS[:applied]) == applied
        if applied >= 1:
            conn.execute(
                "INSERT INTO streams (name, record_type, priority, evictable)"
                " VALUES ('readings', 'reading', 9, 1)"
            )
    finally:
        conn.close()
    with Outbox.open(path) as box:
        assert box.append_readings(readings(2)) == SeqRange("readings", 1, 2)
        assert box.append_events(events(2)) == SeqRange("events", 1, 2)
    conn = connect(path)
    try:
        assert schema_version(conn, path) == len(MIGRATIONS)
        names = [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY 1")]
        assert sorted(names) == sorted(step.name for step in MIGRATIONS)
    finally:
        conn.close()


def test_a_file_from_a_newer_ponton_is_refused(path: Path) -> None:
    with Outbox.open(path) as box:
        box.append_readings(readings(1))
    future = (*MIGRATIONS, Migration("from_the_future", lambda conn: None))
    conn = connect(path)
    try:
        migrate(conn, path, future)
    finally:
        conn.close()
    with pytest.raises(StoreError, match="written by a newer Ponton; upgrade the agent"):
        Outbox.open(path)


def test_a_migration_that_fails_leaves_the_previous_version(path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("this is not sql")

    conn = connect(path)
    try:
        with pytest.raises(StoreError, match="schema migration failed"):
            migrate(conn, path, (*MIGRATIONS[:1], Migration("broken", broken)))
        assert schema_version(conn, path) == 1
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
        assert "half_done" not in tables
    finally:
        conn.close()


def test_a_garbage_file_is_reported_as_corrupt(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(StoreCorrupt, match="move the file aside") as info:
        Outbox.open(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_damaged_page_fails_the_integrity_check(path: Path) -> None:
    with Outbox.open(path) as box:
        for i in range(20):
            box.append_readings(readings(500, start=i * 500, devices=50))
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 20 * page
    data[10 * page + 100 : 12 * page] = os.urandom(2 * page - 100)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match=r"integrity check|damaged"):
        Outbox.open(path)


def test_another_sqlite_file_is_not_taken_for_an_outbox(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a Ponton outbox"):
        Outbox.open(path)


# Property: whatever the interleaving, the outbox accounts for every record.

_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"), st.sampled_from(["readings", "events", "alarms"]), st.integers(0, 25)
        ),
        st.tuples(
            st.just("ack"), st.sampled_from(["readings", "events", "alarms"]), st.floats(0, 1)
        ),
        st.tuples(st.just("reopen"), st.just(""), st.just(0)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, limit=st.integers(1, 40))
def test_any_interleaving_keeps_depth_and_seq_order(
    ops: list[tuple[str, str, float]], limit: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.db"
        waiting: dict[str, dict[int, Reading | Event]] = {s.name: {} for s in DEFAULT_STREAMS}
        last = dict.fromkeys(waiting, 0)
        box = Outbox.open(path)
        try:
            for op, stream, arg in ops:
                if op == "append":
                    n = int(arg)
                    start = last[stream]
                    new: list[Reading] | list[Event]
                    if stream == "readings":
                        new = readings(n, start=start)
                        rng = box.append_readings(new)
                    else:
                        new = events(n, start=start)
                        rng = box.append_events(new, stream=stream)
                    assert (rng.first, rng.last) == (start + 1, start + n)
                    waiting[stream].update(zip(range(start + 1, start + n + 1), new, strict=True))
                    last[stream] += n
                elif op == "ack":
                    up_to = int(arg * last[stream])
                    expected = [seq for seq in waiting[stream] if seq <= up_to]
                    assert box.ack(stream, up_to) == len(expected)
                    for seq in expected:
                        del waiting[stream][seq]
                else:
                    box.close()
                    box = Outbox.open(path)
                depths = {stat.name: stat.depth for stat in box.stats()}
                assert depths == {name: len(records) for name, records in waiting.items()}

            batches = drain(box, limit=limit)
            priorities = {spec.name: spec.priority for spec in DEFAULT_STREAMS}
            order = [priorities[batch.stream] for batch in batches]
            assert order == sorted(order)
            for name, records in waiting.items():
                got = [pair for batch in batches if batch.stream == name for pair in batch.records]
                assert got == sorted(records.items())
                assert all(len(b) <= limit for b in batches)
            assert all(stat.depth == 0 for stat in box.stats())
        finally:
            box.close()


def test_append_many_writes_every_stream_and_the_delivery_keys_in_one_transaction(
    outbox: Outbox, path: Path
) -> None:
    ranges = outbox.append_many(
        [("alarms", events(1, kind="alarm.raised")), ("events", events(2)),
         ("readings", readings(3))],
        deliveries=["up:0101:a", "up:0101:b"],
    )
    assert ranges == [SeqRange("alarms", 1, 1), SeqRange("events", 1, 2),
                      SeqRange("readings", 1, 3)]
    assert outbox.recent_deliveries() == ["up:0101:a", "up:0101:b"]
    outbox.close()
    with Outbox.open(path) as again:
        assert again.recent_deliveries(1) == ["up:0101:b"]
        assert [b.stream for b in drain(again)] == ["alarms", "events", "readings"]


def test_a_failed_append_many_stores_neither_records_nor_delivery_keys(outbox: Outbox) -> None:
    poisoned = Event("alarm.raised", "x", TS, {"value": math.nan})
    with pytest.raises(StoreError):
        outbox.append_many([("readings", readings(2)), ("alarms", [poisoned])],
                           deliveries=["up:0101:a"])
    assert outbox.recent_deliveries() == []
    assert outbox.next_batch() is None


def test_only_the_newest_delivery_keys_are_kept(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edge_agent.store.outbox.KEPT_DELIVERIES", 3)
    for i in range(5):
        outbox.append_many([], deliveries=[f"k{i}", f"k{i}"])  # a repeat is stored once
    assert outbox.recent_deliveries(10) == ["k2", "k3", "k4"]
