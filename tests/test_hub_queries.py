"""Operator queries over real HTTP, on data pushed over HTTP with known values and times.

Territory ``quay``: gateway ``gw1`` pushed twelve voltages of m1 ten seconds apart (230 V to
241 V from T0) with a NaN among them, currents of m1 and m2, and five events; ``gw2`` has an
m1 of its own. Every number below follows from those records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_events, encode_readings
from edge_agent.codecs.compression import compress
from edge_agent.records import Event, Quality, Reading, now_ms
from sync_server import admin
from sync_server.queries import MAX_BUCKETS
from tests.helpers.hub import HubProcess

T0 = 1_764_000_000_000  # a whole minute
_VOLTAGES = [Reading("m1", "voltage", T0 + k * 10_000, 230.0 + k) for k in range(12)]
_EVENTS = [
    Event("device.offline", "m1", T0 + 1000, {"after_s": 30}),
    Event("device.online", "m1", T0 + 2000),
    Event("device.offline", "m2", T0 + 3000, {"after_s": 30, "errors": ["timeout"]}),
    Event("gap", "", T0 + 4000, {"first_seq": 7, "last_seq": 9}),
    Event("device.offline", "m1", T0 + 5000, {"after_s": 60}),
    Event("device.online", "m1", T0 + 5000),
]


@dataclass
class Quay:
    """The operator's view of territory ``quay``."""

    hub: HubProcess
    operator: str

    def get(self, path: str, **params: str | int) -> httpx.Response:
        return httpx.get(f"{self.hub.url}{path}", params=params, timeout=10,
                         headers={"Authorization": f"Bearer {self.operator}"})

    def ok(self, path: str, **params: str | int) -> Any:
        answer = self.get(path, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()


def _push(hub: HubProcess, token: str, stream: str, body: bytes, content_type: str,
          **headers: str) -> dict[str, Any]:
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/{stream}/batches",
                        content=compress(body, "zstd"), timeout=10,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type,
                                 "Content-Encoding": "zstd", **headers})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.fixture(scope="module")
def quay(hub: HubProcess) -> Quay:
    gw1 = hub.enroll("quay", "gw1")["token"]
    first = [*_VOLTAGES[:6], Reading("m1", "voltage", T0 + 5000, float("nan"), Quality.INVALID),
             Reading("m1", "current", T0, 1.5), Reading("m2", "current", T0 + 1000, 2.25)]
    # Out of time order across batches: the newest m1 current is in the first batch; the
    # second ends with two m2 currents of one timestamp, where the later seq wins.
    later = [*_VOLTAGES[6:], Reading("m1", "current", T0 - 60_000, 9.0),
             Reading("m2", "current", T0 + 90_000, 3.0), Reading("m2", "current", T0 + 90_000,
                                                                 3.5, Quality.SUSPECT)]
    _push(hub, gw1, "readings", encode_readings(1, first), READINGS_TYPE,
          **{"X-Ponton-Backlog": "500"})
    _push(hub, gw1, "readings", encode_readings(len(first) + 1, later), READINGS_TYPE)
    _push(hub, gw1, "events", encode_events(1, _EVENTS), EVENTS_TYPE,
          **{"X-Ponton-Backlog": "42", "X-Ponton-Sent-At": str(now_ms())})
    gw2 = hub.enroll("quay", "gw2")["token"]
    _push(hub, gw2, "readings", encode_readings(1, [Reading("m1", "voltage", T0, 400.0)]),
          READINGS_TYPE)
    return Quay(hub, hub.territory("quay").operator_token)


def _series(quay: Quay, from_ms: int, to_ms: int, bucket_s: int,
            **params: str | int) -> list[tuple[int, float, float, float, int]]:
    query: dict[str, str | int] = {"gateway": "gw1", "device": "m1", "quantity": "voltage",
                                   "from_ms": from_ms, "to_ms": to_ms, "bucket_s": bucket_s,
                                   **params}
    buckets = quay.ok("/v1/series", **query)["buckets"]
    assert all(set(b) == {"bucket_ms", "avg", "min", "max", "count"} for b in buckets)
    return [(b["bucket_ms"] - T0, b["avg"], b["min"], b["max"], b["count"]) for b in buckets]


