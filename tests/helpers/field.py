"""A territory's field state pushed through the real push route: alarms and car parks.

Territory ``flood``: gateway ``gw1`` raised and cleared alarms on its ``alarms`` stream (a
rule raised three times, another rule on the same device, a second device, a raise and its
clear in the same millisecond, a clear of another rule that clears nothing), ``gw2`` raised
three of its own in one millisecond on a device of the same name, and ``gw1`` counts three
car parks. Territory ``dry`` has one gateway with one open alarm and one car park. Every
expectation of the tests follows from these records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_events, encode_readings
from edge_agent.records import Event, Reading
from tests.helpers.hub import HubProcess

__all__ = ["EXPECTED_ALARMS", "T0", "Field", "field_world", "push"]

T0 = 1_764_000_000_000


def _raised(device: str, rule: str, ts: int, value: float, **extra: Any) -> Event:
    attrs = {"rule": rule, "kind": "above", "quantity": "water_level", "value": value,
             "threshold": 2.0, "severity": "critical", **extra}
    return Event("alarm.raised", device, T0 + ts, attrs)


def _cleared(device: str, rule: str, ts: int) -> Event:
    return Event("alarm.cleared", device, T0 + ts, {"rule": rule, "kind": "above",
                                                    "quantity": "water_level", "value": 1.5,
                                                    "threshold": 2.0})


_GW1_ALARMS = [
    _raised("level-1", "level-high", 1000, 2.1),
    _raised("level-1", "level-rate", 1500, 0.4, kind="rate", severity="warning",
            threshold=0.3),
    _cleared("level-1", "level-high", 5000),
    _raised("level-1", "level-high", 8000, 2.4),
    _cleared("level-1", "level-high", 9000),
    _raised("level-1", "level-high", 12_000, 2.6),
    _raised("level-2", "level-high", 3000, 2.2),  # pushed after later raises: time decides
    _cleared("level-2", "other-rule", 4000),  # clears nothing: another rule
    _raised("pump", "stale-pump", 20_000, 0.0, kind="stale", quantity=None, severity="minor"),
    _cleared("pump", "stale-pump", 20_000),  # same millisecond, later record: a clear
]

#: (gateway, device, rule, raised, cleared) newest first, times after T0.
EXPECTED_ALARMS = [
    ("gw1", "pump", "stale-pump", 20_000, 20_000),
    ("gw1", "level-1", "level-high", 12_000, None),
    ("gw1", "level-1", "level-high", 8000, 9000),
    ("gw1", "level-2", "level-high", 3000, None),
    ("gw2", "level-1", "level-low", 2000, None),  # three raises of one millisecond: by record
    ("gw2", "level-1", "level-stale", 2000, None),
    ("gw2", "level-1", "level-high", 2000, None),
    ("gw1", "level-1", "level-rate", 1500, None),
    ("gw1", "level-1", "level-high", 1000, 5000),
]

_PARKS = [
    *[Reading("P-gare", "parking_occupancy", T0 + k * 1000, float(k % 97)) for k in range(2000)],
    Reading("P-gare", "parking_occupancy", T0 + 3_000_000, 120.0),  # over capacity: 0 free
    Reading("P-gare", "parking_capacity", T0, 100.0),
    Reading("P-port", "parking_occupancy", T0 + 10_000, 30.0),
    Reading("P-port", "parking_capacity", T0 + 5000, 200.0),
    Reading("P-nocap", "parking_occupancy", T0 + 7000, 12.0),
]
_PARK_EVENTS = [
    Event("car_park.full", "P-port", T0 + 500),
    Event("car_park.available", "P-port", T0 + 1000),
    Event("car_park.available", "P-gare", T0 + 100),
    Event("car_park.full", "P-gare", T0 + 2_999_000),
]


@dataclass
class Field:
    """Both territories' operator tokens and gateway tokens."""

    hub: HubProcess
    flood: str
    dry: str
    gateways: dict[str, str]

    def operator(self, territory: str = "flood") -> httpx.Client:
        """An HTTP client with ``territory``'s operator token (close it when done)."""
        return self.hub.operator(territory)


def push(hub: HubProcess, token: str, stream: str, records: Sequence[Event | Reading],
         first_seq: int = 1) -> None:
    """Push ``records`` (all events or all readings) through the gateway's push route."""
    events = [record for record in records if isinstance(record, Event)]
    readings = [record for record in records if isinstance(record, Reading)]
    body, content_type = ((encode_events(first_seq, events), EVENTS_TYPE) if events
                          else (encode_readings(first_seq, readings), READINGS_TYPE))
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/{stream}/batches", content=body,
                        timeout=10, headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": content_type})
    assert answer.status_code == 200, answer.text


def field_world(hub: HubProcess) -> Field:
    """Push every record of this module's story into ``hub``."""
    tokens = {name: hub.enroll(territory, name)["token"]
              for territory, name in (("flood", "gw1"), ("flood", "gw2"), ("dry", "dry-gw"))}
    push(hub, tokens["gw1"], "alarms", _GW1_ALARMS[:6])
    push(hub, tokens["gw1"], "alarms", _GW1_ALARMS[6:], first_seq=7)
    push(hub, tokens["gw2"], "alarms", [_raised("level-1", rule, 2000, 2.3)
                                        for rule in ("level-high", "level-stale", "level-low")])
    push(hub, tokens["gw1"], "readings", _PARKS)
    push(hub, tokens["gw1"], "events", _PARK_EVENTS)
    push(hub, tokens["dry-gw"], "alarms", [_raised("dry-secret", "dry-rule", 500, 9.9)])
    push(hub, tokens["dry-gw"], "readings",
         [Reading("dry-park", "parking_occupancy", T0, 5.0),
          Reading("dry-park", "parking_capacity", T0, 10.0)])
    return Field(hub, hub.territory("flood").operator_token,
                 hub.territory("dry").operator_token, tokens)
