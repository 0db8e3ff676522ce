"""A running gateway pulls the hub's signed bundles, keeps the newest verified one, and
refuses what it must: over real HTTP against a hub process, with files on a real disk."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_config
from edge_agent.runtime import BUNDLES_DIR, STATUS_FILE, Gateway
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.client import enroll
from edge_agent.sync.identity import Identity, save_identity
from sync_server import admin
from sync_server.bundles import publish_bundle
from sync_server.keys import load_signing_key
from tests.helpers.hub import HubProcess, start_hub

TERRITORY = "pull"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with start_hub(tmp_path_factory.mktemp("hub")) as running:
        running.territory(TERRITORY)
        yield running


def _publish(hub: HubProcess, payload: dict[str, Any], kind: str = "config",
             expires_in_s: int = 3600) -> int:
    key = load_signing_key(hub.data_dir / "signing-key.pem", demo=False)
    return publish_bundle(hub.engine, key, TERRITORY, kind, payload, expires_in_s=expires_in_s)


async def _provisioned(hub: HubProcess, tmp_path: Path, name: str) -> Identity:
    code = admin.add_gateway(hub.engine, TERRITORY, f"{TERRITORY}-site", name).code
    identity = await enroll(hub.url, code, insecure_http=True)
    save_identity(tmp_path / "data", identity)
    (tmp_path / "gateway.toml").write_text(
        f'[gateway]\nid = "{name}"\ndata_dir = "data"\n\n[sync]\n'
        "interval_s = 0.2\nbundle_interval_s = 0.2\nmax_backoff_s = 0.5\n", encoding="utf-8")
    return identity


def _bundles_status(tmp_path: Path) -> dict[str, Any]:
    try:
        status = json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    bundles: dict[str, Any] = status.get("sync", {}).get("bundles") or {}
    return bundles


async def _run_until(tmp_path: Path, done: Any) -> dict[str, Any]:
    """Run the gateway until ``done(bundles status)`` holds; the last status seen."""
    gateway = Gateway(load_config(tmp_path / "gateway.toml"))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        async with asyncio.timeout(20):
            while not done(bundles := _bundles_status(tmp_path)):
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return bundles


async def test_new_versions_are_pulled_verified_and_kept(hub: HubProcess, tmp_path: Path) -> None:
    identity = await _provisioned(hub, tmp_path, "pull-gw1")
    version = _publish(hub, {"poll": {"interval_s": 10}})
    seen = await _run_until(tmp_path, lambda b: b.get("held", {}).get("config", {}).get(
        "version") == version)
    assert seen["refused"] == 0
    store = BundleStore(tmp_path / "data" / BUNDLES_DIR, identity.signing_public_key, TERRITORY)
    current = store.current("config")
    assert current is not None
    assert current.payload == {"poll": {"interval_s": 10}}
    newer = _publish(hub, {"poll": {"interval_s": 20}})
    await _run_until(tmp_path, lambda b: b.get("held", {}).get("config", {}).get(
        "version") == newer)
    current = store.current("config")
    assert current is not None
    assert (current.version, current.payload) == (newer, {"poll": {"interval_s": 20}})


async def test_a_bundle_edited_on_disk_is_refused_and_reported(
    hub: HubProcess, tmp_path: Path
) -> None:
    await _provisioned(hub, tmp_path, "pull-gw2")
    _publish(hub, {"gates": ["a"]}, kind="policy")
    await _run_until(tmp_path, lambda b: "policy" in b.get("held", {}))
    path = tmp_path / "data" / BUNDLES_DIR / "policy.json"
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"b"'))
    seen = await _run_until(tmp_path, lambda b: b.get("refused", 0) >= 1)
    assert "policy on disk" in seen["last_refusal"]


async def test_an_expired_bundle_is_refused_and_the_held_one_kept(
    hub: HubProcess, tmp_path: Path
) -> None:
    await _provisioned(hub, tmp_path, "pull-gw3")
    good = _publish(hub, {"v": "good"})
    await _run_until(tmp_path, lambda b: b.get("held", {}).get("config", {}).get(
        "version") == good)
    _publish(hub, {"v": "short-lived"}, expires_in_s=1)
    await asyncio.sleep(1.2)
    seen = await _run_until(tmp_path, lambda b: b.get("refused", 0) >= 1)
    assert "expired" in seen["last_refusal"]
    assert seen["held"]["config"]["version"] == good
