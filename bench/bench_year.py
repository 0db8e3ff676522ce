"""A year of data on PostgreSQL: load by COPY, roll up, chart a year, ingest beside partitions.

1. Load: N readings (default 1 million) over the last 365 days from ``--gateways`` gateways of
   2 meters (default 1: each meter about one reading a minute for a year), into the
   partitioned ``readings`` by COPY; the streams' marks set as ingest would. Printed: the
   count loaded and the rate.
2. Roll up: one ``maintain`` pass over it all (hourly and daily rollups), timed.
3. Year chart of one series (365 daily buckets), as the dashboard asks it
   (``queries.time_series``: rollups plus the unrolled tail), against the same buckets
   computed from the raw readings (``series_buckets.raw_buckets``); the month chart
   (240 three-hour buckets) likewise. Median of ``--runs`` × 5 queries each. Then again
   with 10,000 readings pushed through ingest and not rolled up yet (the chart reads them raw
   by their seqs).
4. Ingest: ``ingest.store_batch`` (the hub's own path: checks, stream lock, COPY) of batches of
   1,000 readings, into a database at this schema (partitioned) and one at the previous
   revision (0007: today's plain table), alternating which goes first; median over
   ``--runs`` runs of ``--ingest`` readings each. The goal is partitioned ≥ 0.9 × plain.

Scratch databases ``ponton_bench_{year,plain,part}_*`` are created on the local PostgreSQL
and dropped at exit.
Run: .venv/bin/python bench/bench_year.py [--readings 1000000] [--runs 5] [--ingest 100000]
[--gateways 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, select, update

from bench.scratch_database import scratch_database
from edge_agent.codecs.batch import ReadingColumns
from edge_agent.records import Reading, now_ms
from simulators.hub_process import demo_engine
from sync_server import admin
from sync_server.db.migrate import upgrade
from sync_server.db.partitions import create_months
from sync_server.db.schema import gateways, series, streams
from sync_server.ingest import ClockPolicy, GatewayRef, store_batch
from sync_server.maintenance import maintain
from sync_server.queries import Scope, time_series
from sync_server.rollups import DAY_MS
from sync_server.series_buckets import raw_buckets
from sync_server.wire import DecodedBatch

_METERS = 2
_BATCH = 1000





def gateway_refs(engine: Engine, territory: str, count: int) -> list[GatewayRef]:
    """A territory with ``count`` gateways, as ingest sees its callers."""
    admin.add_territory(engine, territory)
    admin.add_site(engine, territory, "site")
    refs = []
    for k in range(count):
        admin.add_gateway(engine, territory, "site", f"gw{k}")
        with engine.connect() as conn:
            row = conn.execute(select(gateways).where(gateways.c.name == f"gw{k}")).one()
        refs.append(GatewayRef(row.id, row.territory_id, row.name, row.incarnation))
    return refs


def load_year(engine: Engine, refs: list[GatewayRef], total: int, now: int) -> float:
    """COPY ``total`` readings over the last year; readings per second."""
    per_gateway = total // len(refs)
    for ref in refs:  # one small batch per gateway makes its stream and series
        push(engine, ref, 1, [Reading(f"m{m}", "energy", now - 365 * DAY_MS + m, 0.0)
                              for m in range(_METERS)])
    with engine.connect() as conn:
        stream_of = dict(conn.execute(select(streams.c.gateway_id, streams.c.id)).tuples().all())
        series_of = {(gid, device): sid for gid, device, sid in conn.execute(
            select(series.c.gateway_id, series.c.device, series.c.id))}
    step = 365 * DAY_MS // (per_gateway // _METERS)
    with engine.begin() as conn:
        create_months(conn, now - 366 * DAY_MS, now)
    raw = engine.raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.Connection)
    start = time.perf_counter()
    with driver.cursor() as cursor:
        for ref in refs:
            sid = stream_of[ref.id]
            with cursor.copy("COPY readings (stream_id, seq, series_id, ts_ms, value, quality) "
                             "FROM STDIN") as copy:
                for k in range(per_gateway):
                    meter = k % _METERS
                    copy.write_row((sid, _METERS + 1 + k, series_of[(ref.id, f"m{meter}")],
                                    now - 365 * DAY_MS + (k // _METERS) * step + meter,
                                    float(k % 1000) / 4, 0))
    raw.commit()
    elapsed = time.perf_counter() - start
    raw.close()
    with engine.begin() as conn:
        conn.execute(update(streams).values(acked_seq=_METERS + per_gateway))
        conn.exec_driver_sql("ANALYZE readings")
    return per_gateway * len(refs) / elapsed


def push(engine: Engine, ref: GatewayRef, first: int, records: list[Reading]) -> None:
    """One batch through the hub's ingest."""
    batch = DecodedBatch("readings", "reading", first, ReadingColumns.of(first, records))
    store_batch(engine, ref, "readings", batch, received_ms=now_ms(), sent_at_ms=None,
                backlog=None, clock=ClockPolicy(60_000))


