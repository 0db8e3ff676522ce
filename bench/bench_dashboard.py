"""The dashboard under load on PostgreSQL: issue 10 §6 (overview, 30-day chart, live streams).

Setup, on a scratch PostgreSQL database (created, migrated, dropped at exit): one territory,
``--gateways`` gateways (500) of which ``--pushers`` (10) are enrolled over HTTP, and
``--devices`` series (20,000: one quantity per device, spread over the gateways), whose
readings go in by COPY over 30 days: the charted device (``dev-00000`` on ``gw-000``) one a
minute (43,200, denser than the issue's 50 million over 20,000 series), the others
``--readings`` (5 million) spread evenly, loading stopped after ``--load-s`` seconds (120)
if not done (the count is printed). ANALYZE, then EXPLAIN of the overview's and the chart's
queries are printed: whether they read ``readings`` at all and through which index decides
what a bigger table costs them.

Measured against a real ``sync-server serve`` process on 127.0.0.1 (client wall time, an
upper bound of the server time), signed in with real sessions (one-time links):

- ``GET /ui/`` (the overview) and, as baseline, ``GET /v1/health`` (HTTP and one database
  round trip): ``--requests`` times each (50, after 5 untimed), p50 and p95;
- the device page over a month (``?range=month``: 240 three-hour buckets) and, as baseline,
  ``GET /v1/series`` with the same range and buckets (the same SQL, JSON instead of SVG);
- ``--streams`` dashboards (200) open on SSE, each with its own session: half on the live
  devices table of a pushing gateway's page, a quarter on the overview's, a quarter on the
  alarms', while the pushers send ``--rate`` readings/s (1,000) through the real push route
  (agent encoding and zstd) for ``--seconds`` (20). Each push's last reading is a marker
  value; the time from sending a push to a stream of its gateway showing the marker is the
  update's latency (p50, p99; a marker superseded before the stream's next round counts
  when a newer one shows, and one never reached within the run as missed). The
  hub's CPU over the phase (psutil, % of one core), and the same with no stream open as
  baseline (the pushes alone).

Medians over ``--runs`` (3). Every loop is bounded by those numbers.

Run: ``.venv/bin/python bench/bench_dashboard.py`` (PostgreSQL at 127.0.0.1:5432, trust
authentication) [--readings 5000000] [--load-s 120] [--runs 3] [--streams 200]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
from sqlalchemy import Engine, insert, select

from bench.scratch_database import scratch_database
from edge_agent.codecs.batch import READINGS_TYPE, encode_readings
from edge_agent.codecs.compression import compress
from edge_agent.records import Reading, now_ms
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.db.migrate import upgrade
from sync_server.db.schema import gateways, series, sites, streams, territories
from sync_server.ui.accounts import add_user, new_signin_link

TERRITORY = "bench"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
MONTH_MS = 30 * DAY_MS
CHART = ("gw-000", "dev-00000", "temperature")
_MARKER = re.compile(r'data-quantity="marker"><th>marker</th><td class="value">([^<]+)<')





def _copy(dsn: str, table: str, columns: str, rows: Iterator[str], deadline: float) -> int:
    """COPY ``rows`` into ``table`` until they end or ``deadline``; how many went in."""
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
                if time.monotonic() > deadline:
                    break
        copy.write(buffer.getvalue())
    return count


def build(engine: Engine, args: argparse.Namespace) -> int:
    """The territory and its gateways but the pushers (enrolled later): its id."""
    admin.add_territory(engine, TERRITORY)
    admin.add_site(engine, TERRITORY, "port")
    created = now_ms()
    with engine.begin() as conn:
        territory = conn.execute(select(territories.c.id)).scalar_one()
        site = conn.execute(select(sites.c.id)).scalar_one()
        conn.execute(insert(gateways), [
            {"territory_id": territory, "site_id": site, "name": f"gw-{k:03d}",
             "created_ms": created} for k in range(args.pushers, args.gateways)])
    return int(territory)


def fill(engine: Engine, dsn: str, args: argparse.Namespace, territory: int) -> int:
    """Series and readings by COPY (after the pushers are enrolled): readings stored."""
    with engine.begin() as conn:
        conn.execute(insert(streams), [
            {"territory_id": territory, "gateway_id": gid, "incarnation": 0,
             "name": "history", "record_type": "reading", "acked_seq": 0}
            for gid in conn.execute(select(gateways.c.id)).scalars()])
        gateway_ids = [gid for (gid,) in conn.execute(
            select(gateways.c.id).order_by(gateways.c.name))]
        stream_of = dict(conn.execute(select(streams.c.gateway_id, streams.c.id)
                                      .where(streams.c.name == "history")).tuples().all())
    deadline = time.monotonic() + args.load_s
    _copy(dsn, "series", "territory_id, gateway_id, device, quantity", (
        f"{territory}\t{gateway_ids[k % len(gateway_ids)]}\tdev-{k:05d}\ttemperature\n"
        for k in range(args.devices)), deadline)
    with engine.connect() as conn:
        ids = [(sid, gid) for sid, gid in conn.execute(
            select(series.c.id, series.c.gateway_id).order_by(series.c.device))]
    rng = random.Random(7)
    end = now_ms() - MINUTE_MS
    start = end - MONTH_MS

    def rows() -> Iterator[str]:
        chart_id, chart_gateway = ids[0]
        stream = stream_of[chart_gateway]
        for seq, ts in enumerate(range(start, end, MINUTE_MS), start=1):
            yield f"{stream}\t{seq}\t{chart_id}\t{ts}\t{rng.uniform(5, 25):.2f}\t0\n"
        per_series = max(1, args.readings // len(ids))
        step = MONTH_MS // per_series
        for k in range(per_series):  # time-major: a stopped load still covers every series
            for sid, gid in ids[1:]:
                yield (f"{stream_of[gid]}\t{1_000_000 + k * len(ids) + sid}\t{sid}"
                       f"\t{start + k * step}\t{rng.uniform(5, 25):.2f}\t0\n")

    stored = _copy(dsn, "readings", "stream_id, seq, series_id, ts_ms, value, quality",
                   rows(), deadline)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return stored


def explain(dsn: str, label: str, sql: str) -> None:
    """Print the plan of ``sql`` (the hub's query, as PostgreSQL runs it)."""
    with psycopg.connect(dsn) as conn:
        plan = [row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]
    print(f"  EXPLAIN {label}:")
    for line in plan:
        print(f"    {line}")


def enroll(engine: Engine, url: str, count: int) -> dict[str, str]:
    """The pushing gateways, registered and enrolled over HTTP: name -> token."""
    tokens = {}
    for k in range(count):
        code = admin.add_gateway(engine, TERRITORY, "port", f"gw-{k:03d}").code
        answer = httpx.post(f"{url}/v1/enroll", json={"code": code}, timeout=30)
        answer.raise_for_status()
        tokens[answer.json()["gateway"]] = answer.json()["token"]
    return tokens


def sessions(engine: Engine, url: str, count: int) -> list[httpx.Cookies]:
    """``count`` signed-in sessions of one operator, each through a one-time link."""
    add_user(engine, "bench-operator", "operator", TERRITORY, secrets.token_urlsafe(16))
    jars = []
    for _ in range(count):
        code = new_signin_link(engine, "bench-operator", 600)
        with httpx.Client(base_url=url, timeout=30) as client:
            answer = client.get(f"/ui/signin/link/{code}")
            if answer.status_code != 303 or "ponton_session" not in client.cookies:
                raise RuntimeError(f"sign-in link answered {answer.status_code}")
            jars.append(httpx.Cookies({"ponton_session": client.cookies["ponton_session"]}))
    return jars


def timed_gets(client: httpx.Client, path: str, requests: int) -> list[float]:
    """Milliseconds of each of ``requests`` GETs of ``path``, after 5 untimed."""
    spent = []
    for number in range(5 + requests):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        if number >= 5:
            spent.append((time.perf_counter() - started) * 1000)
    return spent


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank) of ``values``; inf when empty."""
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Phase:
    """What one live phase saw."""

    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0
    events: int = 0
    cpu_percent: float = 0.0
    pushed: int = 0


async def _watch(client: httpx.AsyncClient, path: str, gateway: str | None,
                 seen: dict[tuple[str, int], float], phase: Phase) -> None:
    """Read one SSE stream until cancelled; record when each marker first shows."""
    async with client.stream("GET", path) as response:
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                phase.events += 1
            if gateway is not None and (found := _MARKER.search(line)):
                marker = int(re.sub(r"\D", "", found.group(1)))
                seen.setdefault((gateway, marker), time.perf_counter())


async def _push(client: httpx.AsyncClient, gateway: str, token: str, seconds: int,
                per_push: int, sent: dict[tuple[str, int], float], first_seq: int,
                phase: Phase) -> int:
    """One push a second for ``seconds``: ``per_push`` readings, the last one the marker
    (the stream's sequence number of the push's first reading: unique across phases)."""
    seq = first_seq
    for _ in range(seconds):
        tick = time.perf_counter()
        at = now_ms()
        chunk = [Reading(f"dev-{gateway}-{k % 40:02d}", "temperature", at - per_push + k,
                         20.0 + k % 7) for k in range(per_push - 1)]
        chunk.append(Reading("marker", "marker", at, float(seq)))
        body = compress(encode_readings(seq, chunk), "zstd")
        sent[(gateway, seq)] = time.perf_counter()
        answer = await client.post(
            "/v1/gateway/streams/readings/batches", content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": READINGS_TYPE,
                     "Content-Encoding": "zstd", "X-Ponton-Sent-At": str(at),
                     "X-Ponton-Backlog": "0"})
        answer.raise_for_status()
        phase.pushed += per_push
        seq += per_push
        await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    return seq


async def live_phase(url: str, hub: psutil.Process, tokens: dict[str, str],
                     jars: list[httpx.Cookies], args: argparse.Namespace,
                     seqs: dict[str, int]) -> Phase:
    """Streams open (none for the baseline), pushes for ``args.seconds``: the figures."""
    phase = Phase()
    sent: dict[tuple[str, int], float] = {}
    seen: dict[tuple[str, int], float] = {}
    pushers = sorted(tokens)
    limits = httpx.Limits(max_connections=len(jars) + len(pushers) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        watchers = [httpx.AsyncClient(base_url=url, timeout=60, cookies=jar) for jar in jars]
        tasks = [asyncio.create_task(_watch(watcher, path_of(k, pushers), gw_of(k, pushers),
                                            seen, phase))
                 for k, watcher in enumerate(watchers)]
        await asyncio.sleep(min(10.0, 2.0 + len(jars) / 50))  # streams open, first rounds
        before = hub.cpu_times()
        started = time.perf_counter()
        per_push = args.rate // len(pushers)
        ends = await asyncio.gather(*(
            _push(client, gateway, tokens[gateway], args.seconds, per_push, sent,
                  seqs[gateway], phase) for gateway in pushers))
        await asyncio.sleep(3.0)  # the last pushes' updates
        after = hub.cpu_times()
        wall = time.perf_counter() - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watcher in watchers:
            await watcher.aclose()
    seqs.update(zip(pushers, ends, strict=True))
    phase.cpu_percent = 100 * ((after.user - before.user) + (after.system - before.system)) / wall
    if jars:
        for (gateway, marker), at in sent.items():
            # A push superseded before the stream's next round shows as a newer marker:
            # its update reached the page then.
            shown = [when for (where, value), when in seen.items()
                     if where == gateway and value >= marker]
            if shown:
                phase.latencies_ms.append((min(shown) - at) * 1000)
            else:
                phase.missed += 1
    return phase


def path_of(k: int, pushers: list[str]) -> str:
    """Which live stream dashboard ``k`` opens (half gateway pages, then overview, alarms)."""
    if k % 4 < 2:
        return f"/ui/gateways/{pushers[k % len(pushers)]}/live"
    return "/ui/overview/live" if k % 4 == 2 else "/ui/alarms/live"


def gw_of(k: int, pushers: list[str]) -> str | None:
    """The pushing gateway whose markers dashboard ``k`` watches, if any."""
    return pushers[k % len(pushers)] if k % 4 < 2 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=500)
    parser.add_argument("--pushers", type=int, default=10)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--readings", type=int, default=5_000_000)
    parser.add_argument("--load-s", type=float, default=120.0)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with scratch_database("dashboard") as db, tempfile.TemporaryDirectory() as folder:
        engine = demo_engine(Path(folder), db.url)
        upgrade(engine)
        territory = build(engine, args)
        base, process = spawn_hub(Path(folder), db.url)
        try:
            tokens = enroll(engine, base, args.pushers)
            started = time.perf_counter()
            stored = fill(engine, db.dsn, args, territory)
            print(f"{args.gateways} gateways, {args.devices:,} series, {stored:,} readings "
                  f"loaded by COPY in {time.perf_counter() - started:.0f} s")
            report(engine, db.dsn, base, process.pid, tokens, args)
        finally:
            stop_process(process)
            engine.dispose()


def report(engine: Engine, dsn: str, base: str, pid: int, tokens: dict[str, str],
           args: argparse.Namespace) -> None:
    """Plans, then the timed requests and live phases; prints the medians."""
    with engine.connect() as conn:
        chart_series = conn.execute(select(series.c.id).where(
            series.c.device == CHART[1])).scalar_one()
    end = now_ms()
    explain(dsn, "overview: gateways and their streams (no readings)",
            "SELECT g.name, g.last_seen_ms, s.name, s.acked_seq FROM gateways g "
            "JOIN streams s ON s.gateway_id = g.id AND s.incarnation = g.incarnation "
            "ORDER BY g.name")
    explain(dsn, "30-day chart: 3-hour buckets of one series",
            f"SELECT ts_ms / 10800000 * 10800000 AS b, avg(value), min(value), max(value), "
            f"count(value) FROM readings WHERE series_id = {chart_series} AND "
            f"ts_ms >= {end - MONTH_MS} AND ts_ms < {end} AND value IS NOT NULL "
            f"GROUP BY b ORDER BY b")
    token = admin.add_operator_token(engine, TERRITORY, "bench")
    jars = sessions(engine, base, args.streams)
    hub = psutil.Process(pid)
    gateway, device, quantity = CHART
    series_path = (f"/v1/series?gateway={gateway}&device={device}&quantity={quantity}"
                   f"&from_ms={end - MONTH_MS}&to_ms={end}&bucket_s=10800")
    figures: dict[str, list[float]] = {}
    seqs = dict.fromkeys(tokens, 1)
    for _ in range(args.runs):
        with httpx.Client(base_url=base, timeout=60, cookies=jars[0]) as client:
            for name, path in (("overview", "/ui/"), ("health", "/v1/health"),
                               ("chart", f"/ui/gateways/{gateway}/devices/{device}"
                                         "?range=month")):
                spent = timed_gets(client, path, args.requests)
                figures.setdefault(f"{name} p50", []).append(percentile(spent, 0.5))
                figures.setdefault(f"{name} p95", []).append(percentile(spent, 0.95))
        with httpx.Client(base_url=base, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            spent = timed_gets(client, series_path, args.requests)
            figures.setdefault("series p50", []).append(percentile(spent, 0.5))
            figures.setdefault("series p95", []).append(percentile(spent, 0.95))
        alone = asyncio.run(live_phase(base, hub, tokens, [], args, seqs))
        live = asyncio.run(live_phase(base, hub, tokens, jars, args, seqs))
        figures.setdefault("cpu pushes alone", []).append(alone.cpu_percent)
        figures.setdefault("cpu with streams", []).append(live.cpu_percent)
        figures.setdefault("update p50", []).append(percentile(live.latencies_ms, 0.5))
        figures.setdefault("update p99", []).append(percentile(live.latencies_ms, 0.99))
        figures.setdefault("missed", []).append(live.missed)
        figures.setdefault("readings/s", []).append(live.pushed / args.seconds)
        figures.setdefault("sse events", []).append(live.events)
        print("  run:", {name: round(values[-1], 1) for name, values in figures.items()},
              flush=True)
    print(f"median of {args.runs} runs (ms unless said; CPU in % of one core):")
    for name, values in figures.items():
        print(f"  {name:<20} {statistics.median(values):10.1f}")


if __name__ == "__main__":
    main()
