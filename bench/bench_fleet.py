"""Fleet push: 500 simulated gateways pushing to two hubs on PostgreSQL, main vs this tree.

What a hub sees when a whole territory comes back after an outage: every gateway drains its
backlog at once. Setup: a fresh PostgreSQL database, migrated; a territory; 500 gateways
(plus one for the baseline) registered through ``sync_server.admin`` and enrolled over HTTP,
as ``tests/helpers/hub.py`` does; two ``sync-server serve`` processes of each version on
that database (``simulators/hub_process.py``).

Each gateway reads 20 meters x 5 quantities once a minute (marina-like values: voltage
around 230 V, a load while a boat is plugged in, a growing energy counter) and pushes its
backlog as the agent's sync loop does: batches of 1,000 readings (10 minutes of data),
compact encoding and zstd exactly as the agent (``encode_readings`` + ``compress``), headers
``Content-Type``, ``Content-Encoding: zstd``, ``X-Ponton-Sent-At``, ``X-Ponton-Backlog``, the
next batch only once the previous one is acknowledged; one alarm batch (2 ``alarm.raised``
events on the ``alarms`` stream) per gateway and run, at a place in the sequence that
varies by gateway. Every body is encoded before anything is timed (in a process pool), so
the figures are the hub's, not the encoder's. Every gateway's data is its own (its own
random seed), and each run continues its gateways' streams where the previous run stopped.

The load comes from separate processes (``--load-processes``, default 1: it uses a tenth to
a fifth of a core), each running its share of the gateways as asyncio tasks, one
``httpx.AsyncClient`` per gateway (as each agent has its own) with the agent's 30 s timeout
(``--timeout``): an answer that takes longer is an error, and the batch goes again a second
later, as the agent would send it again. Before each run every gateway asks each hub it
will use for its marks (``GET /v1/gateway/streams``, as the agent does at start; untimed,
and checked against what it sent so far), so connections are open when the clock starts.
Gateways drop connections idle for 1 s (``--keepalive-expiry``; httpx's default, the
agent's, is 5 s): uvicorn closes connections idle for 5 s, a hub too busy to run that timer
on time closes a connection just as a gateway reuses it, and the gateway gets a reset
(``ReadError``). With requests alternating between hubs every connection idles for a whole
request, and 5 s cost 32 errors in 1,500 requests in one run here (none in another).

Variants, each run, all on 2 hub processes sharing the database:

- baseline: one gateway alone pushing sequentially (one request at a time) to one hub;
- 500 gateways on hubs running ``--baseline`` (default ``main``, exported with ``git
  archive`` and run through ``PYTHONPATH``), requests alternating between the two hubs
  (round robin per gateway, neighbours starting on different hubs);
- the same on hubs running this tree, with ``--push-threads`` and ``--push-queue``.

The order of the two fleet variants alternates between runs, since the tables grow. A 503 is
not an error: the gateway waits as the agent does (``backoff_delay``, which honours
``Retry-After``) and sends the batch again, however many times it takes. Figures: points
(readings) stored per second from the first request to the last answer, requests per second
(503s included), latency p50/p95/p99/max of answered requests (client side, from sending to
the whole answer; 503s apart), ``push99``: the p99 from a batch's first try to its
acknowledgement (503s and waits included: with every gateway always pushing, its mean is
the gateways divided by the pushes per second, Little's law, whatever the hub does), 503s,
errors (must be 0), and CPU in % of one core over the run: the hub processes, PostgreSQL
(all its processes), the load generator, other processes (the machine's busy time less
those three: anything else running disturbs the figures) and the whole machine (of 200 on 2
vCPUs). Medians over ``--runs``, then this tree against the baseline. At the end the
database must hold exactly what was sent, once: rows in ``readings`` and ``events``, and
every gateway's readings mark.

Run: .venv/bin/python bench/bench_fleet.py [--runs 3] [--gateways 500] [--batches 3]
     [--batch-size 1000] [--solo-batches 150] [--load-processes 1] [--timeout 30]
     [--keepalive-expiry 1] [--postgres postgresql://postgres@127.0.0.1:5432]
     [--baseline main] [--push-threads 4] [--push-queue 12]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import secrets
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Literal

import httpx
import psutil
import psycopg
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_events, encode_readings
from edge_agent.codecs.compression import compress
from edge_agent.records import Event, Reading, now_ms
from edge_agent.sync.loop import backoff_delay
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.db.migrate import upgrade
from sync_server.db.schema import events, gateways, readings, streams

METERS = 20
QUANTITIES = ("voltage", "current", "active_power", "power_factor", "active_energy_import")
MINUTE_MS = 60_000
#: Milliseconds between two meters' requests within a poll (each meter is one request).
REQUEST_SPACING_MS = 150
ALARM_EVENTS = 2
TERRITORY = "bench"
#: The agent's default ``[sync] timeout_s``: a request still unanswered then is an error.
HTTP_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 5
#: The agent's default ``[sync] max_backoff_s``.
MAX_BACKOFF_S = 300.0
ROOT = Path(__file__).resolve().parent.parent
#: Below uvicorn's 5 s keep-alive timeout: see the module docstring.
KEEPALIVE_EXPIRY_S = 1.0
#: Seconds between telling the (ready) load processes when to start and the start.
START_DELAY_S = 0.2

Variant = Literal["solo", "main", "new"]
LABELS: dict[Variant, str] = {
    "solo": "1 gw, sequential",
    "main": "{n} gw, {ref}",
    "new": "{n} gw, this tree",
}


@dataclass(frozen=True, slots=True)
class Push:
    """One pre-encoded request body and what the hub must answer for it."""

    stream: str
    content_type: str
    body: bytes
    records: int
    backlog: int


@dataclass(slots=True)
class GatewayPlan:
    """A gateway's token and its pushes, phase by phase (one phase per run it takes part in)."""

    name: str
    token: str
    phases: list[list[Push]]