def median_ms(query: Callable[[], object], times: int) -> float:
    """Median wall time of ``query`` in ms (after one warm-up)."""
    query()
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        query()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def charts(engine: Engine, refs: list[GatewayRef], runs: int, now: int, label: str) -> None:
    """Year and month charts of one series: rollups against raw."""
    with engine.connect() as conn:
        sid = conn.execute(select(series.c.id).where(series.c.gateway_id == refs[0].id,
                                                     series.c.device == "m0")).scalar_one()
        readings = conn.exec_driver_sql(
            f"SELECT count(*) FROM readings WHERE series_id = {sid}").scalar_one()
        for name, span_days, bucket_ms in (("year", 365, DAY_MS), ("month", 30, 3 * 3_600_000)):
            to_ms = (now // bucket_ms + 1) * bucket_ms
            from_ms = to_ms - span_days * DAY_MS

            def rolled(f: int = from_ms, t: int = to_ms, b: int = bucket_ms
                       ) -> list[dict[str, Any]]:
                return time_series(conn, Scope(None), gateway=refs[0].name, device="m0",
                                   quantity="energy", from_ms=f, to_ms=t, bucket_s=b // 1000)

            def raw(f: int = from_ms, t: int = to_ms, b: int = bucket_ms) -> object:
                return raw_buckets(conn, [sid], f, t, b)

            fast, slow = median_ms(rolled, runs * 5), median_ms(raw, runs * 5)
            print(f"{name} chart{label} of one series ({readings:,} readings, "
                  f"{len(rolled())} buckets): rollups {fast:.1f} ms, raw {slow:.1f} ms "
                  f"({slow / fast:.1f}x)")


def ingest_rates(plain: Engine, partitioned: Engine, readings: int, runs: int) -> None:
    """Readings per second through store_batch: partitioned against today's plain table."""
    refs = {"plain": gateway_refs(plain, "bench", 1)[0],
            "partitioned": gateway_refs(partitioned, "bench", 1)[0]}
    engines = {"plain": plain, "partitioned": partitioned}
    seqs = {"plain": 0, "partitioned": 0}
    rates: dict[str, list[float]] = {"plain": [], "partitioned": []}
    base = now_ms() - 3_600_000
    for run in range(runs):
        for name in (("plain", "partitioned") if run % 2 == 0 else ("partitioned", "plain")):
            batches = []
            for b in range(readings // _BATCH):
                batches.append([Reading(f"m{k % 20}", "energy", base + (b * _BATCH + k) * 3,
                                        float(k)) for k in range(_BATCH)])
            start = time.perf_counter()
            for batch in batches:
                push(engines[name], refs[name], seqs[name] + 1, batch)
                seqs[name] += len(batch)
            rates[name].append(readings / (time.perf_counter() - start))
    plain_rate = statistics.median(rates["plain"])
    part_rate = statistics.median(rates["partitioned"])
    print(f"ingest (store_batch, {_BATCH} readings a batch, median of {runs} runs of "
          f"{readings:,}): plain {plain_rate:,.0f}/s, partitioned {part_rate:,.0f}/s "
          f"(ratio {part_rate / plain_rate:.2f}, goal >= 0.90)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ingest", type=int, default=100_000)
    parser.add_argument("--gateways", type=int, default=1,
                        help="gateways of 2 meters sharing the readings (1: about one reading "
                             "a minute per meter for a million)")
    args = parser.parse_args()
    now = now_ms()
    with tempfile.TemporaryDirectory() as tmp, scratch_database("year") as year_db, \
            scratch_database("plain") as plain_db, scratch_database("part") as part_db:
        engines = []
        for url, revision, sub in ((year_db.url, "head", "a"),
                                   (plain_db.url, "0007_gateway_facts", "b"),
                                   (part_db.url, "head", "c")):
            (Path(tmp) / sub).mkdir()
            engine = demo_engine(Path(tmp) / sub, url)
            upgrade(engine, revision)
            engines.append(engine)
        year, plain, partitioned = engines
        refs = gateway_refs(year, "year", args.gateways)
        rate = load_year(year, refs, args.readings, now)
        with year.connect() as conn:
            count = conn.exec_driver_sql("SELECT count(*) FROM readings").scalar_one()
        print(f"loaded {count:,} readings by COPY over 365 days into monthly partitions "
              f"({rate:,.0f}/s)")
        start = time.perf_counter()
        report = maintain(year)
        print(f"maintain: rolled up {report.rollups.seqs:,} seqs of {report.rollups.streams} "
              f"streams in {time.perf_counter() - start:.1f} s")
        charts(year, refs, args.runs, now, "")
        with year.connect() as conn:
            acked = conn.execute(select(streams.c.acked_seq).where(
                streams.c.gateway_id == refs[0].id)).scalar_one()
        for b in range(10):  # the last minutes' pushes, not rolled up yet
            push(year, refs[0], acked + 1 + b * _BATCH,
                 [Reading(f"m{k % _METERS}", "energy", now - 600_000 + b * _BATCH + k, 1.0)
                  for k in range(_BATCH)])
        charts(year, refs, args.runs, now, " with 10,000 readings not rolled up yet")
        ingest_rates(plain, partitioned, args.ingest, args.runs)
        for engine in engines:
            engine.dispose()


if __name__ == "__main__":
    main()
