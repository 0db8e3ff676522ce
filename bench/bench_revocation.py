"""Revocation propagation: a badge revoked at the hub → denied at the gate.

A hub process (SQLite, demo mode) holds a territory with 100,000 badges; a gateway provisioned
into it runs as in the field (edge_agent.runtime.Gateway) with the default sync settings
(``bundle_interval_s`` 60 s). Each round revokes one badge through the hub's registry (what
`sync-server badge revoke` and the operator API do: store, re-sign the whole policy), then asks
the gateway's engine every 20 ms what it decides for that card at the gate, and times revoke →
first ``revoked``. Rounds start at random moments of the pull cycle, as operators do. Also
printed: the hub's share (revoke + sign 100,000 badges) and the gateway's (fetch, verify,
parse), so the rest is the wait for the next pull.

Run: .venv/bin/python bench/bench_revocation.py [--rounds 4] [--badges 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from edge_agent.access.decision import Reason
from edge_agent.config import load_config
from edge_agent.records import now_ms
from edge_agent.runtime import Gateway
from edge_agent.sync.client import enroll
from edge_agent.sync.identity import save_identity
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.access.policy import PolicySigner, set_rules
from sync_server.access.registry import BadgeRef, import_badges, revoke_badge
from sync_server.db.migrate import upgrade
from sync_server.keys import load_signing_key

TERRITORY = "bench"
RULES = {"categories": ["boater"], "zones": {"pontoon": {}},
         "entitlements": [{"category": "boater", "zone": "pontoon"}],
         "gates": {"gate-a": {"zone": "pontoon"}}}


def card(number: int) -> bytes:
    return b"\x01" + number.to_bytes(4, "big")


async def run(directory: Path, badges: int, rounds: int) -> None:
    hub_dir = directory / "hub"
    hub_dir.mkdir()
    engine = demo_engine(hub_dir)
    upgrade(engine)
    admin.add_territory(engine, TERRITORY)
    admin.add_site(engine, TERRITORY, "site")
    code = admin.add_gateway(engine, TERRITORY, "site", "gw").code
    signer = PolicySigner(load_signing_key(hub_dir / "signing-key.pem", demo=True),
                          lifetime_s=7 * 86_400)
    set_rules(engine, signer, TERRITORY, RULES)
    csv = "number,form,category\n" + "".join(f"{card(n).hex()},hex,boater\n"
                                             for n in range(badges))
    started = time.perf_counter()
    import_badges(engine, signer, TERRITORY, csv.encode())
    print(f"registered {badges:,} badges in {time.perf_counter() - started:.1f} s")
    url, process = spawn_hub(hub_dir)
    try:
        identity = await enroll(url, code, insecure_http=True)
        save_identity(directory / "data", identity)
        (directory / "gateway.toml").write_text(
            '[gateway]\nid = "gw"\ndata_dir = "data"\n\n[[buses]]\nname = "b"\n'
            'tcp = "127.0.0.1:9"\n\n[[devices]]\nname = "relays"\nbus = "b"\n'
            'profile = "waveshare-relay-8ch"\nunit = 1\ninterval_s = 3600\n\n'
            '[[gates]]\nname = "gate-a"\nrelay = "relays"\nchannel = 1\n', encoding="utf-8")
        gateway = Gateway(load_config(directory / "gateway.toml"))
        interval = gateway.config.sync.bundle_interval_s
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        while gateway.access is None or gateway.access.engine.policy is None:
            await asyncio.sleep(0.1)
        engine_ = gateway.access.engine
        rng = random.Random(7)
        waits, hub_shares = [], []
        for number in rng.sample(range(badges), rounds):
            await asyncio.sleep(rng.uniform(0, interval))
            revoked_at = time.perf_counter()
            await asyncio.to_thread(revoke_badge, engine, signer, TERRITORY,
                                    BadgeRef(card(number).hex()))
            hub_shares.append(time.perf_counter() - revoked_at)
            while engine_.decide("gate-a", card(number), now_ms()).reason is not Reason.REVOKED:
                await asyncio.sleep(0.02)
            waits.append(time.perf_counter() - revoked_at)
            print(f"round: revoked -> denied in {waits[-1]:.1f} s (hub share "
                  f"{hub_shares[-1]:.2f} s)")
        stop.set()
        await task
    finally:
        stop_process(process)
        engine.dispose()
    print(f"revocation propagation with bundle_interval_s = {interval:g} s and {badges:,} "
          f"badges: median {statistics.median(waits):.1f} s, max {max(waits):.1f} s over "
          f"{rounds} rounds (bound: interval + hub share {statistics.median(hub_shares):.2f} s "
          "+ fetch and verify)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--badges", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(Path(directory), args.badges, args.rounds))


if __name__ == "__main__":
    main()
