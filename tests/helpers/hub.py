"""A real hub for tests: ``sync-server serve`` in a subprocess on an ephemeral port.

Registry actions (territories, gateways, tokens) go straight through ``sync_server.admin`` on
the same database, as an operator's CLI would; gateways and operators then talk HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine

from sync_server import admin
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import upgrade

__all__ = ["HubProcess", "Territory", "spawn_hub", "start_hub"]

_START_TIMEOUT_S = 30


@dataclass
class Territory:
    """A territory with one site, ready to enroll gateways and read data."""

    name: str
    site: str
    operator_token: str


@dataclass
class HubProcess:
    """A running hub and the database behind it."""

    url: str
    data_dir: Path
    database_url: str
    engine: Engine
    process: subprocess.Popen[str]
    territories: dict[str, Territory] = field(default_factory=dict)

    def territory(self, name: str) -> Territory:
        """Territory ``name`` with site ``<name>-site`` and an operator token (made once)."""
        if name not in self.territories:
            admin.add_territory(self.engine, name)
            admin.add_site(self.engine, name, f"{name}-site")
            token = admin.add_operator_token(self.engine, name, "tests")
            self.territories[name] = Territory(name, f"{name}-site", token)
        return self.territories[name]

    def enroll(self, territory: str, gateway: str | None = None) -> dict[str, str]:
        """Register a gateway in ``territory`` and redeem its code over HTTP."""
        site = self.territory(territory).site
        code = admin.add_gateway(self.engine, territory, site, gateway).code
        answer = httpx.post(f"{self.url}/v1/enroll", json={"code": code}, timeout=10)
        answer.raise_for_status()
        identity: dict[str, str] = answer.json()
        return identity

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGKILL to simulate a crash) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.communicate(timeout=20)


def spawn_hub(
    data_dir: Path, database_url: str, port: int = 0
) -> tuple[str, subprocess.Popen[str]]:
    """Start ``sync-server serve`` and wait for its READY line."""
    env = {**os.environ, "PONTON_HUB_DATA_DIR": str(data_dir),
           "PONTON_HUB_DATABASE_URL": database_url, "PONTON_HUB_DEMO": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sync_server", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if line[:1] != ["READY"]:
        process.kill()
        _, err = process.communicate(timeout=_START_TIMEOUT_S)
        raise RuntimeError(f"hub did not start: {line} {err}")
    return line[1], process


@contextmanager
def start_hub(data_dir: Path, database_url: str | None = None) -> Iterator[HubProcess]:
    """A migrated database and a hub serving it; stopped and disposed of at exit."""
    url = database_url or f"sqlite:///{data_dir / 'hub.db'}"
    engine = create_hub_engine(url)
    upgrade(engine)
    base, process = spawn_hub(data_dir, url)
    hub = HubProcess(base, data_dir, url, engine, process)
    try:
        yield hub
    finally:
        hub.stop()
        engine.dispose()
