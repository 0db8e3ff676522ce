"""The disk quota: oldest readings give way, events never do, and gap events tell the truth."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from edge_agent.records import Event, Reading
from edge_agent.store import Outbox

QUOTA = 2 * 1024 * 1024
TS = 1_795_564_800_000
BATCH = 2000


def poll_cycle(first_seq: int, n: int = BATCH) -> list[Reading]:
    """One poll of 200 meters x 10 quantities; the timestamp encodes the seq it will get."""
    return [
        Reading(f"meter-{i % 200:03d}", f"q{i % 10}", TS + seq, seq * 0.5)
        for i, seq in enumerate(range(first_seq, first_seq + n))
    ]


def access_events(first: int, n: int) -> list[Event]:
    return [
        Event("access.granted", "gate-1", TS + i, {"badge": f"{i:016x}", "zone": "pontoon-B"})
        for i in range(first, first + n)
    ]


def read_all(box: Outbox, stream: str) -> list[tuple[int, Reading | Event]]:
    batch = box.next_batch(stream=stream, limit=10**7)
    return [] if batch is None else batch.records


def gaps(box: Outbox) -> list[dict[str, object]]:
    return [
        record.attrs
        for _, record in read_all(box, "events")
        if isinstance(record, Event) and record.kind == "gap"
    ]


def used_and_file_bytes(path: Path) -> tuple[int, int]:
    """Bytes in use as the quota counts them (read through a second connection), file size."""
    conn = sqlite3.connect(path)
    try:
        page_count, freelist, page_size = conn.execute(
            "SELECT (SELECT page_count FROM pragma_page_count()),"
            " (SELECT freelist_count FROM pragma_freelist_count()),"
            " (SELECT page_size FROM pragma_page_size())"
        ).fetchone()
    finally:
        conn.close()
    return (page_count - freelist) * page_size, path.stat().st_size


def test_oldest_readings_give_way_events_stay_and_gaps_add_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    written = 0
    events_written = 0
    with caplog.at_level(logging.WARNING, logger="edge_agent.store"):
        with Outbox.open(path, quota_bytes=QUOTA) as box:
            for cycle in range(100):
                box.append_readings(poll_cycle(written + 1))
                written += BATCH
                box.append_events(access_events(events_written, 20))
                events_written += 20
                used, size = used_and_file_bytes(path)
                assert used <= QUOTA * 1.05, f"cycle {cycle}: {used} bytes in use"
                assert size <= QUOTA * 1.1, f"cycle {cycle}: file is {size} bytes"
        with Outbox.open(path, quota_bytes=QUOTA) as box:
            stats = {stat.name: stat for stat in box.stats()}
            readings, events = stats["readings"], stats["events"]
            kept = read_all(box, "readings")
            gap_attrs = gaps(box)
            all_events = read_all(box, "events")

    # Written == kept + evicted, and what is kept is the newest, contiguous to the last seq.
    assert readings.last_seq == written
    assert readings.evicted_total > written // 2
    assert readings.depth + readings.evicted_total == written
    assert [seq for seq, _ in kept] == list(range(readings.evicted_total + 1, written + 1))
    assert all(isinstance(r, Reading) and r.ts_ms == TS + seq for seq, r in kept)
    assert readings.oldest_ts_ms == TS + readings.evicted_total + 1

    # Every event is still there, in order, with the gap events between them.
    assert events.evicted_total == 0
    assert events.depth == events_written + len(gap_attrs)
    access = [r for _, r in all_events if isinstance(r, Event) and r.kind == "access.granted"]
    assert access == access_events(0, events_written)

    # The gap events state exactly what was dropped, oldest first, without holes.
    assert gap_attrs
    expected_first = 1
    for attrs in gap_attrs:
        first, last, count = attrs["first_seq"], attrs["last_seq"], attrs["count"]
        assert isinstance(first, int)
        assert isinstance(last, int)
        assert (attrs["stream"], attrs["reason"]) == ("readings", "disk_quota")
        assert first == expected_first
        assert count == last - first + 1
        assert (attrs["from_ts_ms"], attrs["to_ts_ms"]) == (TS + first, TS + last)
        expected_first = last + 1
    assert expected_first - 1 == readings.evicted_total
    assert sum(int(str(attrs["count"])) for attrs in gap_attrs) == readings.evicted_total

    # One warning per eviction, each saying what was dropped.
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == len(gap_attrs)
    first_gap = gap_attrs[0]
    assert f"seq {first_gap['first_seq']} to {first_gap['last_seq']}" in warnings[0].getMessage()


def test_acked_records_are_not_counted_as_evicted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox.open(path, quota_bytes=QUOTA) as box:
        written = 0
        for _ in range(10):
            box.append_readings(poll_cycle(written + 1))
            written += BATCH
        acked = 15_000
        assert box.ack("readings", acked) == acked
        while not gaps(box):
            box.append_readings(poll_cycle(written + 1))
            written += BATCH
        readings = {stat.name: stat for stat in box.stats()}["readings"]
        first_gap = gaps(box)[0]
        assert first_gap["first_seq"] == acked + 1
        assert readings.acked_seq == acked
        assert readings.evicted_total == sum(int(str(g["count"])) for g in gaps(box))
        assert acked + readings.evicted_total + readings.depth == written

        # The hub acknowledging seqs that were evicted meanwhile is harmless.
        evicted_up_to = acked + readings.evicted_total
        assert box.ack("readings", evicted_up_to) == 0
        assert box.ack("readings", written) == readings.depth
        after = {stat.name: stat for stat in box.stats()}["readings"]
        assert (after.depth, after.acked_seq, after.evicted_total) == (
            0,
            written,
            readings.evicted_total,
        )


def test_events_alone_over_quota_keep_being_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    quota = 256 * 1024
    with (
        caplog.at_level(logging.WARNING, logger="edge_agent.store"),
        Outbox.open(path, quota_bytes=quota) as box,
    ):
        for i in range(40):
            box.append_events(access_events(i * 100, 100))
            box.append_events(access_events(i, 1), stream="alarms")
        stats = {stat.name: stat for stat in box.stats()}
        assert stats["events"].depth == 4000
        assert stats["alarms"].depth == 40
        assert box.stats()[0].evicted_total == 0
        used, _ = used_and_file_bytes(path)
        assert used > quota
    over = [r for r in caplog.records if "never evicted" in r.getMessage()]
    assert len(over) == 1
    assert over[0].levelno == logging.WARNING


def test_a_lower_quota_shrinks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox.open(path, quota_bytes=QUOTA) as box:
        for i in range(60):
            box.append_readings(poll_cycle(i * BATCH + 1))
    assert path.stat().st_size > QUOTA * 0.9
    with Outbox.open(path, quota_bytes=QUOTA // 2) as box:
        box.append_readings(poll_cycle(60 * BATCH + 1, 10))
        used, size = used_and_file_bytes(path)
        assert used <= QUOTA // 2
        assert size <= QUOTA // 2 * 1.05
        assert box.stats()[2].last_seq == 60 * BATCH + 10
