"""The hub side of the demo: a sync hub on embedded defaults, and the gateway enrolled in it.

The hub runs as its own process (``sync-server serve`` in demo mode: SQLite in
``demo-data/hub/``, a throwaway signing key); the territory, site and gateway are registered
as an operator would, and the agent is provisioned through ``edge-agent provision``, the
command an installer types. The demo then reads what arrived through the operator API.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from simulators.hub_process import spawn_hub, stop_process
from sync_server import admin
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import upgrade

__all__ = ["DemoHub"]

TERRITORY = "dunkerque"
SITE = "port-du-grand-large"
GATEWAY = "demo-marina"
_SHOWN_QUANTITIES = ("voltage", "active_power", "active_energy_import")


class DemoHub:
    """A hub process with one territory and an operator token to read it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._token = ""
        self._code = ""

    def start(self) -> None:
        """A fresh store (the demo's outbox starts from seq 1 again), then the server."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        engine = create_hub_engine(f"sqlite:///{self.data_dir / 'hub.db'}")
        try:
            upgrade(engine)
            admin.add_territory(engine, TERRITORY)
            admin.add_site(engine, TERRITORY, SITE)
            self._token = admin.add_operator_token(engine, TERRITORY, "demo")
            self._code = admin.add_gateway(engine, TERRITORY, SITE, GATEWAY).code
        finally:
            engine.dispose()
        try:
            self.url, self._process = spawn_hub(self.data_dir)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from exc

    def provision(self, config: Path) -> None:
        """Enroll the demo gateway as an installer would, with its one-time code."""
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", "provision", "--config", str(config),
             "--hub", self.url, "--code", self._code, "--force"],
            capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise SystemExit(f"provisioning failed: {done.stderr.strip()}")

    def report(self) -> dict[str, Any]:
        """What the operator API says about the demo gateway (empty if the hub is busy)."""
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            gateways = httpx.get(f"{self.url}/v1/gateways", headers=headers, timeout=5).json()
            latest = httpx.get(f"{self.url}/v1/latest", headers=headers, timeout=5,
                               params={"gateway": GATEWAY}).json()
        except (httpx.HTTPError, ValueError):
            return {}
        rows = gateways.get("gateways", [])
        return {"gateway": rows[0] if rows else {}, "latest": latest.get("values", [])}

    def summary(self) -> str:
        """One line: how many records of each stream the hub holds."""
        acked = self.report().get("gateway", {}).get("acked", {})
        held = ", ".join(f"{count} {stream}" for stream, count in sorted(acked.items()))
        return f"hub {self.url}: {held or 'nothing yet'}"

    def view(self) -> Table:
        """The newest values the hub holds for the berth meters."""
        report = self.report()
        table = Table(title=f"at the hub ({self.url}, territory {TERRITORY}): "
                            f"{self.summary().split(': ', 1)[1]}")
        for column in ("device", "quantity", "value", "age"):
            table.add_column(column)
        now_ms = report.get("gateway", {}).get("last_seen_ms") or 0
        for value in report.get("latest", []):
            if value["device"].startswith("berth") and value["quantity"] in _SHOWN_QUANTITIES:
                age = max(0, now_ms - value["ts_ms"]) / 1000
                table.add_row(value["device"], value["quantity"], f"{value['value']}",
                              f"{age:.0f} s")
        return table

    def stop(self) -> None:
        """Stop the hub process."""
        if self._process is not None:
            stop_process(self._process)