@dataclass(frozen=True, slots=True)
class PhaseCommand:
    """Tells a load process to run phase ``index`` of its gateways against ``urls``."""

    solo: bool
    index: int
    urls: tuple[str, ...]


@dataclass(slots=True)
class PhaseResult:
    """What one load process measured in one phase."""

    latencies_ms: list[float] = field(default_factory=list)
    #: From a batch's first request to its acknowledgement, 503s and waits included.
    push_ms: list[float] = field(default_factory=list)
    busy: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    readings: int = 0
    events: int = 0
    duplicates: int = 0
    requests: int = 0
    cpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Figures:
    """One variant in one run, all load processes together."""

    points_per_s: float
    requests_per_s: float
    p50: float
    p95: float
    p99: float
    max: float
    push_p99: float
    busy: int
    errors: int
    duplicates: int
    cpu_hubs: float
    cpu_postgres: float
    cpu_load: float
    cpu_other: float
    cpu_machine: float
    readings: int
    events: int


# --- the gateways' data, encoded in a process pool before anything is timed ---------------


class MeterSimulator:
    """One gateway's 20 meters, minute after minute, in poll order."""

    def __init__(self, seed: int, start_ms: int) -> None:
        self._rng = random.Random(seed)
        self._minute = 0
        self._start_ms = start_ms
        self._voltage = 230.0 + self._rng.uniform(-2, 2)
        self._plugged = [self._rng.random() < 0.5 for _ in range(METERS)]
        self._energy = [self._rng.uniform(100, 5000) for _ in range(METERS)]

    def minute(self) -> list[Reading]:
        """The readings of the next minute's poll: every quantity of every meter."""
        rng = self._rng
        ts = self._start_ms + self._minute * MINUTE_MS
        self._minute += 1
        self._voltage += rng.gauss(0, 0.2) - (self._voltage - 230.0) * 0.05
        out: list[Reading] = []
        for meter in range(METERS):
            if rng.random() < 0.01:
                self._plugged[meter] = not self._plugged[meter]
            voltage = self._voltage + rng.gauss(0, 0.3)
            power = rng.uniform(300, 2500) if self._plugged[meter] else 0.0
            factor = rng.uniform(0.85, 0.99) if power else 1.0
            self._energy[meter] += power / 60_000
            name = f"meter-{meter + 1:02d}"
            at = ts + meter * REQUEST_SPACING_MS
            out += [
                Reading(name, "voltage", at, voltage),
                Reading(name, "current", at, power / (voltage * factor)),
                Reading(name, "active_power", at, power),
                Reading(name, "power_factor", at, factor),
                Reading(name, "active_energy_import", at, self._energy[meter]),
            ]
        return out


