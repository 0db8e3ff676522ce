"""Health and a legitimate push while the hub is attacked through its door (issue 11).

A real hub process (SQLite) on 127.0.0.1. One client asks ``/v1/health`` every 20 ms, one
gateway pushes a 500-reading zstd batch every 100 ms, both timing every answer. Meanwhile,
for ``--seconds`` each run:

- baseline: nothing else;
- amplification: ``--attackers`` threads post, with a valid gateway token, a 5 KB zstd body
  that inflates to 60 MiB of ``[],`` (under the 64 MiB decoded limit);
- unauthenticated: ``--attackers`` threads put 8 MiB of ``[],`` to ``/v1/policy/rules``
  without a token.

Prints the median over ``--runs`` runs of each p99 (and of the attack requests' own time).
Goal: p99 of health and of a legitimate push <= 200 ms during either attack.
Run: .venv/bin/python bench/bench_amplification.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing import Queue
from pathlib import Path

import httpx

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_readings
from edge_agent.codecs.compression import compress
from edge_agent.records import Reading
from simulators.hub_process import spawn_hub, stop_process
from sync_server import admin
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import upgrade

BOMB = compress(b'{"first_seq": 1, "events": [' + b"[]," * (20 * 2**20) + b"[]]}", "zstd")
UNAUTHENTICATED = b'{"a": [' + b"[]," * (8 * 2**20 // 3 - 10) + b"[]]}"


def p99(samples: list[float]) -> float:
    """The 99th percentile in milliseconds (the largest sample below 100)."""
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


def loop(until: float, pause_s: float, action: Callable[[], None], times: list[float]) -> None:
    """Run ``action`` until ``until``, timing each, ``pause_s`` apart."""
    while time.monotonic() < until:
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
        time.sleep(pause_s)


def attack_loop(url: str, token: str, attack: str, until: float, times: list[float]) -> None:
    """One attacker: the same hostile request again and again until ``until``."""
    with httpx.Client(base_url=url, timeout=120) as client:
        def hit() -> None:
            try:
                if attack == "amplification":
                    client.post("/v1/gateway/streams/events/batches", content=BOMB,
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": EVENTS_TYPE,
                                         "Content-Encoding": "zstd"})
                else:
                    client.put("/v1/policy/rules", content=UNAUTHENTICATED,
                               headers={"Content-Type": "application/json"})
            except httpx.TransportError:  # refused before the body was all sent: as meant
                pass

        loop(until, 0, hit, times)


def attackers_process(url: str, token: str, attack: str, count: int, until_in_s: float,
                      results: Queue[list[float]]) -> None:
    """``count`` attackers in their own process, so their work is not the probes' to share."""
    until = time.monotonic() + until_in_s
    times: list[float] = []
    threads = [threading.Thread(target=attack_loop, args=(url, token, attack, until, times))
               for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(times)


def run(url: str, tokens: dict[str, str], attack: str, attackers: int, seconds: float,
        first_seq: list[int]) -> dict[str, float]:
    """One run of ``seconds``; p99 of health, legitimate push and attack requests."""
    results: Queue[list[float]] = multiprocessing.get_context("spawn").Queue()
    hostile = None
    if attack != "baseline":
        hostile = multiprocessing.get_context("spawn").Process(
            target=attackers_process,
            args=(url, tokens["attacker"], attack, attackers, seconds + 2.0, results))
        hostile.start()
        time.sleep(1.5)  # the attackers are at work before the probes start
    until = time.monotonic() + seconds
    health: list[float] = []
    pushes: list[float] = []
    with (httpx.Client(base_url=url, timeout=60) as probe,
          httpx.Client(base_url=url, timeout=60,
                       headers={"Authorization": f"Bearer {tokens['legit']}"}) as pusher):

        def push() -> None:
            seq = first_seq[0]
            readings = [Reading(f"m{i % 20}", "voltage", 1_764_000_000_000 + (seq + i) * 1000,
                                230.0 + i % 7 / 10) for i in range(500)]
            body = compress(encode_readings(seq, readings), "zstd")
            started = time.perf_counter()
            answer = pusher.post("/v1/gateway/streams/readings/batches", content=body,
                                 headers={"Content-Type": READINGS_TYPE,
                                          "Content-Encoding": "zstd"})
            pushes.append(time.perf_counter() - started)
            if answer.status_code == 200:
                first_seq[0] += 500

        def check() -> None:
            probe.get("/v1/health").raise_for_status()

        threads = [threading.Thread(target=loop, args=(until, 0.02, check, health)),
                   threading.Thread(target=loop, args=(until, 0.1, push, []))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    attacks = results.get() if hostile is not None else []
    if hostile is not None:
        hostile.join()
    return {"health": p99(health), "push": p99(pushes), "attack": p99(attacks),
            "attacks": len(attacks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--attackers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        engine = create_hub_engine(f"sqlite:///{data_dir / 'hub.db'}")
        upgrade(engine)
        admin.add_territory(engine, "bench")
        admin.add_site(engine, "bench", "bench-site")
        codes = {name: admin.add_gateway(engine, "bench", "bench-site", name).code
                 for name in ("legit", "attacker")}
        url, process = spawn_hub(data_dir)
        try:
            tokens = {name: httpx.post(f"{url}/v1/enroll", json={"code": code},
                                       timeout=30).json()["token"]
                      for name, code in codes.items()}
            first_seq = [1]
            print(f"{'scenario':<16} {'health p99':>11} {'push p99':>10} {'attack p99':>11}"
                  f" {'attacks/run':>12}   (medians of {args.runs} runs of {args.seconds:g} s,"
                  f" {args.attackers} attackers)")
            for attack in ("baseline", "amplification", "unauthenticated"):
                results = [run(url, tokens, attack, args.attackers, args.seconds, first_seq)
                           for _ in range(args.runs)]
                median = {key: statistics.median(r[key] for r in results) for key in results[0]}
                print(f"{attack:<16} {median['health']:>8.0f} ms {median['push']:>7.0f} ms"
                      f" {median['attack']:>8.0f} ms {median['attacks']:>12.0f}")
        finally:
            stop_process(process)
            engine.dispose()


if __name__ == "__main__":
    main()