def test_latest_is_the_newest_value_per_device_and_quantity(quay: Quay) -> None:
    values = quay.ok("/v1/latest")["values"]
    assert [(v["gateway"], v["device"], v["quantity"], v["ts_ms"] - T0, v["value"],
             v["quality"]) for v in values] == [
        ("gw1", "m1", "current", 0, 1.5, 0),
        ("gw1", "m1", "voltage", 110_000, 241.0, 0),
        ("gw1", "m2", "current", 90_000, 3.5, 1),
        ("gw2", "m1", "voltage", 0, 400.0, 0),
    ]
    assert {v["territory"] for v in values} == {"quay"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"gateway": "gw1"}, [("gw1", "m1", "current"), ("gw1", "m1", "voltage"),
                              ("gw1", "m2", "current")]),
        ({"device": "m1"}, [("gw1", "m1", "current"), ("gw1", "m1", "voltage"),
                            ("gw2", "m1", "voltage")]),
        ({"quantity": "current"}, [("gw1", "m1", "current"), ("gw1", "m2", "current")]),
        ({"gateway": "gw2", "device": "m1", "quantity": "voltage"}, [("gw2", "m1", "voltage")]),
        ({"gateway": "gw2", "quantity": "current"}, []),
        ({"device": "m9"}, []),
    ],
)
def test_latest_filters(quay: Quay, params: dict[str, str],
                        expected: list[tuple[str, str, str]]) -> None:
    values = quay.ok("/v1/latest", **params)["values"]
    assert [(v["gateway"], v["device"], v["quantity"]) for v in values] == expected


def test_series_buckets_give_exact_aggregates(quay: Quay) -> None:
    # The NaN at T0 + 5 s is stored as NULL and counted nowhere.
    assert _series(quay, T0, T0 + 120_000, 60) == [
        (0, 232.5, 230.0, 235.0, 6), (60_000, 238.5, 236.0, 241.0, 6)]
    assert _series(quay, T0, T0 + 120_000, 30) == [
        (0, 231.0, 230.0, 232.0, 3), (30_000, 234.0, 233.0, 235.0, 3),
        (60_000, 237.0, 236.0, 238.0, 3), (90_000, 240.0, 239.0, 241.0, 3)]
    assert _series(quay, T0, T0 + 120_000, 3600) == [(0, 235.5, 230.0, 241.0, 12)]
    assert _series(quay, T0, T0 + 120_000, 60, gateway="gw2") == [(0, 400.0, 400.0, 400.0, 1)]


def test_series_ranges_include_from_and_exclude_to(quay: Quay) -> None:
    assert _series(quay, T0 + 10_000, T0 + 60_000, 60) == [(0, 233.0, 231.0, 235.0, 5)]
    assert _series(quay, T0 + 60_000, T0 + 60_001, 60) == [(60_000, 236.0, 236.0, 236.0, 1)]
    assert _series(quay, T0 + 59_999, T0 + 60_000, 1) == []
    # Buckets are aligned on the epoch, not on from_ms.
    assert _series(quay, T0 + 50_000, T0 + 70_000, 60) == [
        (0, 235.0, 235.0, 235.0, 1), (60_000, 236.0, 236.0, 236.0, 1)]
    assert _series(quay, T0 - 3_600_000, T0, 60) == []
    assert _series(quay, T0, T0 + 120_000, 60, device="m9") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from_ms": T0, "to_ms": T0}, "to_ms"),
        ({"from_ms": T0, "to_ms": T0 - 1}, "to_ms"),
        ({"from_ms": T0, "to_ms": T0 + (MAX_BUCKETS + 1) * 1000, "bucket_s": 1}, "bucket_s"),
        ({"from_ms": 0, "to_ms": T0, "bucket_s": 60}, "bucket_s"),
        ({"bucket_s": 0}, "bucket_s"),
        ({"from_ms": -1}, "from_ms"),
        ({"to_ms": 2**63}, "to_ms"),
        ({"bucket_s": 10**20}, "bucket_s"),
        ({"from_ms": "yesterday"}, "from_ms"),
        ({"quantity": None}, "quantity"),
    ],
)
def test_bad_series_ranges_are_refused(
    quay: Quay, params: dict[str, Any], field: str
) -> None:
    query = {"gateway": "gw1", "device": "m1", "quantity": "voltage", "from_ms": T0,
             "to_ms": T0 + 60_000, "bucket_s": 60, **params}
    answer = quay.get("/v1/series", **{k: v for k, v in query.items() if v is not None})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request"), answer.text
    assert field in answer.json()["detail"]


