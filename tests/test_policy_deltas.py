"""Revocation in seconds: every push answer names the newest policy, the agent pulls it at
once as a signed delta from the version it holds, and falls back to the full bundle when a
delta is tampered with, starts at another version or rests on another base. Against a real
hub process over HTTP; the agent is the real gateway, or its real puller and store behind
a proxy that plays the attacker (simulators/hub_rewriter.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import msgspec
import pytest
from sqlalchemy import delete

from edge_agent.access.decision import Reason
from edge_agent.codecs.access_policy import BadgeRecord, pack_badges, policy_payload
from edge_agent.codecs.bundle import (
    canonical_json,
    generate_signing_key,
    public_key_bytes,
    sign_bundle,
    sign_envelope,
)
from edge_agent.codecs.bundle import verify_bundle as verify
from edge_agent.codecs.bundle_delta import (
    DELTA_MEDIA_TYPE,
    POLICY_VERSION_HEADER,
    apply_delta,
    decode_delta,
    encode_delta,
)
from edge_agent.config import load_config
from edge_agent.errors import BundleError
from edge_agent.profiles import load_profile
from edge_agent.records import Reading, now_ms
from edge_agent.runtime import STATUS_FILE, Gateway
from edge_agent.store import Batch
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.client import HubClient, enroll
from edge_agent.sync.identity import Identity, save_identity
from edge_agent.sync.pull import BundlePuller
from simulators.hub_rewriter import HubRewriter
from simulators.modbus import ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from sync_server import admin
from sync_server.access.policy import PolicySigner, publish_policy, set_rules
from sync_server.access.registry import BadgeRef, import_badges, revoke_badge
from sync_server.bundles import latest_bundle
from sync_server.db.schema import bundles
from sync_server.keys import load_signing_key
from tests.helpers.hub import HubProcess, start_hub

RULES: dict[str, Any] = {"categories": ["boater"], "zones": {"pontoon": {}},
                         "entitlements": [{"category": "boater", "zone": "pontoon"}],
                         "gates": {"gate-a": {"zone": "pontoon"}}}


def card(number: int) -> bytes:
    return b"\x01" + number.to_bytes(4, "big")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with start_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running


def signer(hub: HubProcess) -> PolicySigner:
    return PolicySigner(load_signing_key(hub.data_dir / "signing-key.pem", demo=False), 3600)


def territory(hub: HubProcess, name: str, badges: int = 1000) -> None:
    """``name`` with rules and ``badges`` badges: policy versions 1 (rules) and 2 (badges)."""
    hub.territory(name)
    set_rules(hub.engine, signer(hub), name, RULES)
    csv = "number,form,category\n" + "".join(f"{card(n).hex()},hex,boater\n"
                                             for n in range(badges))
    import_badges(hub.engine, signer(hub), name, csv.encode())


def revoke(hub: HubProcess, name: str, number: int) -> int:
    """Revoke badge ``number``; the territory's newest policy version after it."""
    revoke_badge(hub.engine, signer(hub), name, BadgeRef(card(number).hex()))
    return newest(hub, name)


def newest(hub: HubProcess, name: str) -> int:
    with hub.engine.connect() as conn:
        found = latest_bundle(conn, admin.territory_id(conn, name), "policy")
    assert found is not None
    return found[0]


async def provisioned(hub: HubProcess, name: str, gateway: str) -> Identity:
    code = admin.add_gateway(hub.engine, name, f"{name}-site", gateway).code
    return await enroll(hub.url, code, insecure_http=True)


async def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.05)
    return result


class Attacker(HubRewriter):
    """The network between the agent and the real hub: forwards everything, and rewrites
    what the test asks for (a delta's body, the base a delta is asked from, a push
    answer's version header)."""

    def __init__(self, hub_url: str) -> None:
        super().__init__(hub_url)
        self.change_delta: Callable[[dict[str, Any]], None] | None = None
        self.base_shift = 0
        self.hint: str | None = None
        self.deltas = 0
        self.full = 0

    def request(self, method: str, target: str) -> str:
        path, _, query = target.partition("?")
        params = dict(parse_qsl(query))
        if self.base_shift and "base" in params:
            params["base"] = str(int(params["base"]) + self.base_shift)
            return f"{path}?{urlencode(params)}"
        return target

    def answer(self, method: str, target: str, status: int,
               headers: list[tuple[str, str]], body: bytes) -> tuple[list[tuple[str, str]], bytes]:
        kind = next((v for k, v in headers if k.lower() == "content-type"), "")
        if target.partition("?")[0].endswith("/bundles/policy") and status == 200:
            self.deltas += kind == DELTA_MEDIA_TYPE
            self.full += kind != DELTA_MEDIA_TYPE
        if kind == DELTA_MEDIA_TYPE and self.change_delta is not None:
            document = json.loads(body)
            self.change_delta(document["delta"])
            body = json.dumps(document).encode()
        if self.hint is not None and method == "POST":
            headers = [(k, v) for k, v in headers if k.lower() != POLICY_VERSION_HEADER.lower()]
            headers.append((POLICY_VERSION_HEADER, self.hint))
        return headers, body


