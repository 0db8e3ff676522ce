"""The hub's newest ``device.health`` report per device, as the Gateway page reads it, on
SQLite and PostgreSQL (conftest's ``hub``), pushed through the real push route."""

from __future__ import annotations

from edge_agent.records import Event, now_ms
from sync_server import admin
from sync_server.db.engine import reading
from sync_server.device_health import HEALTH_EVENT, latest_device_health
from tests.helpers.field import push
from tests.helpers.hub import HubProcess


def _report(device: str, at: int, polls: int) -> Event:
    return Event(HEALTH_EVENT, device, at, {"online": True, "polls": polls, "failed_polls": 0,
                                            "last_poll_ms": at - 500})


def test_each_device_s_newest_report_from_its_own_gateway_only(hub: HubProcess) -> None:
    token = hub.enroll("health-a", "health-gw")["token"]
    other = hub.enroll("health-b", "health-gw-b")["token"]
    at = now_ms() - 60_000
    push(hub, token, "events", [
        _report("m1", at, 10), _report("m1", at + 30_000, 40), _report("m2", at, 7),
        Event("device.offline", "m2", at + 40_000, {}),
    ] + [_report(f"x{k:03d}", at, k) for k in range(250)])
    push(hub, other, "events", [_report("m1", at + 50_000, 999)])
    with reading(hub.engine) as conn:
        territory = admin.territory_id(conn, "health-a")
        names = ["m1", "m2", "m3", *(f"x{k:03d}" for k in range(250))]
        found = latest_device_health(conn, territory, "health-gw", names)
        elsewhere = latest_device_health(conn, territory, "health-gw-b", ["m1"])
    assert (found["m1"]["polls"], found["m1"]["reported_ms"]) == (40, at + 30_000)
    assert found["m2"]["polls"] == 7  # the offline event is not a report
    assert "m3" not in found  # never reported
    assert found["x249"]["polls"] == 249  # past one statement's share of devices
    assert len(found) == 252
    assert elsewhere == {}  # another territory's gateway of that name is not read
