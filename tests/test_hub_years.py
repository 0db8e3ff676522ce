"""A year of data at the hub: monthly partitions, retention by whole months, rollups.

Readings go in through the hub's own ingest (``store_batch``) on real SQLite and PostgreSQL.
Every expected aggregate is computed here, in Python, from the readings the test pushed;
values are multiples of 1/4, so sums are exact whatever the order of addition.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, select

from edge_agent.codecs.batch import ReadingColumns
from edge_agent.records import Reading, now_ms
from simulators.hub_process import demo_engine
from sync_server import admin
from sync_server.db.migrate import head_revision, upgrade
from sync_server.db.partitions import month_start_ms, next_month_ms, partitions
from sync_server.db.schema import (
    gateways,
    rollup_marks,
    rollup_pending,
    rollups_daily,
    rollups_hourly,
    series,
    streams,
)
from sync_server.errors import Conflict
from sync_server.ingest import ClockPolicy, GatewayRef, store_batch
from sync_server.maintenance import LOCK_KEY, drop_expired, maintain
from sync_server.queries import Scope, time_series
from sync_server.retention import set_retention
from sync_server.rollups import DAY_MS, HOUR_MS, roll_up
from sync_server.wire import DecodedBatch

NOW = now_ms()
BEFORE = "0007_gateway_facts"
Key = tuple[str, str, str]  # gateway, device, quantity
#: count, sum, min, max, last_ts_ms, last_value
Aggregate = tuple[Any, ...]


@dataclass
class Store:
    """A migrated hub store with two territories, ``north`` (gw-n) and ``south`` (gw-s)."""

    engine: Engine
    url: str
    data_dir: Path
    refs: dict[str, GatewayRef] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    pushed: list[tuple[Key, int, float]] = field(default_factory=list)

    def push(self, gateway: str, records: list[Reading], first_seq: int | None = None) -> None:
        first = self.seqs.get(gateway, 0) + 1 if first_seq is None else first_seq
        batch = DecodedBatch("readings", "reading", first, ReadingColumns.of(first, records))
        store_batch(self.engine, self.refs[gateway], "readings", batch, received_ms=NOW,
                    sent_at_ms=None, backlog=None, clock=ClockPolicy(60_000))
        self.seqs[gateway] = max(self.seqs.get(gateway, 0), first + len(records) - 1)
        self.pushed += [((gateway, r.device, r.quantity), r.ts_ms, r.value) for r in records]

    def count(self, gateway: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(
                "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                f"JOIN gateways g ON g.id = s.gateway_id WHERE g.name = '{gateway}'").scalar_one())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield from _store(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
        return
    from tests.helpers.postgres import fresh_database, require_postgres

    require_postgres()
    with fresh_database("years") as url:
        yield from _store(tmp_path, url)


@pytest.fixture
def partitioned(tmp_path: Path) -> Iterator[Store]:
    """The store on PostgreSQL alone: SQLite has no partitions and drops no month."""
    from tests.helpers.postgres import fresh_database, require_postgres

    require_postgres()
    with fresh_database("years") as url:
        yield from _store(tmp_path, url)


def _store(data_dir: Path, url: str) -> Iterator[Store]:
    engine = demo_engine(data_dir, url)
    upgrade(engine)
    made = Store(engine, url, data_dir)
    for territory, gateway in (("north", "gw-n"), ("south", "gw-s")):
        admin.add_territory(engine, territory)
        admin.add_site(engine, territory, f"{territory}-site")
        admin.add_gateway(engine, territory, f"{territory}-site", gateway)
        with engine.connect() as conn:
            row = conn.execute(select(gateways).where(gateways.c.name == gateway)).one()
        made.refs[gateway] = GatewayRef(row.id, row.territory_id, row.name, row.incarnation)
    try:
        yield made
    finally:
        engine.dispose()


def _series(start_ms: int, count: int, step_ms: int, *, devices: int = 2,
            salt: int = 0) -> list[Reading]:
    """Readings of ``devices`` meters, timestamps shuffled a little, a NaN every 97th."""
    records = []
    for k in range(count):
        ts = start_ms + ((k * 7919 + salt) % count) * step_ms
        value = float("nan") if k % 97 == 13 else ((k * 31 + salt) % 4001 - 2000) / 4
        records.append(Reading(f"m{k % devices}", "energy", ts, value))
    return records


def _expected(pushed: list[tuple[Key, int, float]], unit: int) -> dict[tuple[Key, int], Aggregate]:
    """(count, sum, min, max, last_ts, last_value) per series and bucket, from the readings."""
    found: dict[tuple[Key, int], list[Any]] = {}
    for key, ts, value in pushed:
        if math.isnan(value):
            continue
        bucket = found.setdefault((key, ts // unit * unit), [0, 0.0, value, value, ts, value])
        bucket[0] += 1
        bucket[1] += value
        bucket[2], bucket[3] = min(bucket[2], value), max(bucket[3], value)
        if ts > bucket[4] or (ts == bucket[4] and value > bucket[5]):
            bucket[4], bucket[5] = ts, value
    return {k: tuple(v) for k, v in found.items()}


def _rollups(store: Store, unit: int) -> dict[tuple[Key, int], Aggregate]:
    table = rollups_daily if unit == DAY_MS else rollups_hourly
    query = (select(gateways.c.name, series.c.device, series.c.quantity, table.c.bucket_ms,
                    table.c["count"], table.c.sum, table.c.min, table.c.max,
                    table.c.last_ts_ms, table.c.last_value)
             .join_from(table, series, table.c.series_id == series.c.id)
             .join(gateways, series.c.gateway_id == gateways.c.id))
    with store.engine.connect() as conn:
        return {((g, d, q), b): tuple(rest) for g, d, q, b, *rest in conn.execute(query)}


def _chart(store: Store, key: Key, from_ms: int, to_ms: int, bucket_ms: int
           ) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return time_series(conn, Scope(None), gateway=key[0], device=key[1], quantity=key[2],
                           from_ms=from_ms, to_ms=to_ms, bucket_s=bucket_ms // 1000)


def _expected_chart(store: Store, key: Key, from_ms: int, to_ms: int, bucket_ms: int
                    ) -> list[dict[str, Any]]:
    inside = [(k, ts, v) for k, ts, v in store.pushed if k == key and from_ms <= ts < to_ms]
    return [{"bucket_ms": b, "avg": s / n, "min": lo, "max": hi, "count": n}
            for (_, b), (n, s, lo, hi, _, _) in sorted(_expected(inside, bucket_ms).items())]


def test_rollups_match_the_raw_aggregates_and_charts_read_them_exactly(store: Store) -> None:
    start = NOW - 40 * DAY_MS
    store.push("gw-n", _series(start, 3000, 1_111_111))
    store.push("gw-s", _series(start, 500, 5_555_555, devices=1, salt=5))
    year = (NOW // DAY_MS * DAY_MS - 365 * DAY_MS, NOW // DAY_MS * DAY_MS + DAY_MS)
    month = (NOW // (3 * HOUR_MS) * 3 * HOUR_MS - 30 * DAY_MS, NOW + 3 * HOUR_MS)
    key = ("gw-n", "m0", "energy")
    # Before any rollup the charts read the unrolled tail: already exact.
    assert _chart(store, key, *year, DAY_MS) == _expected_chart(store, key, *year, DAY_MS)

    report = roll_up(store.engine, chunk=700)  # several transactions per stream
    assert (report.streams, report.seqs) == (2, 3500)
    for unit in (HOUR_MS, DAY_MS):
        assert _rollups(store, unit) == _expected(store.pushed, unit)
    assert roll_up(store.engine).seqs == 0, "idempotent: nothing left to roll up"
    for frame, bucket in ((year, DAY_MS), (month, 3 * HOUR_MS), (month, HOUR_MS)):
        chart = _chart(store, key, *frame, bucket)
        assert chart == _expected_chart(store, key, *frame, bucket)
        assert len(chart) > 20
    # A range that does not start on a whole day reads its edges raw.
    edge = (year[0] + 5 * HOUR_MS + 17, NOW - 3 * DAY_MS - 1234)
    assert _chart(store, key, *edge, DAY_MS) == _expected_chart(store, key, *edge, DAY_MS)


def test_late_readings_are_rolled_up_whatever_their_time(store: Store) -> None:
    store.push("gw-n", _series(NOW - 5 * DAY_MS, 400, 600_000))
    roll_up(store.engine)
    # A gateway back from a week offline: new seqs, old timestamps, below any time mark.
    store.push("gw-n", _series(NOW - 12 * DAY_MS, 300, 1_000_000, salt=3))
    # A push that skips seqs, then a replay filling the hole below the acknowledged mark.
    skipped = store.seqs["gw-n"] + 1
    store.push("gw-n", _series(NOW - 2 * DAY_MS, 50, 60_000, salt=7), first_seq=skipped + 20)
    roll_up(store.engine)
    store.push("gw-n", _series(NOW - 20 * DAY_MS, 20, 60_000, salt=9), first_seq=skipped)
    with store.engine.connect() as conn:
        pending = conn.execute(select(rollup_pending.c.first_seq, rollup_pending.c.last_seq))
        assert [tuple(row) for row in pending] == [(skipped, skipped + 19)]
    key = ("gw-n", "m1", "energy")
    frame = (NOW // DAY_MS * DAY_MS - 30 * DAY_MS, NOW // DAY_MS * DAY_MS + DAY_MS)
    # Not rolled up yet, and below the mark: the chart still counts them.
    assert _chart(store, key, *frame, DAY_MS) == _expected_chart(store, key, *frame, DAY_MS)
    assert roll_up(store.engine).late_ranges == 1
    for unit in (HOUR_MS, DAY_MS):
        assert _rollups(store, unit) == _expected(store.pushed, unit)
    assert _chart(store, key, *frame, DAY_MS) == _expected_chart(store, key, *frame, DAY_MS)


def _cli_env(store: Store) -> dict[str, str]:
    env = {**os.environ, "PONTON_HUB_DATA_DIR": str(store.data_dir),
           "PONTON_HUB_DATABASE_URL": store.url, "COLUMNS": "200"}
    env.pop("PONTON_HUB_DEMO", None)
    return env


def test_a_maintenance_pass_killed_mid_run_resumes_without_counting_twice(store: Store) -> None:
    for batch in range(6):
        store.push("gw-n", _series(NOW - 30 * DAY_MS + batch * DAY_MS, 4000, 500_000,
                                   devices=3, salt=batch))
    total = store.seqs["gw-n"]
    # One reading a transaction: the pass takes far longer than the watch below needs to see
    # its first commits, however fast the machine.
    job = subprocess.Popen([sys.executable, "-m", "sync_server", "db", "maintain",
                            "--chunk", "1"], env=_cli_env(store), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    rolled = 0
    deadline = time.monotonic() + 60
    while rolled < 100 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.02)
        with store.engine.connect() as conn:
            rolled = int(conn.execute(select(rollup_marks.c.rolled_seq)).scalar() or 0)
    job.send_signal(signal.SIGKILL)
    job.communicate(timeout=20)
    assert job.returncode == -signal.SIGKILL, "the pass was killed, not finished"
    with store.engine.connect() as conn:
        rolled = int(conn.execute(select(rollup_marks.c.rolled_seq)).scalar_one())
        in_rollups = int(conn.exec_driver_sql("SELECT sum(count) FROM rollups_hourly")
                         .scalar_one())
    assert 0 < rolled < total
    # What was committed is exactly the finite readings up to the mark, no more, no less.
    assert in_rollups == sum(1 for _, _, v in store.pushed[:rolled] if not math.isnan(v))

    report = maintain(store.engine)
    assert report.rollups.seqs == total - rolled
    for unit in (HOUR_MS, DAY_MS):
        assert _rollups(store, unit) == _expected(store.pushed, unit)


def _month(back: int) -> int:
    start = month_start_ms(NOW)
    for _ in range(back):
        start = month_start_ms(start - 1)
    return start


def test_retention_drops_whole_months_once_every_territory_lets_them_go(store: Store) -> None:
    for back in (14, 13, 2):
        store.push("gw-n", _series(_month(back) + HOUR_MS, 200, 60_000, salt=back))
    store.push("gw-s", _series(_month(13) + DAY_MS, 100, 60_000, devices=1))
    store.push("gw-n", _series(NOW - 2 * HOUR_MS, 50, 60_000))
    store.push("gw-s", _series(NOW - 2 * HOUR_MS, 50, 60_000, devices=1))
    with store.engine.begin() as conn:
        set_retention(conn, store.refs["gw-n"].territory_id, 300)
    north, south = store.count("gw-n"), store.count("gw-s")

    report = maintain(store.engine)
    if store.engine.dialect.name == "sqlite":
        assert (report.partitioned, report.dropped) == (False, [])
        assert (store.count("gw-n"), store.count("gw-s")) == (north, south)
        return
    names = [p.name for p in partitions(store.engine.connect())]
    oldest = f"readings_{time.strftime('%Y%m', time.gmtime(_month(14) / 1000))}"
    assert report.dropped == [{"partition": oldest, "territories": ["north"]}]
    assert oldest not in names
    assert f"readings_{time.strftime('%Y%m', time.gmtime(NOW / 1000))}" in names
    # North lost its oldest month whole; south, sharing month -13 and keeping it, lost nothing.
    assert (store.count("gw-n"), store.count("gw-s")) == (north - 200, south)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM readings_partitions.readings_default"
                                    ).scalar_one() == 0, "the backfilled months got partitions"
    # The rollups outlive the raw readings: the year's chart still shows the dropped month.
    key = ("gw-n", "m0", "energy")
    frame = (_month(14), next_month_ms(_month(14)))
    assert _chart(store, key, *frame, DAY_MS) == _expected_chart(store, key, *frame, DAY_MS)

    with store.engine.begin() as conn:
        set_retention(conn, store.refs["gw-s"].territory_id, 30)
    assert [d["territories"] for d in maintain(store.engine).dropped] == [["north", "south"]]
    assert (store.count("gw-n"), store.count("gw-s")) == (north - 400, south - 100)


def test_a_month_with_readings_not_rolled_up_is_held_for_the_next_pass(partitioned: Store) -> None:
    store = partitioned
    store.push("gw-n", _series(_month(14) + HOUR_MS, 200, 60_000))
    store.push("gw-n", _series(NOW - 2 * HOUR_MS, 50, 60_000))
    with store.engine.begin() as conn:
        set_retention(conn, store.refs["gw-n"].territory_id, 300)
    maintain(store.engine, at_ms=NOW - 400 * DAY_MS)  # months created, all rolled up
    # A gateway back from months offline pushes into the expired month after the roll-up.
    late = _series(_month(14) + DAY_MS, 30, 60_000, salt=5)
    store.push("gw-n", late)
    oldest = f"readings_{time.strftime('%Y%m', time.gmtime(_month(14) / 1000))}"

    dropped, held = drop_expired(store.engine, NOW)
    assert (dropped, held) == ([], [{"partition": oldest,
                                     "reason": "readings not rolled up yet"}])
    assert store.count("gw-n") == 280, "nothing of the month went"

    report = maintain(store.engine)
    assert (report.dropped, report.held) == (
        [{"partition": oldest, "territories": ["north"]}], [])
    assert store.count("gw-n") == 50
    # The late readings reached the rollups before their month went.
    key = ("gw-n", "m0", "energy")
    frame = (_month(14), next_month_ms(_month(14)))
    assert _chart(store, key, *frame, DAY_MS) == _expected_chart(store, key, *frame, DAY_MS)


def test_a_replay_into_a_dropped_month_is_not_stored_or_counted_again(
        partitioned: Store) -> None:
    store = partitioned
    old = _series(_month(14) + HOUR_MS, 120, 60_000)
    store.push("gw-n", old)
    store.push("gw-n", _series(NOW - 2 * HOUR_MS, 50, 60_000))
    with store.engine.begin() as conn:
        set_retention(conn, store.refs["gw-n"].territory_id, 300)
    assert len(maintain(store.engine).dropped) == 1
    key = ("gw-n", "m1", "energy")
    frame = (_month(14), next_month_ms(_month(14)))
    before = _chart(store, key, *frame, DAY_MS)
    assert before == _expected_chart(store, key, *frame, DAY_MS)

    # The first batch again, as a gateway whose ack was lost resends it; then a new reading.
    store.push("gw-n", old, first_seq=1)
    store.push("gw-n", [Reading("m1", "energy", NOW - HOUR_MS, 2.5)])
    maintain(store.engine)
    assert store.count("gw-n") == 51, "only the new reading was stored"
    assert _chart(store, key, *frame, DAY_MS) == before, "the rollups did not count it twice"


def test_a_drop_waits_no_longer_than_its_lock_timeout_for_pushes(partitioned: Store) -> None:
    store = partitioned
    store.push("gw-n", _series(_month(14) + HOUR_MS, 20, 60_000))
    with store.engine.begin() as conn:
        set_retention(conn, store.refs["gw-n"].territory_id, 300)
    maintain(store.engine, at_ms=NOW - 400 * DAY_MS)
    with store.engine.connect() as pusher:  # a push in flight: it holds its lock on readings
        pusher.exec_driver_sql("LOCK TABLE readings IN ROW EXCLUSIVE MODE")
        dropped, held = drop_expired(store.engine, NOW)
        told = subprocess.run([sys.executable, "-m", "sync_server", "db", "maintain"],
                              env=_cli_env(store), capture_output=True, text=True, timeout=60,
                              check=False)
        pusher.rollback()
    assert dropped == []
    assert [entry["reason"] for entry in held] == ["pushes held the readings lock"]
    assert told.returncode == 0, told.stderr
    assert (f"kept {held[0]['partition']} for the next pass: pushes held the readings lock"
            in told.stdout)
    assert store.count("gw-n") == 20
    assert [d["partition"] for d in maintain(store.engine).dropped] == [held[0]["partition"]]


def _alembic(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", "sync_server:migrations")
    config.attributes["engine"] = engine
    return config


def _readings(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.exec_driver_sql(
            "SELECT stream_id, seq, series_id, ts_ms, value, quality FROM readings"))


def test_migrating_up_and_down_keeps_every_reading(tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    for url in _urls(tmp_path, request):
        engine = demo_engine(tmp_path, url)
        upgrade(engine, BEFORE)
        rows = [(1 + k % 3, k, k % 5, NOW - k * 3_600_000 * 7, None if k % 11 == 0 else k / 4,
                 k % 3) for k in range(1, 600)]
        rows.append((9, 1, 1, 86_400_000, 1.5, 1))  # a gateway's unset clock: January 1970
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO readings (stream_id, seq, series_id, ts_ms, value,"
                                 " quality) VALUES (%s, %s, %s, %s, %s, %s)"
                                 if engine.dialect.name == "postgresql" else
                                 "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)", rows)
        upgrade(engine)
        assert _readings(engine) == sorted(rows)
        with engine.connect() as conn:
            months = [p.name for p in partitions(conn)]
        if engine.dialect.name == "postgresql":
            # A partition per month holding readings and the months ahead, none in between.
            wanted = {month_start_ms(r[3]) for r in rows}
            start = month_start_ms(NOW)
            while start <= NOW + 62 * DAY_MS:
                wanted.add(start)
                start = next_month_ms(start)
            assert months == [*(f"readings_{time.strftime('%Y%m', time.gmtime(ms / 1000))}"
                                for ms in sorted(wanted)), "readings_default"]
        command.downgrade(_alembic(engine), BEFORE)
        assert _readings(engine) == sorted(rows)
        with engine.connect() as conn:
            assert partitions(conn) == []
        upgrade(engine)
        assert _readings(engine) == sorted(rows)
        engine.dispose()


def _urls(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'hub.db'}"
    from tests.helpers.postgres import fresh_database, postgres_available

    if postgres_available() is not None:
        return
    with fresh_database("years_migrate") as url:
        yield url


def test_the_commands_set_show_and_maintain(store: Store) -> None:
    store.push("gw-n", _series(NOW - DAY_MS, 100, 60_000))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sync_server", *args], env=_cli_env(store),
                              capture_output=True, text=True, timeout=60, check=False)

    done = cli("retention", "set", "north", "--days", "400")
    assert done.returncode == 0, done.stderr
    assert "north: readings kept at least 400 days" in done.stdout
    shown = json.loads(cli("retention", "show", "--json").stdout)
    assert [(r["territory"], r["keep_days"]) for r in shown] == [("north", 400), ("south", None)]
    assert "for ever" in cli("retention", "show").stdout
    for bad, message in ((("retention", "set", "north"), "give --days N or --forever"),
                         (("retention", "set", "north", "--days", "0"), "days must be between"),
                         (("retention", "set", "west", "--forever"), "no territory 'west'")):
        refused = cli(*bad)
        assert refused.returncode == 2, refused.stderr
        assert message in refused.stderr
    maintained = json.loads(cli("db", "maintain", "--json").stdout)
    assert maintained["rollups"]["seqs"] == 100
    assert maintained["partitioned"] == (store.engine.dialect.name == "postgresql")
    assert "rollups: 0 seqs of 0 streams" in cli("db", "maintain").stdout
    assert head_revision() == "0009_dropped_months"
    with store.engine.connect() as conn:
        assert conn.execute(select(streams.c.acked_seq)).scalar_one() == 100


def test_two_passes_never_run_at_once(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers by itself (BEGIN IMMEDIATE)")
    store.push("gw-n", _series(NOW - DAY_MS, 10, 60_000))
    with store.engine.connect() as holder:
        holder.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK_KEY})")
        with pytest.raises(Conflict, match="another maintenance pass is running"):
            maintain(store.engine)
        holder.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_KEY})")
    assert _rollups(store, HOUR_MS) == {}, "the refused pass did nothing"
    assert maintain(store.engine).rollups.seqs == 10