_TERRITORIES = itertools.count(1)


@pytest.fixture
async def agent(hub: HubProcess, tmp_path: Path
                ) -> AsyncIterator[tuple[str, Attacker, BundlePuller]]:
    """A territory of its own, and the agent's puller and store holding its version 3."""
    name = f"deltas-{next(_TERRITORIES)}"
    territory(hub, name)
    revoke(hub, name, 40)
    identity = await provisioned(hub, name, f"{name}-gw")
    async with Attacker(hub.url) as attacker, \
            HubClient(msgspec.structs.replace(identity, hub_url=attacker.url)) as client:
        store = BundleStore(tmp_path / "bundles", identity.signing_public_key, name)
        puller = BundlePuller(client, store, interval_s=3600)
        assert await puller.pull("policy")
        assert attacker.full == 1
        yield name, attacker, puller


async def test_revoked_at_the_hub_is_denied_at_the_gate_through_the_push_answer(
        hub: HubProcess, tmp_path: Path) -> None:
    """With pulls every hour, only the push answer can bring the revocation in seconds."""
    name = "gate"
    territory(hub, name)
    identity = await provisioned(hub, name, "gate-gw")
    save_identity(tmp_path / "data", identity)
    meter = SimulatedMeter(2, load_profile("eastron-sdm120"), seed=2, update_interval=0.2)
    async with ModbusSimulator([SimulatedRelayBoard(1), meter]) as field:
        (tmp_path / "gateway.toml").write_text(f"""
[gateway]
id = "gate-gw"
data_dir = "data"

[sync]
interval_s = 0.2
bundle_interval_s = 3600

[[buses]]
name = "pontoon"
tcp = "{field.endpoint}"

[[devices]]
name = "relays"
bus = "pontoon"
profile = "waveshare-relay-8ch"
unit = 1
interval_s = 60

[[devices]]
name = "meter"
bus = "pontoon"
profile = "eastron-sdm120"
unit = 2
interval_s = 0.5
quantities = ["voltage"]

[[gates]]
name = "gate-a"
relay = "relays"
channel = 1
""", encoding="utf-8")
        gateway = Gateway(load_config(tmp_path / "gateway.toml"))
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            await until(lambda: gateway.access is not None
                        and gateway.access.engine.policy is not None)
            assert gateway.access is not None
            engine = gateway.access.engine
            assert engine.decide("gate-a", card(7), now_ms()).reason is Reason.GRANTED
            version = await asyncio.to_thread(revoke, hub, name, 7)
            await until(lambda: engine.decide("gate-a", card(7), now_ms()).reason
                        is Reason.REVOKED)
            assert engine.decide("gate-a", card(8), now_ms()).reason is Reason.GRANTED
            status = await until(lambda: _bundles(tmp_path).get("deltas"))
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
    status = _bundles(tmp_path)
    assert status["held"]["policy"]["version"] == version
    assert status["hinted_pulls"] >= 1
    assert status["delta_fallbacks"] == 0


def _bundles(tmp_path: Path) -> dict[str, Any]:
    try:
        status = json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    found: dict[str, Any] = (status.get("sync") or {}).get("bundles") or {}
    return found


async def test_each_push_answer_names_the_newest_policy(
        hub: HubProcess, agent: tuple[str, Attacker, BundlePuller]) -> None:
    name, _attacker, puller = agent
    client = puller.client

    async def push(seq: int) -> int | None:
        batch = Batch("readings", [(seq, Reading("m", "voltage", now_ms(), 230.0))], seq, seq)
        await client.push(batch, sent_at_ms=now_ms(), backlog=0)
        return client.newest_policy

    assert await push(1) == newest(hub, name) == 3
    version = await asyncio.to_thread(revoke, hub, name, 3)
    seq = 2
    async with asyncio.timeout(10):  # the hub remembers the newest version for a second
        while await push(seq) != version:
            seq += 1
            await asyncio.sleep(0.1)
    assert client.bad_version_hints == 0


async def test_a_malformed_version_header_is_ignored_and_counted(
        agent: tuple[str, Attacker, BundlePuller]) -> None:
    _name, attacker, puller = agent
    attacker.hint = "7; DROP"
    batch = Batch("readings", [(1, Reading("m", "voltage", now_ms(), 230.0))], 1, 1)
    acked = await puller.client.push(batch, sent_at_ms=now_ms(), backlog=0)
    assert acked["readings"] == 1, "the records are acknowledged all the same"
    assert puller.client.newest_policy is None
    assert puller.client.bad_version_hints == 1


