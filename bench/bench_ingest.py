"""Hub ingest in-process: CPU per pushed batch, decoding and storing, main vs this tree.

What a hub process spends on one push once HTTP is done with it: ``decode_batch`` (inflate,
parse, rebuild the readings), the token's lookup, and ``store_batch`` (checks, the stream
lock, the insert, the marks), on PostgreSQL. The token: a version whose ``store_batch``
takes ``token_digest`` checks it in the storing transaction (and its door remembers tokens
seen valid, so there is nothing to time before); an older one looks it up first in a
transaction of its own, as its ``gateway_caller`` does. The batches are bench_fleet's:
1,000 readings of 20 meters x 5 quantities, compact and zstd as the agent sends them, one
gateway's stream in seq order.

Each version runs in its own interpreter: this tree, and ``--baseline`` (default ``main``,
exported with ``git archive`` and put first on ``PYTHONPATH``), alternating, each on a fresh
database. A run pushes ``--warmup`` batches untimed, then ``--batches`` timed ones; figures
are the median CPU milliseconds (process time, all threads) per batch of decoding, of the
token and of storing, the wall-clock milliseconds of the whole (what the database's round
trips add), and the medians over ``--runs``.

Run: .venv/bin/python bench/bench_ingest.py [--runs 3] [--batches 100] [--warmup 10]
     [--baseline main] [--postgres postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def measure(postgres: str, batches: int, warmup: int) -> dict[str, float]:
    """Decode and store ``warmup + batches`` batches here; median CPU ms of each part.

    Imports here, not at the top: they must come from the tree on ``PYTHONPATH``.
    """
    import inspect

    from sqlalchemy import select, update

    from bench.bench_fleet import bench_database, plan_pushes
    from edge_agent.records import now_ms
    from simulators.hub_process import demo_engine
    from sync_server import admin
    from sync_server.credentials import digest
    from sync_server.db.engine import reading
    from sync_server.db.migrate import upgrade
    from sync_server.db.schema import gateways
    from sync_server.ingest import ClockPolicy, GatewayRef, store_batch
    from sync_server.wire import decode_batch

    token_digest = digest("pgw_bench")
    checked_in_store = "token_digest" in inspect.signature(store_batch).parameters
    checked: dict[str, Any] = {"token_digest": token_digest} if checked_in_store else {}

    start = (now_ms() // 60_000 - 2 * (warmup + batches) * 10 - 60) * 60_000
    pushes = plan_pushes(1, 1, warmup + batches, 1000, start, False)[0]
    decode_ms: list[float] = []
    token_ms: list[float] = []
    store_ms: list[float] = []
    wall_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, bench_database(postgres) as url:
        engine = demo_engine(Path(tmp), url)
        upgrade(engine)
        admin.add_territory(engine, "bench")
        admin.add_site(engine, "bench", "bench-site")
        admin.add_gateway(engine, "bench", "bench-site", "gw")
        with engine.begin() as conn:
            conn.execute(update(gateways).values(token_hash=token_digest))
            gateway_id, territory_id = conn.execute(
                select(gateways.c.id, gateways.c.territory_id)).one()
        gateway = GatewayRef(int(gateway_id), int(territory_id), "gw", 1)
        for number, push in enumerate(pushes):
            began, began_wall = time.process_time(), time.perf_counter()
            batch = decode_batch(push.stream, push.body, push.content_type, "zstd",
                                 max_decoded=64 * 2**20)
            decoded = time.process_time()
            if not checked_in_store:
                with reading(engine) as conn:
                    conn.execute(select(gateways.c.id, gateways.c.territory_id,
                                        gateways.c.name, gateways.c.incarnation)
                                 .where(gateways.c.token_hash == token_digest)).one()
            looked_up = time.process_time()
            store_batch(engine, gateway, push.stream, batch, received_ms=now_ms(),
                        sent_at_ms=now_ms(), backlog=0, clock=ClockPolicy(120_000), **checked)
            if number >= warmup:
                wall_ms.append((time.perf_counter() - began_wall) * 1000)
                decode_ms.append((decoded - began) * 1000)
                token_ms.append((looked_up - decoded) * 1000)
                store_ms.append((time.process_time() - looked_up) * 1000)
        engine.dispose()
    return {"decode": statistics.median(decode_ms), "token": statistics.median(token_ms),
            "store": statistics.median(store_ms), "wall": statistics.median(wall_ms)}


def run_version(tree: Path | None, args: argparse.Namespace) -> dict[str, float]:
    """One run in a fresh interpreter on ``tree`` (this checkout when None)."""
    env = {**os.environ, "PYTHONPATH": str(tree or ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_ingest.py"), "--one",
         "--batches", str(args.batches), "--warmup", str(args.warmup),
         "--postgres", args.postgres],
        env=env, cwd=tree or ROOT, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per version (median)")
    parser.add_argument("--batches", type=int, default=100, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches first")
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (a throwaway database per run)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.postgres, args.batches, args.warmup)))
        return
    sys.path.insert(0, str(ROOT))
    from bench.bench_fleet import baseline_tree

    with tempfile.TemporaryDirectory() as tmp:
        tree = baseline_tree(args.baseline, Path(tmp) / "baseline")
        results: dict[str, list[dict[str, float]]] = {args.baseline: [], "this tree": []}
        print(f"in-process ingest: {args.batches} batches of 1,000 readings a run (after"
              f" {args.warmup} untimed), PostgreSQL; CPU ms per batch (and wall ms: round"
              " trips included), median")
        print(f"{'version':<12} {'run':>3} {'decode':>7} {'token':>7} {'store':>7} {'total':>7}"
              f" {'wall':>7}")
        for run in range(args.runs):
            order = [(args.baseline, tree), ("this tree", None)]
            for name, where in order if run % 2 == 0 else order[::-1]:
                figures = run_version(where, args)
                results[name].append(figures)
                cpu = figures["decode"] + figures["token"] + figures["store"]
                print(f"{name:<12} {run + 1:>3} {figures['decode']:>7.2f}"
                      f" {figures['token']:>7.2f} {figures['store']:>7.2f} {cpu:>7.2f}"
                      f" {figures['wall']:>7.2f}")
    totals, walls = {}, {}
    for name, runs in results.items():
        parts = [statistics.median(r[part] for r in runs) for part in ("decode", "token", "store")]
        totals[name] = sum(parts)
        walls[name] = statistics.median(r["wall"] for r in runs)
        print(f"{name:<12} {'':>3} {parts[0]:>7.2f} {parts[1]:>7.2f} {parts[2]:>7.2f}"
              f" {totals[name]:>7.2f} {walls[name]:>7.2f}")
    print(f"this tree vs {args.baseline}: {totals['this tree'] / totals[args.baseline]:.2f}x"
          f" the CPU per batch, {walls['this tree'] / walls[args.baseline]:.2f}x the wall time")


if __name__ == "__main__":
    main()