def test_the_most_buckets_allowed_are_served(quay: Quay) -> None:
    buckets = _series(quay, T0, T0 + MAX_BUCKETS * 1000, 1)
    assert len(buckets) == 12, "one per valid reading: the NaN's second has no bucket"
    assert buckets[:2] == [(0, 230.0, 230.0, 230.0, 1), (10_000, 231.0, 231.0, 231.0, 1)]


def _events(quay: Quay, **params: str | int) -> list[tuple[str, str, int]]:
    events = quay.ok("/v1/events", **params)["events"]
    return [(e["kind"], e["device"], e["ts_ms"] - T0) for e in events]


def test_events_come_newest_first_with_their_attributes(quay: Quay) -> None:
    events = quay.ok("/v1/events")["events"]
    assert [(e["seq"], e["ts_ms"] - T0) for e in events] == [
        (6, 5000), (5, 5000), (4, 4000), (3, 3000), (2, 2000), (1, 1000)]
    assert events[3] == {"territory": "quay", "gateway": "gw1", "kind": "device.offline",
                         "device": "m2", "ts_ms": T0 + 3000, "seq": 3,
                         "attrs": {"after_s": 30, "errors": ["timeout"]}}
    assert [e["attrs"] for e in events] == [e.attrs for e in reversed(_EVENTS)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "device.offline"}, [("device.offline", "m1", 5000),
                                      ("device.offline", "m2", 3000),
                                      ("device.offline", "m1", 1000)]),
        ({"device": "m1"}, [("device.online", "m1", 5000), ("device.offline", "m1", 5000),
                            ("device.online", "m1", 2000), ("device.offline", "m1", 1000)]),
        ({"kind": "device.offline", "device": "m1"}, [("device.offline", "m1", 5000),
                                                      ("device.offline", "m1", 1000)]),
        ({"from_ms": T0 + 2000, "to_ms": T0 + 5000}, [("gap", "", 4000),
                                                      ("device.offline", "m2", 3000),
                                                      ("device.online", "m1", 2000)]),
        ({"from_ms": T0 + 5000}, [("device.online", "m1", 5000),
                                  ("device.offline", "m1", 5000)]),
        ({"to_ms": T0 + 1001}, [("device.offline", "m1", 1000)]),
        ({"limit": 2}, [("device.online", "m1", 5000), ("device.offline", "m1", 5000)]),
        ({"limit": 1, "kind": "gap"}, [("gap", "", 4000)]),
        ({"gateway": "gw1", "kind": "gap", "device": ""}, [("gap", "", 4000)]),
        ({"gateway": "gw2"}, []),
        ({"kind": "access.granted"}, []),
        ({"from_ms": T0 + 5001, "to_ms": T0}, []),
    ],
)
def test_event_filters(quay: Quay, params: dict[str, str | int],
                       expected: list[tuple[str, str, int]]) -> None:
    assert _events(quay, **params) == expected


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "all"},
                                    {"from_ms": -5}, {"to_ms": 10**19}, {"kind": "k" * 200}])
def test_bad_event_queries_are_refused(quay: Quay, params: dict[str, str | int]) -> None:
    answer = quay.get("/v1/events", **params)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request"), answer.text


