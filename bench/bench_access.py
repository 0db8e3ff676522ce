"""Access decisions at scale: decision latency, and the policy bundle's size and verify time.

Decision latency: a policy of N badges (100,000 and 1,000,000: a city card and a large
controller's capacity), cards presented at random (90 % registered, 10 % unknown) at a gate
whose entitlement has a schedule, so the full path runs: HMAC pseudonym, binary search in
the packed table, validity, entitlement, schedule in Europe/Paris. Each decision is timed on
its own (perf_counter_ns); p50 and p99 over the presentations, median of the runs. Baseline in
the same run: the bare HMAC plus a Python dict lookup of the same keys (the least a decision
can cost), so the gap is the policy's own work.

Bundle: the payload of 100,000 badges signed as the hub signs it (Ed25519 over canonical
JSON), its size raw and zstd-compressed (as the hub may send it), and the time a gateway
takes to verify the signature and parse the policy, median of the runs.

Run: .venv/bin/python bench/bench_access.py [--runs 5] [--decisions 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from edge_agent.access.engine import AccessEngine
from edge_agent.codecs.access_policy import BadgeRecord, pack_badges, parse_policy, policy_payload
from edge_agent.codecs.bundle import (
    generate_signing_key,
    public_key_bytes,
    sign_bundle,
    verify_bundle,
)
from edge_agent.codecs.compression import compress
from edge_agent.codecs.pseudonyms import pseudonym

KEY = bytes(range(32))
NOW_MS = 1_784_102_400_000  # 2026-07-15 10:00 Paris: inside the schedule
RULES = {
    "timezone": "Europe/Paris",
    "categories": ["resident", "child", "senior", "visitor"],
    "zones": {"pool": {}},
    "services": [],
    "schedules": {"opening": {"windows": [{"days": "mon-sun", "start": "07:00",
                                           "end": "21:00"}]}},
    "entitlements": [{"category": name, "zone": "pool", "schedule": "opening"}
                     for name in ("resident", "child", "senior", "visitor")],
    "gates": {"turnstile": {"zone": "pool"}},
}


def raw_card(number: int) -> bytes:
    """An EM4100 card: version byte and 32-bit number."""
    return b"\x01" + number.to_bytes(4, "big")


def payload_of(count: int) -> dict[str, object]:
    records = (BadgeRecord(pseudonym(KEY, raw_card(n)), n % 4, 0, 0xFFFFFFFF, n % 97 == 0)
               for n in range(count))
    return policy_payload(RULES, pack_badges(records))


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def decision_run(engine: AccessEngine, lookup: dict[bytes, int], cards: list[bytes]
                 ) -> tuple[list[int], list[int]]:
    decide, clock = engine.decide, time.perf_counter_ns
    policy_times, baseline_times = [], []
    for raw in cards:
        start = clock()
        decide("turnstile", raw, NOW_MS)
        policy_times.append(clock() - start)
        start = clock()
        _ = lookup.get(pseudonym(KEY, raw))
        baseline_times.append(clock() - start)
    return policy_times, baseline_times


def bench_decisions(count: int, runs: int, decisions: int) -> None:
    started = time.perf_counter()
    policy = parse_policy(payload_of(count), version=1, expires_at_ms=NOW_MS + 86_400_000)
    built_s = time.perf_counter() - started
    lookup = {pseudonym(KEY, raw_card(n)): n for n in range(0, count, max(1, count // 100_000))}
    engine = AccessEngine(KEY, policy)
    rng = random.Random(count)
    p50s, p99s, base50s, base99s = [], [], [], []
    for _ in range(runs):
        cards = [raw_card(rng.randrange(count) if rng.random() < 0.9 else count + rng.randrange(
            1_000_000)) for _ in range(decisions)]
        times, baseline = decision_run(engine, lookup, cards)
        p50s.append(percentile(times, 0.50))
        p99s.append(percentile(times, 0.99))
        base50s.append(percentile(baseline, 0.50))
        base99s.append(percentile(baseline, 0.99))
    print(f"{count:>9,} badges (table {len(policy.badges) * 26 / 2**20:.1f} MiB, built "
          f"{built_s:.1f} s): decision p50 {statistics.median(p50s):.1f} us, p99 "
          f"{statistics.median(p99s):.1f} us | baseline HMAC + dict p50 "
          f"{statistics.median(base50s):.1f} us, p99 {statistics.median(base99s):.1f} us")


def bench_bundle(count: int, runs: int) -> None:
    key = generate_signing_key()
    payload = payload_of(count)
    envelope = sign_bundle(key, kind="policy", territory="bench", version=1,
                           issued_at_ms=NOW_MS, expires_at_ms=NOW_MS + 86_400_000,
                           payload=payload)
    data = json.dumps(envelope, separators=(",", ":")).encode()
    zstd = compress(data, "zstd")
    verify_s, parse_s = [], []
    public = public_key_bytes(key)
    for _ in range(runs):
        start = time.perf_counter()
        bundle = verify_bundle(data, public, kind="policy", territory="bench")
        verify_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        parse_policy(bundle.payload, version=bundle.version, expires_at_ms=bundle.expires_at_ms)
        parse_s.append(time.perf_counter() - start)
    print(f"policy bundle of {count:,} badges: {len(data) / 1e6:.2f} MB signed JSON "
          f"({len(data) / count:.1f} B/badge), {len(zstd) / 1e6:.2f} MB zstd; verify "
          f"{statistics.median(verify_s) * 1000:.0f} ms + parse "
          f"{statistics.median(parse_s) * 1000:.0f} ms (median of {runs})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    for count in (100_000, 1_000_000):
        bench_decisions(count, args.runs, args.decisions)
    bench_bundle(100_000, args.runs)


if __name__ == "__main__":
    main()