async def test_a_revocation_travels_as_a_delta_of_under_a_kilobyte(
        hub: HubProcess, agent: tuple[str, Attacker, BundlePuller]) -> None:
    name, attacker, puller = agent
    version = await asyncio.to_thread(revoke, hub, name, 5)
    client = puller.client
    fetched = await client.pull_bundle("policy", None, base=3)
    assert fetched is not None
    assert fetched.delta
    assert len(fetched.content) < 1024
    assert await puller.pull("policy")
    assert (attacker.deltas, attacker.full) == (2, 1)
    held = puller.store.current("policy")
    assert held is not None
    assert held.version == version
    assert puller.state.deltas == 1
    assert puller.state.delta_fallbacks == 0
    assert await client.pull_bundle("policy", None, base=version) is None, "304 when held"


@pytest.mark.parametrize("attack", ["tampered", "gap"])
async def test_a_refused_delta_falls_back_to_the_full_policy_and_is_counted(
        hub: HubProcess, agent: tuple[str, Attacker, BundlePuller], attack: str,
        caplog: pytest.LogCaptureFixture) -> None:
    name, attacker, puller = agent
    if attack == "tampered":
        attacker.change_delta = lambda delta: delta.update(
            upsert=base64.b64encode(BadgeRecord(b"\x42" * 16, 0).pack()).decode())
        reason = "signature does not match the delta"
    else:  # the hub is asked for a delta from version 2, the agent holds version 3
        attacker.base_shift = -1
        reason = "gap: the delta starts at version 2, this gateway holds version 3"
    version = await asyncio.to_thread(revoke, hub, name, 9)
    with caplog.at_level(logging.WARNING, "edge_agent.sync"):
        assert await puller.pull("policy")
    assert (attacker.deltas, attacker.full) == (1, 2)
    assert puller.state.delta_fallbacks == 1
    assert reason in puller.state.last_delta_fallback
    assert any("refused the hub's policy delta" in r.getMessage() and reason in r.getMessage()
               for r in caplog.records)
    held = puller.store.current("policy")
    assert held is not None
    assert held.version == version


async def test_a_delta_on_a_rewritten_history_falls_back_to_the_full_policy(
        hub: HubProcess, agent: tuple[str, Attacker, BundlePuller]) -> None:
    """The hub lost its version 3 (a database restored from a backup) and signed another
    version 3: a delta from it does not fit the version 3 the gateway holds."""
    name, attacker, puller = agent
    with hub.engine.begin() as conn:
        tid = admin.territory_id(conn, name)
        conn.execute(delete(bundles).where(bundles.c.territory_id == tid,
                                           bundles.c.version >= 3))
    await asyncio.to_thread(publish_policy, hub.engine, signer(hub), name)
    version = await asyncio.to_thread(revoke, hub, name, 11)
    assert await puller.pull("policy")
    assert (attacker.deltas, attacker.full) == (1, 2)
    assert puller.state.delta_fallbacks == 1
    assert "wrong base: the hub's version 3" in puller.state.last_delta_fallback
    assert puller.state.held["policy"]["version"] == version


