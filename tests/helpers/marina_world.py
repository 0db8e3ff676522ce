"""A marina's records pushed through the real push route, and dashboard sign-in over HTTP.

Territory ``port``: rules with category ``boater`` and gates ``gate-a`` and ``berth-a12``;
badges BOATER (label A-12) and SAILOR (label B-03) registered through the API; gateway
``port-gw`` pushed two closed pedestal sessions (November and December 2026), a session
running on ``berth-a12`` since its meter read 100 kWh (it reads 103.5 now), three gate
decisions (granted, revoked, a staff opening), and car park ``P-quai`` (12 of 40 taken).
Territory ``other`` has a pedestal session, a decision and a car park of its own, which
``port``'s pages must never show. Accounts: ``olga`` (operator, port), ``sid`` (staff,
port), ``otto`` (operator, other), ``ada`` (admin).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from edge_agent.records import Event, Reading, now_ms
from sync_server.ui.accounts import add_user
from tests.helpers.field import push
from tests.helpers.hub import HubProcess

__all__ = ["BOATER", "PASSWORD", "RULES", "SAILOR", "MarinaRecords", "csrf_of",
           "marina_records", "signed_in"]

PASSWORD = "correct horse battery"
BOATER = "0100a1b2c3"
SAILOR = "0100d4e5f6"
RULES = {
    "timezone": "Europe/Paris",
    "categories": ["boater", "staff"],
    "zones": {"pontoon-a": {}},
    "services": ["berth-power"],
    "entitlements": [{"category": "boater", "zone": "pontoon-a"},
                     {"category": "boater", "service": "berth-power"}],
    "gates": {"gate-a": {"zone": "pontoon-a"}, "berth-a12": {"service": "berth-power"}},
}
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass
class MarinaRecords:
    """The pseudonyms the hub gave BOATER and SAILOR, and the other territory's BOATER."""

    boater: str
    sailor: str
    other_boater: str


def marina_records(hub: HubProcess) -> MarinaRecords:
    """Push this module's story into ``hub`` (once per hub)."""
    for name, role, territory in (("olga", "operator", "port"), ("sid", "staff", "port"),
                                  ("otto", "operator", "other"), ("ada", "admin", None)):
        if territory:
            hub.territory(territory)
        add_user(hub.engine, name, role, territory, PASSWORD)
    pseudonyms = {}
    for territory in ("port", "other"):
        with hub.operator(territory) as api:
            assert api.put("/v1/policy/rules", json=RULES).status_code == 200
            for number, label in ((BOATER, "A-12"), (SAILOR, "B-03")):
                added = api.post("/v1/badges", json={"number": number, "category": "boater",
                                                     "label": label})
                assert added.status_code == 200, added.text
                pseudonyms[(territory, number)] = added.json()["pseudonyms"][0]
    boater, sailor = pseudonyms[("port", BOATER)], pseudonyms[("port", SAILOR)]
    now = now_ms()
    port = hub.enroll("port", "port-gw")["token"]
    push(hub, port, "readings", [
        Reading("berth-a12-meter", "active_energy_import", now - 60_000, 100.0),
        Reading("berth-a12-meter", "active_energy_import", now - 1000, 103.5),
        Reading("P-quai", "parking_capacity", now - 60_000, 40.0),
        Reading("P-quai", "parking_occupancy", now - 60_000, 8.0),
        Reading("P-quai", "parking_occupancy", now - 1000, 12.0)])
    november, december = _ms("2026-11-15T10:00:00"), _ms("2026-12-01T09:00:00")
    push(hub, port, "events", [
        Event("session.closed", "berth-a12", november, {
            "badge": boater, "started_ms": november - 3_600_000, "ended_ms": november,
            "reason": "badge", "kwh": 2.5, "m3": 0.1}),
        Event("session.closed", "berth-b03", december, {
            "badge": sailor, "started_ms": december - 600_000, "ended_ms": december,
            "reason": "timeout", "kwh": 1.0, "m3": 0.0}),
        Event("session.opened", "berth-a12", now - 60_000, {
            "badge": sailor, "energy_start_kwh": 100.0, "water_start_m3": None,
            "energy_meter": "berth-a12-meter", "water_meter": None})])
    push(hub, port, "alarms", [
        Event("access.granted", "gate-a", now - 30_000, {
            "reason": "granted", "badge": boater, "category": "boater", "zone": "pontoon-a",
            "policy_version": 3}),
        Event("access.denied", "gate-a", now - 20_000, {
            "reason": "revoked", "badge": sailor, "category": "boater", "zone": "pontoon-a",
            "policy_version": 3}),
        Event("access.granted", "gate-a", now - 10_000, {
            "reason": "manual", "badge": None, "zone": "pontoon-a", "policy_version": 3})])
    other = hub.enroll("other", "other-gw")["token"]
    push(hub, other, "events", [Event("session.closed", "other-berth", december, {
        "badge": pseudonyms[("other", BOATER)], "started_ms": december - 1000,
        "ended_ms": december, "reason": "badge", "kwh": 9.0, "m3": 9.0})])
    push(hub, other, "alarms", [Event("access.granted", "other-gate", now - 5000, {
        "reason": "manual", "badge": None, "policy_version": 1})])
    push(hub, other, "readings", [Reading("P-secret", "parking_occupancy", now - 1000, 3.0)])
    return MarinaRecords(boater, sailor, pseudonyms[("other", BOATER)])


@contextmanager
def signed_in(hub: HubProcess, name: str) -> Iterator[httpx.Client]:
    """A client of the dashboard signed in as ``name``, closed at exit."""
    with httpx.Client(base_url=f"{hub.url}/ui", timeout=30) as client:
        page = client.get("/signin")
        answer = client.post("/signin", data={"csrf": csrf_of(page.text), "name": name,
                                              "password": PASSWORD})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].endswith("/ui/")
        yield client


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of ``html``."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)