def plan_pushes(
    seed: int, phases: int, batches: int, batch_size: int, start_ms: int, alarms: bool
) -> list[list[Push]]:
    """Every push of one gateway for ``phases`` runs, encoded as the agent encodes them."""
    meters = MeterSimulator(seed, start_ms)
    pending: deque[Reading] = deque()
    per_phase = batches * batch_size + (ALARM_EVENTS if alarms else 0)
    remaining = phases * per_phase
    seq, alarm_seq = 1, 1
    plan: list[list[Push]] = []
    for _ in range(phases):
        pushes: list[Push] = []
        for position in range(batches):
            while len(pending) < batch_size:
                pending.extend(meters.minute())
            chunk = [pending.popleft() for _ in range(batch_size)]
            if alarms and position == seed % batches:
                at = chunk[0].ts_ms
                raised = [Event("alarm.raised", f"meter-{(seed + i) % METERS + 1:02d}", at + i,
                                 {"quantity": "voltage", "threshold": 253.0, "value": 253.4})
                          for i in range(ALARM_EVENTS)]
                remaining -= ALARM_EVENTS
                pushes.append(Push("alarms", EVENTS_TYPE,
                                   compress(encode_events(alarm_seq, raised), "zstd"),
                                   ALARM_EVENTS, remaining))
                alarm_seq += ALARM_EVENTS
            remaining -= batch_size
            pushes.append(Push("readings", READINGS_TYPE,
                               compress(encode_readings(seq, chunk), "zstd"),
                               batch_size, remaining))
            seq += batch_size
        plan.append(pushes)
    return plan


# --- the load processes ---------------------------------------------------------------------


def load_process(conn: Connection, fleet: list[GatewayPlan], solo: GatewayPlan | None,
                 timeout_s: float, keepalive_expiry_s: float) -> None:
    """Run phases as the main process commands, answering each with a PhaseResult."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops us
    asyncio.run(_serve(conn, fleet, solo, timeout_s, keepalive_expiry_s))


async def _serve(conn: Connection, fleet: list[GatewayPlan], solo: GatewayPlan | None,
                 timeout_s: float, keepalive_expiry_s: float) -> None:
    # One TLS context for all (never used over http://): httpx loading the CA bundle for
    # each of 500 clients would cost seconds of CPU.
    tls = ssl.create_default_context()
    limits = httpx.Limits(keepalive_expiry=keepalive_expiry_s)
    plans = [*fleet, *([solo] if solo is not None else [])]
    clients = {plan.name: httpx.AsyncClient(
        headers={"Authorization": f"Bearer {plan.token}"}, timeout=timeout_s,
        limits=limits, verify=tls) for plan in plans}
    try:
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command is None:
                return
            assert isinstance(command, PhaseCommand)
            phase_plans = ([solo] if solo is not None else []) if command.solo else fleet
            await run_phase([(clients[plan.name], plan) for plan in phase_plans], command, conn)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients.values()))


async def run_phase(
    gateways: list[tuple[httpx.AsyncClient, GatewayPlan]], command: PhaseCommand,
    conn: Connection,
) -> None:
    """Warm up every gateway's connections, say ready, wait for the start, push, answer."""
    result = PhaseResult()
    await asyncio.gather(*(_check_marks(client, url, plan, command.index, result)
                           for client, plan in gateways for url in command.urls))
    conn.send("ready")
    start_at = await asyncio.to_thread(conn.recv)
    assert isinstance(start_at, float)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    cpu = time.process_time()
    result.started = time.monotonic()
    await asyncio.gather(*(
        _push_phase(client, command.urls, offset, plan.phases[command.index], result)
        for offset, (client, plan) in enumerate(gateways)))
    result.ended = time.monotonic()
    result.cpu_s = time.process_time() - cpu
    conn.send(result)