async def test_a_hint_arriving_while_the_policy_is_pulled_is_not_lost(
        hub: HubProcess, agent: tuple[str, Attacker, BundlePuller]) -> None:
    """The push loop and the puller run side by side: a push answer naming a new policy can
    come while the puller is fetching the old one. That pull brings nothing new; the hint
    must still bring the new version at once, not at the next round an hour later."""
    name, attacker, puller = agent
    revoked: list[int] = []
    answer = attacker.answer

    def revoke_during_the_pull(method: str, target: str, status: int,
                               headers: list[tuple[str, str]], body: bytes
                               ) -> tuple[list[tuple[str, str]], bytes]:
        if target.partition("?")[0].endswith("/bundles/policy") and not revoked:
            revoked.append(revoke(hub, name, 13))  # after the hub answered: nothing new
            puller.hint(revoked[0])  # as the push loop does on its own answer meanwhile
        return answer(method, target, status, headers, body)

    attacker.answer = revoke_during_the_pull  # type: ignore[method-assign]
    task = asyncio.create_task(puller.run())
    try:
        await until(lambda: revoked and puller.state.held["policy"]["version"] == revoked[0],
                    timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert puller.state.hinted_pulls == 1


async def test_hostile_base_versions_get_a_clear_refusal(hub: HubProcess) -> None:
    territory(hub, "hostile-a")
    revoke(hub, "hostile-a", 1)
    territory(hub, "hostile-b")
    for number in range(4):  # territory b is four versions ahead
        revoke(hub, "hostile-b", number)
    token = hub.enroll("hostile-a")["token"]
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as http:
        for bad in ("-1", "0", str(2**53 + 1), "9" * 40, "2.5", "two"):
            answer = http.get("/v1/gateway/bundles/policy", params={"base": bad})
            assert answer.status_code == 400, bad
            assert answer.json()["error"] == "invalid_request"
            assert "base" in answer.json()["detail"]
        ahead = http.get("/v1/gateway/bundles/policy", params={"base": newest(hub, "hostile-b")})
        assert ahead.status_code == 409
        assert ahead.json()["error"] == "unknown_base"
        assert "newer than this territory's newest policy, version 3" in ahead.json()["detail"]
        assert http.get("/v1/gateway/bundles/policy",
                        params={"base": 3}).status_code == 304
        delta = http.get("/v1/gateway/bundles/policy", params={"base": 2})
    assert delta.headers["content-type"] == DELTA_MEDIA_TYPE
    assert json.loads(delta.content)["delta"]["territory"] == "hostile-a"


def test_a_delta_rebuilds_the_signed_target_exactly() -> None:
    """Badges added, changed and removed, and a rule field changed: the rebuilt policy is
    the one the hub signed, byte for byte; a delta that removes what the base lacks, or
    that the base does not fit, is refused."""
    key = generate_signing_key()
    public = public_key_bytes(key)
    records = [BadgeRecord(bytes([n]) * 16, 0) for n in range(1, 40)]

    def signed(version: int, badges: list[BadgeRecord], rules: dict[str, Any]
               ) -> dict[str, Any]:
        return sign_bundle(key, kind="policy", territory="t", version=version,
                           issued_at_ms=version, expires_at_ms=10**13,
                           payload=policy_payload(rules, pack_badges(badges)))

    base = signed(4, records, RULES)
    changed = [BadgeRecord(records[0].pseudonym, 0, revoked=True), *records[2:],
               BadgeRecord(b"\xff" * 16, 0, master=True)]
    target = signed(7, changed, {**RULES, "timezone": "UTC"})
    delta = decode_delta(encode_delta(key, base, target), public, territory="t")
    held = verify(base, public, kind="policy", territory="t")
    rebuilt = apply_delta(held, delta, public)
    assert rebuilt.envelope == verify(target, public, kind="policy", territory="t").envelope
    with pytest.raises(BundleError, match="territory 't', this gateway belongs to 'u'"):
        decode_delta(encode_delta(key, base, target), public, territory="u")
    smaller = verify(signed(4, records[1:], RULES), public, kind="policy", territory="t")
    with pytest.raises(BundleError, match="wrong base"):
        apply_delta(smaller, delta, public)
    with pytest.raises(BundleError, match="a delta goes forward"):
        encode_delta(key, target, base)


def _hostile(change: Callable[[dict[str, Any]], None]) -> tuple[bytes, bytes]:
    """A delta changed by ``change`` and signed again with the key: only its shape is wrong."""
    key = generate_signing_key()
    records = [BadgeRecord(bytes([n]) * 16, 0) for n in range(1, 9)]
    bundles_ = [sign_bundle(key, kind="policy", territory="t", version=version,
                            issued_at_ms=version, expires_at_ms=10**13,
                            payload=policy_payload(RULES, pack_badges(records[:version + 4])))
                for version in (1, 2)]
    body = json.loads(encode_delta(key, *bundles_))["delta"]
    change(body)
    return canonical_json(sign_envelope(key, "delta", body)), public_key_bytes(key)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("base_sha256"), "delta lacks ['base_sha256']"),
    (lambda d: d.update(extra=1), "has unknown ['extra']"),
    (lambda d: d.update(kind="config"), "deltas are for policies"),
    (lambda d: d.update(version=1), "from version 1 to 1, not forward"),
    (lambda d: d.update(base_version=-1), "'base_version' must be an integer"),
    (lambda d: d.update(upsert="not base64!"), "'upsert' is not valid base64"),
    (lambda d: d.update(upsert=base64.b64encode(b"x" * 25).decode()), "whole 26-byte"),
    (lambda d: d.update(remove=base64.b64encode(b"\x02" * 16 + b"\x01" * 16).decode()),
     "'remove' is not sorted"),
    (lambda d: d.update(set={"badges": ""}), "'set' must be an object of rule fields"),
    (lambda d: d.update(unset=[1]), "'unset' must be a list of field names"),
])
def test_a_delta_of_the_wrong_shape_is_refused_whatever_signed_it(
        change: Callable[[dict[str, Any]], None], message: str) -> None:
    data, public = _hostile(change)
    with pytest.raises(BundleError, match=re.escape(message)):
        decode_delta(data, public, territory="t")
