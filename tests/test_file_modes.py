"""Gateways and hubs keep their files private whatever the umask: directories 0700, files 0600.

The hub's database holds every territory's badge key; a gateway's data directory holds its
token, its badge key and its records. Each test runs the real processes with a umask of 022
(the usual default, which would leave files world-readable) and reads the modes on disk
after real use: a hub served and pushed to, an agent provisioned, run and synced.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.records import Event, Reading
from edge_agent.runtime import OUTBOX_FILE, STATUS_FILE
from edge_agent.store import Outbox
from sync_server import admin
from sync_server.db.engine import create_hub_engine
from tests.helpers.gateway import agent, hub_content
from tests.helpers.hub import HubProcess, start_hub

TERRITORY = "modes"


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block, and every process it starts, under ``mask``."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def loose_entries(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (itself included) that is not 0700 (directory) or 0600."""
    loose = {}
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        wanted = 0o700 if stat.S_ISDIR(mode) else 0o600
        if stat.S_IMODE(mode) != wanted:
            loose[str(path.relative_to(root.parent))] = oct(stat.S_IMODE(mode))
    return loose


def test_a_hub_served_and_pushed_to_keeps_its_database_and_key_private(tmp_path: Path) -> None:
    with umask(0o022), start_hub(tmp_path / "hub") as hub:
        gateway = provisioned_gateway(tmp_path / "gw", hub)
        run_until_synced(gateway, hub)
        # Served and written to: the WAL and shared-memory files are there, beside the key.
        names = {path.name for path in hub.data_dir.iterdir()}
        assert {"hub.db", "hub.db-wal", "hub.db-shm", "signing-key.pem"} <= names
        assert loose_entries(hub.data_dir) == {}


def test_an_agent_provisioned_run_and_synced_keeps_its_data_directory_private(
    tmp_path: Path
) -> None:
    with umask(0o022), start_hub(tmp_path / "hub") as hub:
        gateway = provisioned_gateway(tmp_path / "gw", hub)
        data_dir = gateway.parent / "data"
        assert loose_entries(data_dir) == {}  # created by `provision`, with identity.json
        with Outbox.open(data_dir / OUTBOX_FILE) as outbox:  # a producer, as the agent's own
            outbox.append_readings([Reading("m1", "voltage", 1_764_000_000_000 + i, 230.0)
                                    for i in range(100)])
            outbox.append_events([Event("alarm.raised", "m1", 1_764_000_000_000, {})],
                                 stream="alarms")
        names = run_until_synced(gateway, hub)
    assert {"identity.json", "outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm",
            STATUS_FILE, "agent.lock"} <= names
    assert loose_entries(data_dir) == {}


def test_an_outbox_and_hub_database_left_readable_are_tightened_when_opened(
    tmp_path: Path
) -> None:
    """Stores created by an older version (0644) are made private the next time they open."""
    outbox_path = tmp_path / "data" / OUTBOX_FILE
    hub_path = tmp_path / "hub" / "hub.db"
    with umask(0o022):
        for path in (outbox_path, hub_path):
            path.parent.mkdir(mode=0o700)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").touch(mode=0o644)
        Outbox.open(outbox_path).close()
        create_hub_engine(f"sqlite:///{hub_path}").dispose()
    assert loose_entries(outbox_path.parent) == {}
    assert loose_entries(hub_path.parent) == {}


def provisioned_gateway(root: Path, hub: HubProcess) -> Path:
    """A gateway with no devices provisioned through the CLI; its config file."""
    root.mkdir()
    config = root / "gateway.toml"
    config.write_text('[gateway]\nid = "modes-gw"\ndata_dir = "data"\n\n'
                      "[sync]\ninterval_s = 0.2\ntimeout_s = 5\n", encoding="utf-8")
    hub.territory(TERRITORY)
    code = admin.add_gateway(hub.engine, TERRITORY, f"{TERRITORY}-site", "modes-gw").code
    agent("provision", "--config", str(config), "--hub", hub.url, "--code", code,
          "--insecure-http")
    return config


def run_until_synced(config: Path, hub: HubProcess) -> set[str]:
    """Run the agent until the hub holds its outbox; the data directory's names meanwhile."""
    data_dir = config.parent / "data"
    waiting = 0
    if (data_dir / OUTBOX_FILE).exists():
        with Outbox.open(data_dir / OUTBOX_FILE) as outbox:
            waiting = sum(stats.depth for stats in outbox.stats())
    process = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config",
                                str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / STATUS_FILE).exists() or sum(
                map(len, hub_content(hub, TERRITORY, "modes-gw").values())) < waiting:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the agent did not sync in 30 s"
            time.sleep(0.2)
        return {path.name for path in data_dir.iterdir()}
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=20)
        assert process.returncode == 0, log
