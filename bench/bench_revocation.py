"""Revocation propagation: a badge revoked at the hub → denied at the gate, old path vs new.

A hub process (SQLite, demo mode) holds a territory with 100,000 badges. Two gateways
provisioned into it run as in the field (edge_agent.runtime.Gateway), each reading a
simulated meter every second and pushing every 5 s (the default ``interval_s``), with the
default ``bundle_interval_s`` of 60 s:

* **new**: the agent as it is: each push answer names the newest policy, and the agent
  pulls it at once as a delta from the version it holds;
* **old**: the same agent behind a proxy that removes what the new protocol adds
  (the push answer's ``X-Ponton-Policy-Version``, the ``base`` of a pull), so it sees a hub
  of before: it learns of a revocation at its next pull and fetches the whole policy.

Each round revokes one badge through the hub's registry (what `sync-server badge revoke`
and the operator API do: store, re-sign the whole policy) at a random moment, then asks
both gateways' engines every 20 ms what they decide for that card at the gate, and times
revoke → first ``revoked``. Rounds follow each other as soon as the new path denied (plus
a random 0-5 s), the old path's waits run on in the background. Then the wire cost of one
revocation: the delta a gateway one version behind gets, against the full bundle.

Run: .venv/bin/python bench/bench_revocation.py [--rounds 20] [--badges 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import msgspec

from edge_agent.access.decision import Reason
from edge_agent.codecs.bundle_delta import DELTA_MEDIA_TYPE, POLICY_VERSION_HEADER
from edge_agent.config import GatewayConfig, load_config
from edge_agent.profiles import load_profile
from edge_agent.records import now_ms
from edge_agent.runtime import Gateway
from edge_agent.sync.client import HubClient, enroll
from edge_agent.sync.identity import Identity, save_identity
from simulators.hub_process import demo_engine, spawn_hub, stop_process
from simulators.hub_rewriter import HubRewriter
from simulators.modbus import ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
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


class HubOfBefore(HubRewriter):
    """The network to a hub without policy hints or deltas: strips what they add."""

    def request(self, method: str, target: str) -> str:
        path, _, query = target.partition("?")
        kept = [(k, v) for k, v in parse_qsl(query) if k != "base"]
        return f"{path}?{urlencode(kept)}" if kept else path

    def answer(self, method: str, target: str, status: int,
               headers: list[tuple[str, str]], body: bytes) -> tuple[list[tuple[str, str]], bytes]:
        return [(k, v) for k, v in headers if k.lower() != POLICY_VERSION_HEADER.lower()], body


class OldGateway(Gateway):
    """The gateway as it was before policy hints and deltas: it reaches its hub through
    ``before_url``, a running ``HubOfBefore``."""

    def __init__(self, config: GatewayConfig, before_url: str) -> None:
        super().__init__(config)
        self._before_url = before_url

    def _hub_client(self, identity: Identity | None) -> HubClient | None:
        if identity is None:
            return None
        return HubClient(msgspec.structs.replace(identity, hub_url=self._before_url))


def p99(values: list[float]) -> float:
    """The nearest-rank 99th percentile (the maximum below 100 values)."""
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


async def start_gateway(directory: Path, url: str, code: str, endpoint: str, unit: int,
                        make: Callable[[GatewayConfig], Gateway]) -> Gateway:
    directory.mkdir()
    save_identity(directory / "data", await enroll(url, code, insecure_http=True))
    (directory / "gateway.toml").write_text(
        f'[gateway]\nid = "{directory.name}"\ndata_dir = "data"\n\n'
        f'[[buses]]\nname = "b"\ntcp = "{endpoint}"\n\n'
        '[[devices]]\nname = "relays"\nbus = "b"\nprofile = "waveshare-relay-8ch"\nunit = 1\n'
        'interval_s = 3600\n\n'
        f'[[devices]]\nname = "meter"\nbus = "b"\nprofile = "eastron-sdm120"\nunit = {unit}\n'
        'interval_s = 1\nquantities = ["voltage"]\n\n'
        '[[gates]]\nname = "gate-a"\nrelay = "relays"\nchannel = 1\n', encoding="utf-8")
    return make(load_config(directory / "gateway.toml"))


async def denied_after(gateway: Gateway, number: int, revoked_at: float) -> float:
    """Seconds from ``revoked_at`` until ``gateway`` denies card ``number`` as revoked."""
    assert gateway.access is not None
    engine = gateway.access.engine
    while engine.decide("gate-a", card(number), now_ms()).reason is not Reason.REVOKED:
        await asyncio.sleep(0.02)
    return time.perf_counter() - revoked_at


async def wire_sizes(url: str, token: str) -> tuple[int, int]:
    """Bytes of the newest full policy and of the delta from the version before it."""
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        full = await http.get("/v1/gateway/bundles/policy")
        version = int(full.headers["ETag"].strip('"').removeprefix("policy-"))
        delta = await http.get("/v1/gateway/bundles/policy", params={"base": version - 1})
    assert delta.headers["content-type"] == DELTA_MEDIA_TYPE, "the hub sent no delta"
    return len(full.content), len(delta.content)


async def run(directory: Path, badges: int, rounds: int) -> None:
    hub_dir = directory / "hub"
    hub_dir.mkdir()
    engine = demo_engine(hub_dir)
    upgrade(engine)
    admin.add_territory(engine, TERRITORY)
    admin.add_site(engine, TERRITORY, "site")
    signer = PolicySigner(load_signing_key(hub_dir / "signing-key.pem", demo=True),
                          lifetime_s=7 * 86_400)
    set_rules(engine, signer, TERRITORY, RULES)
    csv = "number,form,category\n" + "".join(f"{card(n).hex()},hex,boater\n"
                                             for n in range(badges))
    started = time.perf_counter()
    import_badges(engine, signer, TERRITORY, csv.encode())
    print(f"registered {badges:,} badges in {time.perf_counter() - started:.1f} s")
    url, process = spawn_hub(hub_dir)
    meters = [SimulatedMeter(unit, load_profile("eastron-sdm120"), seed=unit) for unit in (2, 3)]
    try:
        async with ModbusSimulator([SimulatedRelayBoard(1), *meters]) as field, \
                HubOfBefore(url) as before:
            codes = [admin.add_gateway(engine, TERRITORY, "site", name).code
                     for name in ("new", "old", "probe")]
            new = await start_gateway(directory / "new", url, codes[0], field.endpoint, 2,
                                      Gateway)
            old = await start_gateway(directory / "old", url, codes[1], field.endpoint, 3,
                                      lambda config: OldGateway(config, before.url))
            stop = asyncio.Event()
            tasks = [asyncio.create_task(gateway.run(stop)) for gateway in (new, old)]
            while any(g.access is None or g.access.engine.policy is None for g in (new, old)):
                await asyncio.sleep(0.1)
            interval = new.config.sync.bundle_interval_s
            rng = random.Random(7)
            new_waits, hub_shares = [], []
            old_tasks = []
            for number in rng.sample(range(badges), rounds):
                await asyncio.sleep(rng.uniform(0, new.config.sync.interval_s))
                revoked_at = time.perf_counter()
                await asyncio.to_thread(revoke_badge, engine, signer, TERRITORY,
                                        BadgeRef(card(number).hex()))
                hub_shares.append(time.perf_counter() - revoked_at)
                old_tasks.append(asyncio.create_task(denied_after(old, number, revoked_at)))
                new_waits.append(await denied_after(new, number, revoked_at))
                print(f"round: new path denied in {new_waits[-1]:.1f} s (hub share "
                      f"{hub_shares[-1]:.2f} s)", flush=True)
            old_waits = list(await asyncio.gather(*old_tasks))
            stop.set()
            await asyncio.gather(*tasks)
            identity = await enroll(url, codes[2], insecure_http=True)
            full, delta = await wire_sizes(url, identity.token)
    finally:
        stop_process(process)
        engine.dispose()
    print(f"\nrevoked at the hub -> denied at the gate, {badges:,} badges, pushes every "
          f"{new.config.sync.interval_s:g} s, bundle_interval_s {interval:g} s, "
          f"{rounds} rounds:")
    for label, waits in (("old path (next pull, full bundle)", old_waits),
                         ("new path (push answer, delta)", new_waits)):
        print(f"  {label:36} median {statistics.median(waits):5.1f} s  p99 "
              f"{p99(waits):5.1f} s  max {max(waits):5.1f} s")
    print(f"  p99 ratio new/old: {p99(new_waits) / p99(old_waits):.3f}; median hub share "
          f"(revoke + sign {badges:,} badges) {statistics.median(hub_shares):.2f} s")
    print(f"one revocation on the wire: delta {delta:,} B, full bundle {full:,} B, "
          f"ratio {delta / full:.6f} (1/{full / delta:,.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--badges", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(Path(directory), args.badges, args.rounds))


if __name__ == "__main__":
    main()