async def _check_marks(
    client: httpx.AsyncClient, url: str, plan: GatewayPlan, phase: int, result: PhaseResult
) -> None:
    """Ask the hub for the gateway's marks, as the agent does at start, and check them."""
    expected: dict[str, int] = {}
    for pushes in plan.phases[:phase]:
        for push in pushes:
            expected[push.stream] = expected.get(push.stream, 0) + push.records
    try:
        response = await client.get(f"{url}/v1/gateway/streams")
        response.raise_for_status()
        acked = response.json()["acked"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        result.errors.append(f"marks of {plan.name}: {type(exc).__name__}: {exc}")
        return
    if acked != expected:
        result.errors.append(f"marks of {plan.name}: hub holds {acked}, sent {expected}")


async def _push_phase(
    client: httpx.AsyncClient, urls: Sequence[str], offset: int, pushes: list[Push],
    result: PhaseResult,
) -> None:
    """Push one gateway's batches one after the other, each once the previous is acked.

    A 503 is not an error: the batch goes again after the agent's own backoff, which honours
    ``Retry-After`` (``backoff_delay``), as many times as it takes, as the agent would.
    """
    rng = random.Random(offset)
    for number, push in enumerate(pushes):
        url = urls[(offset + number) % len(urls)]
        first_sent = time.perf_counter()
        failures = attempts = 0
        while attempts < MAX_ATTEMPTS:
            headers = {"Content-Type": push.content_type, "Content-Encoding": "zstd",
                       "X-Ponton-Sent-At": str(now_ms()), "X-Ponton-Backlog": str(push.backlog)}
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/gateway/streams/{push.stream}/batches",
                                             content=push.body, headers=headers)
            except httpx.HTTPError as exc:
                attempts += 1
                result.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            result.requests += 1
            if response.status_code == 503:
                result.busy += 1
                failures += 1
                retry_after = float(response.headers.get("Retry-After", "1"))
                await asyncio.sleep(backoff_delay(failures, cap_s=MAX_BACKOFF_S, rng=rng,
                                                  retry_after_s=retry_after))
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            attempts += 1
            if response.status_code != 200:
                result.errors.append(f"{response.status_code}: {response.text[:200]}")
                await asyncio.sleep(1.0)
                continue
            answer = response.json()
            stored, duplicates = int(answer["stored"]), int(answer["duplicates"])
            if push.stream == "readings":
                result.readings += stored
            else:
                result.events += stored
            result.duplicates += duplicates
            if stored + duplicates != push.records:
                result.errors.append(f"answer {answer} for a batch of {push.records}")
            result.push_ms.append((time.perf_counter() - first_sent) * 1000)
            break
        else:
            result.errors.append(f"gave up on a {push.stream} batch after {MAX_ATTEMPTS} tries")


# --- the hubs, the database and CPU accounting ----------------------------------------------


@contextmanager
def bench_database(server: str) -> Iterator[str]:
    """A new database on ``server`` for the run, dropped (WITH FORCE) afterwards.

    Kept apart from bench/scratch_database.py on purpose: bench_ingest.py imports it from
    the tree it measures, older commits included.
    """
    name = f"ponton_bench_{secrets.token_hex(4)}"
    admin_url = make_url(server).set(drivername="postgresql", database="postgres")
    dsn = admin_url.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(server).set(drivername="postgresql+psycopg", database=name) \
            .render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Hub:
    """A ``sync-server serve`` process (simulators/hub_process.py); logs to data_dir/hub.log.

    ``tree`` is the checkout it runs (on ``PYTHONPATH``): this one's by default.
    """

    def __init__(self, data_dir: Path, database_url: str, *, tree: Path | None = None,
                 serve_args: Sequence[str] = ()) -> None:
        env = {"PYTHONPATH": baseline_path(tree)} if tree is not None else None
        # Run from the tree as well: ``python -m`` looks in its working directory first.
        self.url, self.process = spawn_hub(data_dir, database_url, serve_args=serve_args,
                                           env=env, cwd=tree)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds so far of the hubs and of PostgreSQL, and the machine's busy seconds."""

    at: float
    hubs: float
    postgres: float
    machine: float