@pytest.mark.parametrize("path", ["/v1/latest", "/v1/events", "/v1/series"])
def test_an_unknown_gateway_is_not_found(quay: Quay, path: str) -> None:
    answer = quay.get(path, gateway="gw9", device="m1", quantity="voltage", from_ms=T0,
                      to_ms=T0 + 1000)
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), answer.text


def test_gateways_report_last_seen_backlog_skew_and_marks(quay: Quay) -> None:
    admin.add_gateway(quay.hub.engine, "quay", "quay-site", "gw3")  # registered, never enrolled
    listed = [g for g in quay.ok("/v1/gateways")["gateways"] if g["gateway"] != "gw-skewed"]
    assert [g["gateway"] for g in listed] == ["gw1", "gw2", "gw3"]
    gw1, gw2, gw3 = listed
    assert set(gw1) == {"territory", "site", "gateway", "enrolled_ms", "last_seen_ms",
                        "backlog", "clock_skew_ms", "implausible_ts_total", "agent_version",
                        "sync_lag_ms", "held_policy_version", "held_config_version", "acked"}
    assert (gw1["territory"], gw1["site"]) == ("quay", "quay-site")
    assert abs(gw1["last_seen_ms"] - now_ms()) < 60_000
    assert gw1["enrolled_ms"] <= gw1["last_seen_ms"]
    assert gw1["backlog"] == 42, "the last push's X-Ponton-Backlog"
    assert 0 <= gw1["clock_skew_ms"] < 60_000, "the last push's clock, within tolerance"
    assert gw1["acked"] == {"readings": 18, "events": 6}
    assert gw1["implausible_ts_total"] == 0
    assert gw2["acked"] == {"readings": 1}
    assert (gw2["backlog"], gw2["clock_skew_ms"]) == (None, None)
    assert gw3 == {"territory": "quay", "site": "quay-site", "gateway": "gw3",
                   "enrolled_ms": None, "last_seen_ms": None, "backlog": None,
                   "clock_skew_ms": None, "implausible_ts_total": 0, "agent_version": None,
                   "sync_lag_ms": None, "held_policy_version": None,
                   "held_config_version": None, "acked": {}}


def test_a_skewed_gateway_shows_its_skew(quay: Quay) -> None:
    token = quay.hub.enroll("quay", "gw-skewed")["token"]
    sent_at = now_ms() - 600_000  # ten minutes slow
    _push(quay.hub, token, "events", encode_events(1, [Event("boot", "", sent_at)]),
          EVENTS_TYPE, **{"X-Ponton-Sent-At": str(sent_at), "X-Ponton-Backlog": "7"})
    listed = {g["gateway"]: g for g in quay.ok("/v1/gateways")["gateways"]}
    skewed = listed["gw-skewed"]
    assert 600_000 <= skewed["clock_skew_ms"] < 660_000
    assert (skewed["backlog"], skewed["acked"]) == (7, {"events": 1})
    boot = quay.ok("/v1/events", gateway="gw-skewed")["events"]
    assert boot[0]["ts_ms"] == sent_at, "a plausible timestamp is kept as the gateway stamped it"


def test_series_reads_the_last_24_hours_when_no_range_is_given(hub: HubProcess) -> None:
    now = now_ms()
    token = hub.enroll("today", "gw1")["token"]
    readings = [Reading("m1", "voltage", now - 25 * 3_600_000, 200.0),
                Reading("m1", "voltage", now - 23 * 3_600_000, 230.0),
                Reading("m1", "voltage", now - 60_000, 232.0)]
    _push(hub, token, "readings", encode_readings(1, readings), READINGS_TYPE)
    query = {"gateway": "gw1", "device": "m1", "quantity": "voltage"}
    with hub.operator("today") as today:
        answer = today.get("/v1/series", params=query)
        assert answer.status_code == 200, answer.text
        assert [b["min"] for b in answer.json()["buckets"]] == [230.0, 232.0]
        # to_ms alone: the 24 hours before it
        until = today.get("/v1/series", params={**query, "to_ms": now - 22 * 3_600_000})
        assert [b["min"] for b in until.json()["buckets"]] == [200.0, 230.0]
