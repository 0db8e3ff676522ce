"""Reports over real HTTP from events pushed as a gateway pushes them: consumption per badge,
pedestal and month in the territory's time zone, and k-anonymous service statistics, for
operators and as open data."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from edge_agent.codecs.batch import EVENTS_TYPE, encode_events
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.records import Event
from tests.helpers.hub import ACCESS_RULES, HubProcess

_territories = itertools.count(1)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass
class Port:
    """A territory with rules, two registered badges and a gateway pushing events."""

    hub: HubProcess
    territory: str
    operator: httpx.Client
    gateway: httpx.Client
    badge_key: bytes
    seq: int = 1

    def badge(self, number: str) -> str:
        return pseudonym(self.badge_key, bytes.fromhex(number)).hex()

    def push(self, events: list[Event]) -> None:
        answer = self.gateway.post("/v1/gateway/streams/events/batches",
                                   content=encode_events(self.seq, events),
                                   headers={"Content-Type": EVENTS_TYPE})
        assert answer.status_code == 200, answer.text
        self.seq += len(events)

    def report(self, path: str, **params: str) -> dict[str, Any]:
        answer = self.operator.get(f"/v1/reports/{path}", params=params)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
def port(hub: HubProcess) -> Iterator[Port]:
    territory = f"reports{next(_territories)}"
    identity = hub.enroll(territory, "quay-gw")
    with hub.operator(territory) as operator, httpx.Client(
        base_url=hub.url, timeout=30, headers={"Authorization": f"Bearer {identity['token']}"}
    ) as gateway:
        assert operator.put("/v1/policy/rules", json=ACCESS_RULES).status_code == 200
        assert operator.put("/v1/open-data/services").status_code == 200  # published
        csv = "number,category,label\n0A0B0C0D0E,resident,berth A-1\n0F0F0F0F0F,visitor,\n"
        assert operator.post("/v1/badges/import", content=csv.encode()).status_code == 200
        yield Port(hub, territory, operator, gateway, base64.b64decode(identity["badge_key"]))


def _session(port: Port, pedestal: str, card: str, ended: str, kwh: Any, m3: Any = None,
             minutes: int = 60) -> Event:
    end = _ms(ended)
    return Event("session.closed", pedestal, end, {
        "badge": port.badge(card), "started_ms": end - minutes * 60_000, "ended_ms": end,
        "reason": "badge", "kwh": kwh, "m3": m3, "energy_start_kwh": None,
        "energy_end_kwh": None, "water_start_m3": None, "water_end_m3": None})


def test_consumption_per_badge_pedestal_and_month(port: Port) -> None:
    a, v, stranger = "0A0B0C0D0E", "0F0F0F0F0F", "0102030405"
    late_october = _session(port, "pedestal-1", a, "2026-10-31T23:30:00+01:00", 1.25, 0.5)
    port.push([
        late_october,
        # 23:30 UTC on 31 October is already November in Paris.
        _session(port, "pedestal-1", a, "2026-10-31T23:30:00+00:00", 2.5, 0.25),
        _session(port, "pedestal-2", v, "2026-11-10T12:00:00+01:00", 4.0),
        _session(port, "pedestal-2", stranger, "2026-11-12T08:00:00+01:00", None, None),
        _session(port, "pedestal-2", v, "2026-11-13T08:00:00+01:00", "lots", -3.0),
        Event("access.granted", "gate-a", _ms("2026-11-13T09:00:00+01:00"),
              {"reason": "granted", "badge": port.badge(a), "zone": "harbour"}),
    ])
    port.push([late_october])  # the same session again, as a re-provisioned gateway would

    by_badge = port.report("consumption")
    assert by_badge["timezone"] == "Europe/Paris"
    assert [(r["badge"], r["category"], r["label"], r["sessions"], r["kwh"], r["m3"])
            for r in by_badge["rows"]] == sorted([
        (port.badge(a), "resident", "berth A-1", 2, 3.75, 0.75),
        (port.badge(v), "visitor", None, 2, 4.0, 0.0),
        (port.badge(stranger), None, None, 1, 0.0, 0.0)])
    assert by_badge["totals"] == {"sessions": 5, "kwh": 7.75, "m3": 0.75}

    by_pedestal = port.report("consumption", by="pedestal", month="2026-11")
    assert [(r["gateway"], r["pedestal"], r["sessions"], r["kwh"]) for r in by_pedestal["rows"]] \
        == [("quay-gw", "pedestal-1", 1, 2.5), ("quay-gw", "pedestal-2", 3, 4.0)]

    by_month = port.report("consumption", by="month")
    assert [(r["month"], r["sessions"], r["kwh"], r["m3"]) for r in by_month["rows"]] == [
        ("2026-10", 1, 1.25, 0.5), ("2026-11", 4, 6.5, 0.25)]
    october = port.report("consumption", by="badge", month="2026-10")
    assert [(r["badge"], r["kwh"]) for r in october["rows"]] == [(port.badge(a), 1.25)]


def _uses(port: Port, count: int, hour: str, service: str = "pool") -> list[Event]:
    return [Event("access.granted", "pool-gate", _ms(f"2025-11-0{1 + i % 5}T{hour}+01:00"), {
        "reason": "granted", "policy_version": 2, "badge": port.badge(f"AA{i:08X}"),
        "category": "resident", "service": service}) for i in range(count)]


def test_service_cells_under_k_badges_are_not_published(port: Port) -> None:
    holders = "".join(f"AA{i:08X},resident\n" for i in range(5))  # only registered ones count
    assert port.operator.post("/v1/badges/import",
                              content=f"number,category\n{holders}".encode()).status_code == 200
    port.push([
        *_uses(port, 4, "10:15:00"),                   # 4 badges at 10h: suppressed
        *_uses(port, 5, "14:05:00"),                   # 5 badges at 14h: published
        *_uses(port, 5, "14:40:00"),                   # the same 5 again: 10 uses, 5 badges
        *_uses(port, 3, "09:00:00", service="library"),
        Event("access.granted", "pool-gate", _ms("2025-11-02T14:10:00+01:00"),
              {"reason": "manual", "policy_version": 2, "service": "pool"}),
        Event("access.denied", "pool-gate", _ms("2025-11-02T14:10:00+01:00"),
              {"reason": "unknown_badge", "policy_version": 2, "badge": "ab" * 16,
               "service": "pool"}),
    ])
    report = port.report("services", month="2025-11")
    assert report["k"] == 5
    assert report["cells"] == [
        {"service": "pool", "category": "resident", "hour": 14, "uses": 10, "badges": 5}]
    assert report["suppressed_cells"] == 2
    assert port.report("services", month="2025-10")["cells"] == []

    public = httpx.get(f"{port.hub.url}/v1/open/{port.territory}/services",
                       params={"month": "2025-11"}, timeout=10)
    assert public.status_code == 200, public.text
    assert public.json() == {"territory": port.territory, **report}
    for text in (public.text, str(report)):
        assert port.badge("AA00000000") not in text


@pytest.mark.parametrize(
    ("path", "params", "status", "error"),
    [
        ("/v1/reports/consumption", {"by": "boat"}, 400, "invalid_request"),
        ("/v1/reports/consumption", {"month": "2026-13"}, 400, "invalid_request"),
        ("/v1/reports/consumption", {"month": "26-1"}, 400, "invalid_request"),
        ("/v1/reports/consumption", {"month": "x" * 5000}, 400, "invalid_request"),
        ("/v1/reports/services", {"month": "0000-01"}, 400, "invalid_request"),
        ("/v1/open/nowhere/services", {"month": "2026-11"}, 404, "not_found"),
        ("/v1/open/" + "x" * 300 + "/services", {"month": "2026-11"}, 400, "invalid_request"),
        ("/v1/open/%00/services", {"month": "2026-11"}, 400, "invalid_request"),
        ("/v1/open/Nowhere/services", {"month": "2026-11"}, 400, "invalid_request"),
        ("/v1/open/nowhere/services", {}, 400, "invalid_request"),
        ("/v1/open/{territory}/services", {"month": "2999-01"}, 400, "invalid_request"),
    ],
)
def test_bad_report_requests_are_refused_in_the_error_shape(
    port: Port, path: str, params: dict[str, str], status: int, error: str
) -> None:
    answer = port.operator.get(path.format(territory=port.territory), params=params)
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    assert set(answer.json()) == {"error", "detail"}
