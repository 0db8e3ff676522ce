"""A real hub for tests: ``sync-server serve`` in a subprocess on an ephemeral port.

Registry actions (territories, gateways, tokens) go straight through ``sync_server.admin`` on
the same database, as an operator's CLI would; gateways and operators then talk HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.db.migrate import upgrade

__all__ = ["ACCESS_RULES", "HubProcess", "Territory", "start_hub"]

#: Policy rules for access tests: three categories, a zone, three services, a schedule.
ACCESS_RULES: dict[str, Any] = {
    "timezone": "Europe/Paris",
    "categories": ["resident", "visitor", "staff"],
    "zones": {"harbour": {}},
    "services": ["pool", "library", "power"],
    "schedules": {"day": {"windows": [{"days": "mon-sun", "start": "07:00", "end": "21:00"}]}},
    "entitlements": [{"category": "resident", "zone": "harbour"},
                     {"category": "staff", "zone": "harbour"},
                     {"category": "resident", "service": "pool", "schedule": "day"}],
    "gates": {"gate-a": {"zone": "harbour"}, "pool-gate": {"service": "pool"}},
}


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

    def operator(self, territory: str) -> httpx.Client:
        """An HTTP client holding ``territory``'s operator token (close it when done)."""
        token = self.territory(territory).operator_token
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGKILL to simulate a crash) and wait for it."""
        stop_process(self.process, sig)


@contextmanager
def start_hub(data_dir: Path, database_url: str | None = None, *,
              serve_args: Sequence[str] = ()) -> Iterator[HubProcess]:
    """A migrated database and a hub serving it (``serve_args`` given to ``sync-server
    serve``); stopped and disposed of at exit."""
    url = database_url or f"sqlite:///{data_dir / 'hub.db'}"
    engine = demo_engine(data_dir, url)
    upgrade(engine)
    base, process = spawn_hub(data_dir, url, serve_args=serve_args)
    hub = HubProcess(base, data_dir, url, engine, process)
    try:
        yield hub
    finally:
        hub.stop()
        engine.dispose()


def hub_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``sync-server ARGS`` as an operator types it, on the hub in ``data_dir``."""
    env = {**os.environ, "PONTON_HUB_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("PONTON_HUB_DEMO", None)
    return subprocess.run([sys.executable, "-m", "sync_server", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def hub_cli_ok(data_dir: Path, *args: str) -> str:
    """The output of a ``sync-server`` command that must succeed."""
    done = hub_cli(data_dir, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout

