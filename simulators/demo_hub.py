"""The hub side of the demo: a sync hub on embedded defaults, and the gateway enrolled in it.

The hub runs as its own process (``sync-server serve`` in demo mode: SQLite in
``demo-data/hub/``, a throwaway signing key); the territory, site and gateway are registered
as an operator would, and the agent is provisioned through ``edge-agent provision``, the
command an installer types. The demo then reads what arrived through the operator API, and
prints the dashboard's address with a one-time sign-in link for the operator ``demo``.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from simulators.hub_process import demo_engine, spawn_hub, stop_process
from sync_server import admin
from sync_server.access.badge_input import BadgeText
from sync_server.access.policy import PolicySigner, set_rules
from sync_server.access.registry import BadgeRef, add_badge, revoke_badge
from sync_server.db.migrate import upgrade
from sync_server.keys import load_signing_key
from sync_server.ui.accounts import add_user, new_signin_link

__all__ = ["BOATER_CARD", "REVOKED_CARD", "SAILOR_CARD", "UNKNOWN_CARD", "DemoHub"]

TERRITORY = "dunkerque"
SITE = "port-du-grand-large"
GATEWAY = "demo-marina"
#: The dashboard account the demo signs in (through a one-time link; its password is random).
DEMO_USER = "demo"
#: How long the demo's sign-in link stays valid.
LINK_LIFETIME_S = 12 * 3600
#: EM4100 cards (version byte and number) shown at the demo's gate.
BOATER_CARD = bytes.fromhex("0100a1b2c3")
SAILOR_CARD = bytes.fromhex("0100d4e5f6")
REVOKED_CARD = bytes.fromhex("01000badc0")
UNKNOWN_CARD = bytes.fromhex("01deadbeef")
#: The marina's rules: boaters and staff through the pontoon gate, at any hour; boaters
#: draw power and water at the berths' pedestals.
ACCESS_RULES = {
    "timezone": "Europe/Paris",
    "categories": ["boater", "staff"],
    "zones": {"pontoon-a": {}},
    "services": ["berth-power"],
    "entitlements": [{"category": "boater", "zone": "pontoon-a"},
                     {"category": "staff", "zone": "pontoon-a"},
                     {"category": "boater", "service": "berth-power"}],
    "gates": {"gate-a": {"zone": "pontoon-a"}, "berth-a1": {"service": "berth-power"},
              "berth-a2": {"service": "berth-power"}},
}


class DemoHub:
    """A hub process with one territory and an operator token to read it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._token = ""
        self._code = ""
        self._link = ""

    def start(self) -> None:
        """A fresh store (the demo's outbox starts from seq 1 again), then the server."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        engine = demo_engine(self.data_dir)
        try:
            upgrade(engine)
            admin.add_territory(engine, TERRITORY)
            admin.add_site(engine, TERRITORY, SITE)
            self._token = admin.add_operator_token(engine, TERRITORY, "demo")
            self._code = admin.add_gateway(engine, TERRITORY, SITE, GATEWAY).code
            add_user(engine, DEMO_USER, "operator", TERRITORY, secrets.token_urlsafe(24))
            self._link = new_signin_link(engine, DEMO_USER, LINK_LIFETIME_S)
            self._publish_access(engine)
        finally:
            engine.dispose()
        try:
            self.url, self._process = spawn_hub(self.data_dir)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from exc

    def _publish_access(self, engine: Engine) -> None:
        """The policy an operator would set: the rules, a boater's badge, a revoked one."""
        signer = PolicySigner(load_signing_key(self.data_dir / "signing-key.pem", demo=True),
                              lifetime_s=7 * 86_400)
        set_rules(engine, signer, TERRITORY, ACCESS_RULES)
        for card, label in ((BOATER_CARD, "berth A1"), (SAILOR_CARD, "berth A2"),
                            (REVOKED_CARD, "lost card")):
            add_badge(engine, signer, TERRITORY, BadgeText(card.hex(), "boater", label=label))
        revoke_badge(engine, signer, TERRITORY, BadgeRef(REVOKED_CARD.hex()))

    @property
    def dashboard(self) -> str:
        """The dashboard's address."""
        return f"{self.url}/ui/"

    @property
    def signin_link(self) -> str:
        """A link that signs the demo's operator in, once."""
        return f"{self.url}/ui/signin/link/{self._link}"

    def provision(self, config: Path) -> None:
        """Enroll the demo gateway as an installer would, with its one-time code."""
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", "provision", "--config", str(config),
             "--hub", self.url, "--code", self._code, "--force", "--insecure-http"],
            capture_output=True, text=True, timeout=60, check=False,
            start_new_session=True)  # a Ctrl-C meanwhile is the demo's to handle
        if done.returncode != 0:
            raise SystemExit(f"provisioning failed: {done.stderr.strip()}")

    def report(self) -> dict[str, Any]:
        """What the operator API says about the demo gateway (empty if the hub is busy)."""
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            gateways = httpx.get(f"{self.url}/v1/gateways", headers=headers, timeout=5).json()
            latest = httpx.get(f"{self.url}/v1/latest", headers=headers, timeout=5,
                               params={"gateway": GATEWAY}).json()
            decisions = [
                event for kind in ("access.granted", "access.denied")
                for event in httpx.get(f"{self.url}/v1/events", headers=headers, timeout=5,
                                       params={"kind": kind, "limit": 3}).json()["events"]]
            alarms = httpx.get(f"{self.url}/v1/alarms", headers=headers, timeout=5,
                               params={"limit": 3}).json()["alarms"]
            car_parks = httpx.get(f"{self.url}/v1/car-parks", headers=headers,
                                  timeout=5).json()["car_parks"]
        except (httpx.HTTPError, ValueError, KeyError):
            return {}
        rows = gateways.get("gateways", [])
        decisions.sort(key=lambda event: event["ts_ms"], reverse=True)
        return {"gateway": rows[0] if rows else {}, "latest": latest.get("values", []),
                "decisions": decisions[:3], "alarms": alarms, "car_parks": car_parks}

    def summary(self) -> str:
        """One line: how many records of each stream the hub holds, and the rules' alarms."""
        report = self.report()
        acked = report.get("gateway", {}).get("acked", {})
        held = ", ".join(f"{count} {stream}" for stream, count in sorted(acked.items()))
        alarms = report.get("alarms", [])
        open_now = sum(1 for alarm in alarms if alarm["cleared_ms"] is None)
        parks = ", ".join(f"{park['car_park']} {park['occupancy']}/{park['capacity']}"
                          for park in report.get("car_parks", []))
        return (f"hub {self.url}: {held or 'nothing yet'}; rule alarms {len(alarms)} "
                f"({open_now} open); car parks: {parks or 'none yet'}")

    def exit_code(self) -> int | None:
        """The hub process's exit status, None while it runs."""
        return None if self._process is None else self._process.poll()

    def stop(self) -> None:
        """Stop the hub process."""
        if self._process is not None:
            stop_process(self._process)