class CpuMeter:
    """CPU of the hub processes, of PostgreSQL, and of the whole machine.

    PostgreSQL's figure is its whole process tree: every ``postgres`` process alive, plus
    what its postmaster's exited children spent (a hub's pool overflow opens and closes
    connections, so backends come and go during a run). It covers every database on the
    server: other work on it would show there, and in the machine's figure.
    """

    def __init__(self, hubs: Sequence[Hub]) -> None:
        self._hubs = [psutil.Process(hub.process.pid) for hub in hubs]

    def sample(self) -> CpuSample:
        postgres = 0.0
        for process in psutil.process_iter(["name", "ppid"]):
            if process.info["name"] != "postgres":
                continue
            try:
                times = process.cpu_times()
                postgres += times.user + times.system
                if psutil.Process(process.info["ppid"]).name() != "postgres":  # postmaster
                    postgres += times.children_user + times.children_system
            except psutil.NoSuchProcess:
                continue
        hubs = 0.0
        for hub in self._hubs:
            times = hub.cpu_times()
            hubs += times.user + times.system
        machine = psutil.cpu_times()
        busy = (machine.user + machine.nice + machine.system + machine.irq
                + machine.softirq)
        return CpuSample(time.monotonic(), hubs, postgres, busy)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (``share`` in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


# --- the main process -----------------------------------------------------------------------


def enroll_fleet(engine: Engine, hub_urls: Sequence[str], names: list[str]) -> dict[str, str]:
    """Register and enroll ``names`` in parallel, as tests/helpers/hub.py does; name -> token."""
    admin.add_territory(engine, TERRITORY)
    admin.add_site(engine, TERRITORY, f"{TERRITORY}-site")

    def enroll(number: int) -> tuple[str, str]:
        code = admin.add_gateway(engine, TERRITORY, f"{TERRITORY}-site", names[number]).code
        answer = httpx.post(f"{hub_urls[number % len(hub_urls)]}/v1/enroll",
                            json={"code": code}, timeout=30)
        answer.raise_for_status()
        identity = answer.json()
        return str(identity["gateway"]), str(identity["token"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(enroll, range(len(names))))


def run_variant(
    workers: list[Connection], meter: CpuMeter, variant: Variant, index: int,
    urls: tuple[str, ...],
) -> Figures:
    """One phase on every load process; the figures of all of them together."""
    for conn in workers:
        conn.send(PhaseCommand(variant == "solo", index, urls))
    for conn in workers:
        assert conn.recv() == "ready"
    start_at = time.monotonic() + START_DELAY_S
    for conn in workers:
        conn.send(start_at)
    time.sleep(max(0.0, start_at - time.monotonic()))
    before = meter.sample()
    results = [conn.recv() for conn in workers]
    after = meter.sample()
    assert all(isinstance(r, PhaseResult) for r in results)
    active = [r for r in results if r.requests]
    wall = max(r.ended for r in active) - min(r.started for r in active)
    window = after.at - before.at
    latencies = [ms for r in results for ms in r.latencies_ms]
    readings_sent = sum(r.readings for r in results)
    errors = [e for r in results for e in r.errors]
    cpu_load = 100 * sum(r.cpu_s for r in results) / wall
    for error in errors[:5]:
        print(f"  error: {error}", file=sys.stderr)
    return Figures(
        points_per_s=readings_sent / wall,
        requests_per_s=sum(r.requests for r in results) / wall,
        p50=percentile(latencies, 0.50), p95=percentile(latencies, 0.95),
        p99=percentile(latencies, 0.99), max=max(latencies),
        push_p99=percentile([ms for r in results for ms in r.push_ms], 0.99),
        busy=sum(r.busy for r in results), errors=len(errors),
        duplicates=sum(r.duplicates for r in results),
        cpu_hubs=100 * (after.hubs - before.hubs) / window,
        cpu_postgres=100 * (after.postgres - before.postgres) / window,
        cpu_load=cpu_load,
        cpu_other=100 * (after.machine - before.machine - after.hubs + before.hubs
                         - after.postgres + before.postgres) / window - cpu_load,
        cpu_machine=100 * (after.machine - before.machine) / window,
        readings=readings_sent, events=sum(r.events for r in results),
    )


def print_row(label: str, run: str, f: Figures) -> None:
    print(f"{label:<16} {run:>3} {f.points_per_s:>9,.0f} {f.requests_per_s:>6,.1f}"
          f" {f.p50:>6,.0f} {f.p95:>6,.0f} {f.p99:>6,.0f} {f.max:>6,.0f} {f.push_p99:>6,.0f}"
          f" {f.busy:>5} {f.errors:>3}"
          f" {f.cpu_hubs:>6.0f} {f.cpu_postgres:>5.0f} {f.cpu_load:>5.0f}"
          f" {f.cpu_other:>6.0f}"
          f" {f.cpu_machine:>8.0f}")


def median_figures(figures: list[Figures]) -> Figures:
    def med(name: str) -> float:
        return statistics.median(float(getattr(f, name)) for f in figures)

    return Figures(
        med("points_per_s"), med("requests_per_s"), med("p50"), med("p95"), med("p99"),
        med("max"), med("push_p99"), sum(f.busy for f in figures),
        sum(f.errors for f in figures), sum(f.duplicates for f in figures),
        med("cpu_hubs"), med("cpu_postgres"),
        med("cpu_load"), med("cpu_other"), med("cpu_machine"), sum(f.readings for f in figures),
        sum(f.events for f in figures))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (median taken)")
    parser.add_argument("--gateways", type=int, default=500, help="simulated gateways")
    parser.add_argument("--batches", type=int, default=3,
                        help="reading batches per gateway and run")
    parser.add_argument("--batch-size", type=int, default=1000, help="readings per batch")
    parser.add_argument("--solo-batches", type=int, default=150,
                        help="batches the baseline gateway pushes per run")
    parser.add_argument("--load-processes", type=int, default=1,
                        help="processes generating the fleet's load")
    parser.add_argument("--timeout", type=float, default=HTTP_TIMEOUT_S,
                        help="seconds a gateway waits for an answer (the agent's default)")
    parser.add_argument("--keepalive-expiry", type=float, default=KEEPALIVE_EXPIRY_S,
                        help="seconds a gateway keeps an idle connection (httpx: 5)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (a throwaway database is created on it)")
    parser.add_argument("--baseline", default="main",
                        help="git revision whose hubs run the same fleet, for comparison")
    parser.add_argument("--push-threads", type=int, default=4,
                        help="this tree's hubs: serve --push-threads")
    parser.add_argument("--push-queue", type=int, default=12,
                        help="this tree's hubs: serve --push-queue")
    return parser.parse_args()


def encode_plans(
    args: argparse.Namespace, tokens: dict[str, str], names: list[str], fleet_phases: int,
    context: SpawnContext,
) -> tuple[list[GatewayPlan], GatewayPlan]:
    """Every body of every gateway, encoded in a process pool: the fleet's and the solo's."""
    # An outage long enough for everything the runs push, ending an hour ago.
    minutes = -(-max(fleet_phases * args.batches, args.runs * args.solo_batches)
                * args.batch_size // (METERS * len(QUANTITIES)))
    start_ms = (now_ms() // MINUTE_MS - minutes - 60) * MINUTE_MS
    count = len(names)
    with ProcessPoolExecutor(os.cpu_count(), mp_context=context) as pool:
        fleet_plans = pool.map(
            plan_pushes, range(count), [fleet_phases] * count, [args.batches] * count,
            [args.batch_size] * count, [start_ms] * count, [True] * count, chunksize=8)
        solo_future = pool.submit(plan_pushes, count, args.runs, args.solo_batches,
                                  args.batch_size, start_ms, False)
        fleet = [GatewayPlan(name, tokens[name], phases)
                 for name, phases in zip(names, fleet_plans, strict=True)]
        return fleet, GatewayPlan("gw-solo", tokens["gw-solo"], solo_future.result())


def start_load(
    context: SpawnContext, count: int, fleet: list[GatewayPlan], solo: GatewayPlan,
    timeout_s: float, keepalive_expiry_s: float,
) -> list[tuple[SpawnProcess, Connection]]:
    """``count`` load processes sharing the fleet; the first one also runs the solo gateway."""
    started = []
    for number in range(count):
        parent, child = context.Pipe()
        process = context.Process(target=load_process, args=(
            child, fleet[number::count], solo if number == 0 else None, timeout_s,
            keepalive_expiry_s))
        process.start()
        started.append((process, parent))
    return started


def run_all(
    args: argparse.Namespace, workers: list[Connection], hubs: dict[Variant, list[Hub]]
) -> dict[Variant, list[Figures]]:
    """Every run: the baseline, then the fleet on both versions (their order alternating)."""
    meters = {variant: CpuMeter(pair) for variant, pair in hubs.items()}
    variants: list[Variant] = ["main", "new"]
    results: dict[Variant, list[Figures]] = {"solo": [], "main": [], "new": []}
    print(f"{'variant':<16} {'run':>3} {'points/s':>9} {'req/s':>6}"
          f" {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6} {'push99':>6} {'503s':>5} {'err':>3}"
          f" {'hubs':>6} {'pg':>5} {'load':>5} {'other':>6} {'machine':>8}")
    for run in range(args.runs):
        order = variants if run % 2 == 0 else variants[::-1]
        phases: list[tuple[Variant, int]] = [("solo", run)]
        phases += [(v, run * len(variants) + n) for n, v in enumerate(order)]
        for variant, index in phases:
            pair = hubs["new" if variant == "solo" else variant]
            urls = tuple(hub.url for hub in pair[: 1 if variant == "solo" else 2])
            meter = meters["new" if variant == "solo" else variant]
            figures = run_variant(workers, meter, variant, index, urls)
            results[variant].append(figures)
            print_row(_label(variant, args), str(run + 1), figures)
    print("median (503s and errors: all runs together)")
    medians = {variant: median_figures(figures) for variant, figures in results.items()}
    for variant, figures in medians.items():
        print_row(_label(variant, args), "", figures)
    old, new = medians["main"], medians["new"]
    print(f"this tree vs {args.baseline}: points/s {new.points_per_s / old.points_per_s:.2f}x,"
          f" hub CPU per 1,000 points {_hub_ms(new):.1f} vs {_hub_ms(old):.1f} ms,"
          f" p99 of answered pushes {new.p99:,.0f} vs {old.p99:,.0f} ms, p99 from first try"
          f" to acknowledgement {new.push_p99:,.0f} vs {old.push_p99:,.0f} ms")
    return results


def _label(variant: Variant, args: argparse.Namespace) -> str:
    return LABELS[variant].format(n=args.gateways, ref=args.baseline)


def _hub_ms(figures: Figures) -> float:
    """Hub CPU milliseconds per 1,000 points stored."""
    return 10 * figures.cpu_hubs / figures.points_per_s * 1000


def baseline_tree(ref: str, into: Path) -> Path:
    """The files of ``ref`` (a git revision of this checkout), for hubs to run from."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


#: Packages the hub's extra gained after older baselines: uvicorn takes them whenever it can
#: import them, so a baseline that does not declare them gets them hidden and runs as it
#: was installed.
NEWER_PACKAGES = ("httptools", "uvloop")


def baseline_path(tree: Path) -> str:
    """``PYTHONPATH`` for hubs of ``tree``: it, then stubs hiding the ``NEWER_PACKAGES``
    its pyproject.toml does not declare (importing them raises ImportError)."""
    declared = (tree / "pyproject.toml").read_text(encoding="utf-8")
    hidden = tree.parent / f"{tree.name}-hidden"
    for name in NEWER_PACKAGES:
        if f'"{name}' not in declared:
            (hidden / name).mkdir(parents=True, exist_ok=True)
            (hidden / name / "__init__.py").write_text(
                f"raise ImportError('{name}: not installed by this baseline')\n",
                encoding="utf-8")
    return os.pathsep.join([str(tree), str(hidden)])


def idle_share(seconds: float = 2.0) -> float:
    """The machine's busy CPU in % of one core over ``seconds``: others' load before we start."""
    before = psutil.cpu_times()
    time.sleep(seconds)
    after = psutil.cpu_times()
    busy = [t.user + t.nice + t.system + t.irq + t.softirq for t in (before, after)]
    return 100 * (busy[1] - busy[0]) / seconds


def main() -> None:
    args = parse_args()
    fleet_phases = args.runs * 2
    names = [f"gw-{i + 1:04d}" for i in range(args.gateways)]
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, bench_database(args.postgres) as url:
        data_dir = Path(tmp)
        engine = demo_engine(data_dir, url)
        upgrade(engine)
        hubs: dict[Variant, list[Hub]] = {}
        load: list[tuple[SpawnProcess, Connection]] = []
        try:
            tree = baseline_tree(args.baseline, data_dir / "baseline")
            serve_args = ["--push-threads", str(args.push_threads),
                          "--push-queue", str(args.push_queue)]
            hubs["main"] = [Hub(data_dir, url, tree=tree) for _ in range(2)]
            hubs["new"] = [Hub(data_dir, url, serve_args=serve_args) for _ in range(2)]
            started = time.perf_counter()
            tokens = enroll_fleet(engine, [hub.url for hub in hubs["new"]],
                                  [*names, "gw-solo"])
            enrolled_s = time.perf_counter() - started
            started = time.perf_counter()
            fleet, solo = encode_plans(args, tokens, names, fleet_phases, context)
            encoded_s = time.perf_counter() - started
            bodies = sum(len(phase) for plan in [*fleet, solo] for phase in plan.phases)
            busy_before = idle_share()
            load = start_load(context, args.load_processes, fleet, solo, args.timeout,
                              args.keepalive_expiry)
            with engine.connect() as conn:
                server = conn.exec_driver_sql("SHOW server_version").scalar()
            print(f"fleet push: {args.gateways} gateways x {METERS} meters x {len(QUANTITIES)}"
                  f" quantities (a reading a minute), per gateway and run {args.batches}"
                  f" batches of {args.batch_size:,} readings + 1 alarm batch of"
                  f" {ALARM_EVENTS} events; baseline {args.solo_batches} batches")
            print(f"hubs: sync-server serve x 2 on 127.0.0.1 from {args.baseline} and x 2 from"
                  f" this tree ({' '.join(serve_args)}), PostgreSQL {server} on"
                  f" {make_url(url).host}; load: {args.load_processes} process(es), one"
                  f" httpx.AsyncClient per gateway")
            print(f"setup: {len(tokens)} gateways enrolled in {enrolled_s:.1f} s,"
                  f" {bodies:,} bodies encoded in {encoded_s:.1f} s"
                  f" ({os.cpu_count()} processes); machine busy before the runs (others):"
                  f" {busy_before:.0f} % of one core")
            print(f"median of {args.runs} runs; latency in ms, client side, of answered"
                  " requests (503s apart), and push99 from a batch's first try to its"
                  " acknowledgement (503s and the agent's backoff included); CPU in % of one"
                  " core: hubs, PostgreSQL, load generator, other processes, machine (of 200)")
            results = run_all(args, [pipe for _, pipe in load], hubs)
            check_exactly_once(engine, results, [*fleet, solo])
        finally:
            for process, pipe in load:
                pipe.send(None)
                process.join(timeout=30)
            for pair in hubs.values():
                for hub in pair:
                    hub.stop()
            engine.dispose()


def check_exactly_once(engine: Engine, results: dict[Variant, list[Figures]],
                       plans: list[GatewayPlan]) -> None:
    """The database holds what was acknowledged, each record once, every mark where it was."""
    acked = sum(f.readings + f.events for figures in results.values() for f in figures)
    duplicates = sum(f.duplicates for figures in results.values() for f in figures)
    sent_readings = sent_events = 0
    expected_marks: dict[str, int] = {}
    for plan in plans:
        pushes = [push for phase in plan.phases for push in phase]
        expected_marks[plan.name] = sum(p.records for p in pushes if p.stream == "readings")
        sent_readings += expected_marks[plan.name]
        sent_events += sum(p.records for p in pushes if p.stream != "readings")
    with engine.connect() as conn:
        stored_readings = conn.execute(select(func.count()).select_from(readings)).scalar_one()
        stored_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
        marks = dict(conn.execute(
            select(gateways.c.name, streams.c.acked_seq)
            .join_from(streams, gateways, streams.c.gateway_id == gateways.c.id)
            .where(streams.c.name == "readings")).tuples().all())
    wrong_marks = sum(1 for name, mark in expected_marks.items() if marks.get(name) != mark)
    ok = (stored_readings == sent_readings and stored_events == sent_events
          and not wrong_marks)
    print(f"exactly once: {'yes' if ok else 'NO'}; readings in the database"
          f" {stored_readings:,}, sent {sent_readings:,}; events {stored_events:,}, sent"
          f" {sent_events:,}; answered as stored {acked:,}, as duplicates {duplicates};"
          f" gateways whose readings mark is wrong: {wrong_marks}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
