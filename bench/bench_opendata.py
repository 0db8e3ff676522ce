"""The NGSI-LD car-park query of one territory on PostgreSQL: goal 50 ms (issue 10 §6).

Setup, on a fresh PostgreSQL database migrated to head: ``--territories`` territories (20)
sharing ``--gateways`` gateways (500) and ``--devices`` series (20,000 besides the car
parks); territory ``toulon`` counts ``--car-parks`` car parks (35, Toulon's number) on its
gateways, each with an occupancy reading every minute and a capacity reading a day over
``--days`` days (30: 1.5 million readings), a full/available event pair a day, and its
public details set; the other series hold ``--readings`` readings (4 million) spread over
the same days. Every row goes in by COPY, then ANALYZE. Generation is bounded by those
numbers; the defaults take about a minute here.

Measured, through a real ``sync-server serve`` process over loopback HTTP (client wall time,
so an upper bound of the server time), ``--requests`` times each (50, after 5 untimed):

- baseline: ``GET /v1/health`` (HTTP and one database round trip);
- baseline: ``GET /v1/car-parks`` with toulon's operator token (the same car-park query,
  operators' JSON);
- ``GET /ngsi-ld/v1/entities?type=OffStreetParking`` normalized, then with
  ``options=keyValues`` (header ``NGSILD-Tenant: toulon``);
- ``GET /v1/open/toulon/car-parks.csv`` (the national file);
- in process, without HTTP: the entities read and rendered (``entities`` + ``render`` +
  JSON), the server's share of the NGSI-LD answer.

Run: ``.venv/bin/python bench/bench_opendata.py`` (PostgreSQL at 127.0.0.1:5432, trust
authentication, as CI has it).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import Engine, insert, select

from bench.scratch_database import scratch_database
from edge_agent.records import now_ms
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.db.engine import reading
from sync_server.db.migrate import upgrade
from sync_server.db.schema import gateways, series, sites, streams, territories
from sync_server.opendata import datasets
from sync_server.opendata.ngsi import entities, render
from sync_server.opendata.places import PlaceUpdate, set_place

MINUTE_MS = 60_000
DAY_MS = 86_400_000
_NOISE = ("voltage", "current", "active_power", "temperature", "humidity")





def _copy(dsn: str, table: str, columns: str, rows: Iterator[str]) -> int:
    """COPY ``rows`` (tab-separated lines) into ``table``; how many went in."""
    count = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor, cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in rows:
            buffer.write(line)
            count += 1
            if count % 50_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    return count


def _registry(engine: Engine, args: argparse.Namespace) -> dict[str, list[tuple[int, int]]]:
    """Territories, one site each, gateways spread over them, one reading and one event
    stream per gateway; territory -> [(gateway id, reading stream id, event stream id)]."""
    names = ["toulon", *(f"territory-{k:02d}" for k in range(1, args.territories))]
    for name in names:
        admin.add_territory(engine, name)
        admin.add_site(engine, name, f"{name}-site")
    created = now_ms()
    with engine.begin() as conn:
        ids = dict(conn.execute(select(territories.c.name, territories.c.id)).tuples().all())
        site_of = dict(conn.execute(select(sites.c.territory_id, sites.c.id)).tuples().all())
        conn.execute(insert(gateways), [
            {"territory_id": ids[names[k % len(names)]],
             "site_id": site_of[ids[names[k % len(names)]]], "name": f"gw-{k:03d}",
             "created_ms": created} for k in range(args.gateways)])
        rows = conn.execute(select(gateways.c.id, gateways.c.territory_id)).all()
        conn.execute(insert(streams), [
            {"territory_id": tid, "gateway_id": gid, "incarnation": 1, "name": name,
             "record_type": kind, "acked_seq": 0}
            for gid, tid in rows for name, kind in (("readings", "reading"),
                                                    ("events", "event"))])
        stream_ids = {(gid, name): sid for sid, gid, name in conn.execute(
            select(streams.c.id, streams.c.gateway_id, streams.c.name))}
    by_territory: dict[str, list[tuple[int, int]]] = {name: [] for name in names}
    name_of = {tid: name for name, tid in ids.items()}
    for gid, tid in rows:
        by_territory[name_of[tid]].append((gid, stream_ids[(gid, "readings")]))
    return by_territory


def build(engine: Engine, dsn: str, args: argparse.Namespace) -> None:
    """Every row of the setup; prints what went in and how long it took."""
    started = time.perf_counter()
    world = _registry(engine, args)
    rng = random.Random(7)
    end = now_ms() - MINUTE_MS
    start = end - args.days * DAY_MS
    toulon = world["toulon"]
    with engine.begin() as conn:
        territory_ids = dict(
            conn.execute(select(territories.c.name, territories.c.id)).tuples().all())
    parks = [(toulon[k % len(toulon)], f"P{k:02d}") for k in range(args.car_parks)]
    park_series = [(gid, sid, device, quantity) for (gid, sid), device in parks
                   for quantity in ("parking_occupancy", "parking_capacity")]
    all_gateways = [(name, gid, sid) for name, pairs in world.items() for gid, sid in pairs]
    noise_series = [(all_gateways[k % len(all_gateways)], f"dev-{k:05d}",
                     _NOISE[k % len(_NOISE)]) for k in range(args.devices)]
    series_rows = [f"{territory_ids['toulon']}\t{gid}\t{device}\t{quantity}\n"
                   for gid, _, device, quantity in park_series]
    series_rows += [f"{territory_ids[name]}\t{gid}\t{device}\t{quantity}\n"
                    for (name, gid, _), device, quantity in noise_series]
    _copy(dsn, "series", "territory_id, gateway_id, device, quantity", iter(series_rows))
    with engine.connect() as conn:
        series_id = {(gid, device, quantity): sid for sid, gid, device, quantity in
                     conn.execute(select(series.c.id, series.c.gateway_id, series.c.device,
                                         series.c.quantity))}
    seqs: dict[int, int] = {}

    def seq(stream: int) -> int:
        seqs[stream] = seqs.get(stream, 0) + 1
        return seqs[stream]

    def park_readings() -> Iterator[str]:
        for (gid, stream), device in parks:
            capacity = rng.choice((120, 250, 400, 650))
            occupancy_id = series_id[(gid, device, "parking_occupancy")]
            capacity_id = series_id[(gid, device, "parking_capacity")]
            for ts in range(start, end, DAY_MS):
                yield f"{stream}\t{seq(stream)}\t{capacity_id}\t{ts}\t{capacity}\t0\n"
            for ts in range(start, end, MINUTE_MS):
                value = rng.randint(0, capacity)
                yield f"{stream}\t{seq(stream)}\t{occupancy_id}\t{ts}\t{value}\t0\n"

    def noise_readings() -> Iterator[str]:
        step = max(1, args.days * DAY_MS * len(noise_series) // max(1, args.readings))
        per_series = max(1, args.readings // max(1, len(noise_series)))
        for (_, gid, stream), device, quantity in noise_series:
            sid = series_id[(gid, device, quantity)]
            for k in range(per_series):
                yield (f"{stream}\t{seq(stream)}\t{sid}\t{start + k * step % (end - start)}"
                       f"\t{rng.uniform(0, 400):.1f}\t0\n")

    columns = "stream_id, seq, series_id, ts_ms, value, quality"
    parked = _copy(dsn, "readings", columns, park_readings())
    noise = _copy(dsn, "readings", columns, noise_readings())

    def park_events() -> Iterator[str]:
        with engine.connect() as conn:
            events_stream = dict(conn.execute(select(streams.c.gateway_id, streams.c.id)
                                              .where(streams.c.name == "events")).tuples().all())
        for (gid, _), device in parks:
            stream = events_stream[gid]
            for ts in range(start, end, DAY_MS):
                for kind, at in (("car_park.full", ts + 9 * 3_600_000),
                                 ("car_park.available", ts + 11 * 3_600_000)):
                    yield (f"{stream}\t{seq(stream)}\t{territory_ids['toulon']}\t{gid}\t{kind}"
                           f"\t{device}\t{at}\t{{}}\n")

    _copy(dsn, "events", "stream_id, seq, territory_id, gateway_id, kind, device, ts_ms, attrs",
          park_events())
    toulon_id = territory_ids["toulon"]
    with engine.connect() as conn:
        gateway_name = dict(conn.execute(select(gateways.c.id, gateways.c.name)).tuples().all())
    for k, ((gid, _), device) in enumerate(parks):
        set_place(engine, toulon_id, gateway_name[gid], device, PlaceUpdate(
            name=f"PARKING {device}", longitude=5.92 + k / 1000, latitude=43.12 + k / 1000,
            national_id=f"83137-P-{k + 1:03d}", insee="83137", users="tous", free=False,
            max_height="190", siret="21830137600016"))
    for name in ("car-parks", "car-parks-live"):
        datasets.enable(engine, toulon_id, name, by="bench")
    with psycopg.connect(dsn, autocommit=True) as analyze:
        analyze.execute("ANALYZE")
    print(f"setup: {len(world)} territories, {args.gateways} gateways, "
          f"{len(series_rows):,} series, {parked:,} car-park readings, {noise:,} other "
          f"readings by COPY in {time.perf_counter() - started:.0f} s")


def measure(label: str, call: Callable[[], bytes], requests: int) -> float:
    """Median and p95 wall time of ``call`` in ms (after 5 untimed calls); prints them."""
    for _ in range(5):
        call()
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        body = call()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    median = statistics.median(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"{label:<48} median {median:6.1f} ms   p95 {p95:6.1f} ms   ({len(body):,} bytes)")
    return median


def _body(answer: httpx.Response) -> bytes:
    answer.raise_for_status()
    return answer.content


def _in_process(engine: Engine, territory: int) -> bytes:
    with reading(engine) as conn:
        found = entities(conn, territory, "OffStreetParking")
    return json.dumps([render(e, key_values=False, context=None) for e in found]).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--territories", type=int, default=20)
    parser.add_argument("--gateways", type=int, default=500)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--car-parks", type=int, default=35)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--readings", type=int, default=4_000_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with scratch_database("opendata") as db, tempfile.TemporaryDirectory() as tmp:
        # The hub's keys in its data directory, as `sync-server keys init` makes them: a
        # territory's badge key is sealed at creation, and the hub spawned below reads it.
        engine = demo_engine(Path(tmp), db.url)
        upgrade(engine)
        build(engine, db.dsn, args)
        token = admin.add_operator_token(engine, "toulon", "bench")
        base, process = spawn_hub(Path(tmp), db.url)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                tenant = {"NGSILD-Tenant": "toulon"}
                measure("baseline: GET /v1/health", lambda: _body(client.get("/v1/health")),
                        args.requests)
                measure("baseline: GET /v1/car-parks (operator)", lambda: _body(client.get(
                    "/v1/car-parks", headers={"Authorization": f"Bearer {token}"})),
                    args.requests)
                ngsi = measure("NGSI-LD OffStreetParking, normalized", lambda: _body(
                    client.get("/ngsi-ld/v1/entities", params={"type": "OffStreetParking"},
                               headers=tenant)), args.requests)
                measure("NGSI-LD OffStreetParking, keyValues", lambda: _body(client.get(
                    "/ngsi-ld/v1/entities",
                    params={"type": "OffStreetParking", "options": "keyValues"},
                    headers=tenant)), args.requests)
                measure("GET /v1/open/toulon/car-parks.csv", lambda: _body(client.get(
                    "/v1/open/toulon/car-parks.csv")), args.requests)
                with reading(engine) as conn:
                    toulon = admin.territory_id(conn, "toulon")
                measure("in process: entities read and rendered",
                        lambda: _in_process(engine, toulon), args.requests)
                count = len(client.get("/ngsi-ld/v1/entities",
                                       params={"type": "OffStreetParking"},
                                       headers=tenant).json())
            print(f"{count} entities; goal 50 ms: {'met' if ngsi <= 50 else 'missed'}")
        finally:
            stop_process(process)
            engine.dispose()


if __name__ == "__main__":
    main()
