"""Push over real HTTP to a hub process: exactly once, conflicts refused, bad bodies answered.

Runs against the SQLite hub always and the PostgreSQL hub wherever PostgreSQL is reachable.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from edge_agent.codecs.batch import (
    EVENTS_TYPE,
    PLAIN_TYPE,
    READINGS_TYPE,
    encode_events,
    encode_plain,
    encode_readings,
)
from edge_agent.codecs.compression import Encoding, compress
from edge_agent.records import Event, Quality, Reading, now_ms
from sync_server import admin
from sync_server.db.schema import clock_corrections, events, gateways, readings, series
from tests.helpers.hub import HubProcess

_names = itertools.count(1)
_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def _gateway(hub: HubProcess) -> tuple[httpx.Client, str]:
    identity = hub.enroll("push", f"gw{next(_names)}")
    client = httpx.Client(base_url=hub.url, timeout=30,
                          headers={"Authorization": f"Bearer {identity['token']}"})
    _clients.append(client)
    return client, identity["gateway"]


def _readings(count: int, start_ts: int = 1_764_000_000_000) -> list[Reading]:
    return [Reading(f"m{i % 3}", "voltage", start_ts + i * 1000, 230.0 + i % 7 / 10)
            for i in range(count)]


def _push(client: httpx.Client, stream: str, body: bytes, content_type: str = READINGS_TYPE,
          encoding: Encoding = "zstd", headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(f"/v1/gateway/streams/{stream}/batches",
                       content=compress(body, encoding),
                       headers={"Content-Type": content_type, "Content-Encoding": encoding,
                                **(headers or {})})


def _count(hub: HubProcess, table: Any, gateway: str) -> int:
    with hub.engine.connect() as conn:
        gid = conn.execute(select(gateways.c.id).where(gateways.c.name == gateway)).scalar_one()
        if table is readings:
            query = (select(func.count()).select_from(readings)
                     .join(series, readings.c.series_id == series.c.id)
                     .where(series.c.gateway_id == gid))
        else:
            query = select(func.count()).select_from(events).where(events.c.gateway_id == gid)
        return int(conn.execute(query).scalar_one())


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_a_batch_is_stored_and_acknowledged(hub: HubProcess, encoding: Encoding) -> None:
    client, name = _gateway(hub)
    answer = _push(client, "readings", encode_readings(1, _readings(500)), encoding=encoding)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stream": "readings", "first_seq": 1, "last_seq": 500,
                             "stored": 500, "duplicates": 0, "acked": {"readings": 500}}
    assert _count(hub, readings, name) == 500
    assert client.get("/v1/gateway/streams").json() == {"acked": {"readings": 500}}


def test_a_replayed_batch_is_acknowledged_again_and_stored_once(hub: HubProcess) -> None:
    client, name = _gateway(hub)
    body = encode_readings(1, _readings(300))
    first = _push(client, "readings", body).json()
    again = _push(client, "readings", body).json()
    assert again == {**first, "stored": 0, "duplicates": 300}
    overlapping = _push(client, "readings", encode_readings(1, _readings(400))).json()
    assert (overlapping["stored"], overlapping["duplicates"]) == (100, 300)
    assert overlapping["acked"] == {"readings": 400}
    assert _count(hub, readings, name) == 400


def test_plain_json_and_compact_forms_of_the_same_records_compare_equal(hub: HubProcess) -> None:
    client, name = _gateway(hub)
    records = [*_readings(10), Reading("m9", "voltage", 1_764_000_100_000, float("nan"),
                                       Quality.INVALID)]
    assert _push(client, "readings", encode_plain(1, records), PLAIN_TYPE,
                 "gzip").status_code == 200
    replay = _push(client, "readings", encode_readings(1, records))
    assert replay.status_code == 200, replay.text
    assert replay.json()["duplicates"] == 11
    assert _count(hub, readings, name) == 11


def test_reused_seqs_with_other_content_are_refused_whole(hub: HubProcess) -> None:
    client, name = _gateway(hub)
    _push(client, "readings", encode_readings(1, _readings(100)))
    changed = _readings(150)
    changed[42] = Reading("m0", "voltage", changed[42].ts_ms, 999.0)
    answer = _push(client, "readings", encode_readings(1, changed))
    assert answer.status_code == 409
    assert answer.json()["error"] == "seq_conflict"
    assert "seq 43 of stream readings" in answer.json()["detail"]
    assert _count(hub, readings, name) == 100, "nothing of a refused batch is stored"
    assert client.get("/v1/gateway/streams").json() == {"acked": {"readings": 100}}


def test_events_replay_and_conflict(hub: HubProcess) -> None:
    client, name = _gateway(hub)
    batch = [Event("alarm.raised", "level-1", 1_764_000_000_000 + i, {"level": i})
             for i in range(5)]
    assert _push(client, "alarms", encode_events(1, batch), EVENTS_TYPE).json()["stored"] == 5
    assert _push(client, "alarms", encode_events(1, batch), EVENTS_TYPE).json()[
        "duplicates"] == 5
    batch[2] = Event("alarm.raised", "level-1", batch[2].ts_ms, {"level": 99})
    assert _push(client, "alarms", encode_events(1, batch), EVENTS_TYPE).status_code == 409
    assert _count(hub, events, name) == 5


def test_a_stream_keeps_the_record_type_of_its_first_batch(hub: HubProcess) -> None:
    client, _ = _gateway(hub)
    _push(client, "events", encode_events(1, [Event("x", "d", 1_764_000_000_000)]), EVENTS_TYPE)
    answer = _push(client, "events", encode_readings(2, _readings(1)))
    assert (answer.status_code, answer.json()["error"]) == (409, "stream_type")


def test_a_batch_may_start_past_the_mark_after_an_eviction(hub: HubProcess) -> None:
    client, name = _gateway(hub)
    _push(client, "readings", encode_readings(1, _readings(10)))
    answer = _push(client, "readings", encode_readings(501, _readings(10))).json()
    assert (answer["stored"], answer["acked"]) == (10, {"readings": 510})
    assert _count(hub, readings, name) == 20


def test_a_skewed_clock_is_corrected_recorded_and_replays_still_match(hub: HubProcess) -> None:
    client, name = _gateway(hub)
    # A Pi that booted without network believes it is 1970 plus its uptime.
    gateway_now = 3_600_000
    records = [Reading("m1", "voltage", gateway_now - 60_000 + i * 1000, 230.0)
               for i in range(10)]
    body = encode_readings(1, records)
    first = _push(client, "readings", body, headers={"X-Ponton-Sent-At": str(gateway_now),
                                                     "X-Ponton-Backlog": "1234"})
    assert first.status_code == 200
    with hub.engine.connect() as conn:
        stored = conn.execute(select(func.min(readings.c.ts_ms), func.max(readings.c.ts_ms))
                              .join(series, readings.c.series_id == series.c.id)
                              .join(gateways, series.c.gateway_id == gateways.c.id)
                              .where(gateways.c.name == name)).one()
        correction = conn.execute(select(clock_corrections).join(
            gateways, clock_corrections.c.gateway_id == gateways.c.id)
            .where(gateways.c.name == name)).one()
        row = conn.execute(select(gateways).where(gateways.c.name == name)).one()
    assert abs(stored[1] - now_ms()) < 120_000, "shifted onto the hub's clock"
    assert stored[1] - stored[0] == 9_000, "spacing kept"
    assert (correction.first_seq, correction.last_seq, correction.implausible) == (1, 10, 10)
    assert abs(correction.skew_ms - (now_ms() - gateway_now)) < 120_000
    assert row.backlog == 1234
    assert abs(row.clock_skew_ms - (now_ms() - gateway_now)) < 120_000
    later = _push(client, "readings", body,
                  headers={"X-Ponton-Sent-At": str(gateway_now + 5_000)})
    assert later.status_code == 200, later.text
    assert later.json()["duplicates"] == 10


def test_records_older_than_2020_are_counted_as_implausible(hub: HubProcess) -> None:
    client, name = _gateway(hub)
    _push(client, "readings", encode_readings(1, _readings(3, start_ts=1_000)))
    with hub.engine.connect() as conn:
        total = conn.execute(select(gateways.c.implausible_ts_total)
                             .where(gateways.c.name == name)).scalar_one()
    assert total == 3


def test_plausible_timestamps_are_never_shifted_by_a_skew_measured_later(
    hub: HubProcess,
) -> None:
    # Stamped last week with a good clock, sent after a reboot restored a stale clock.
    client, name = _gateway(hub)
    stamped = now_ms() - 7 * 86_400_000
    records = [*_readings(4, start_ts=stamped),
               Reading("m1", "voltage", now_ms() + 86_400_000, 231.0)]  # from the future
    sent_at = str(now_ms() - 86_400_000)
    answer = _push(client, "readings", encode_readings(1, records),
                   headers={"X-Ponton-Sent-At": sent_at})
    assert answer.status_code == 200, answer.text
    with hub.engine.connect() as conn:
        stored = sorted(conn.execute(
            select(readings.c.ts_ms).join(series, readings.c.series_id == series.c.id)
            .join(gateways, series.c.gateway_id == gateways.c.id)
            .where(gateways.c.name == name)).scalars())
        flags = conn.execute(
            select(clock_corrections.c.first_seq, clock_corrections.c.last_seq,
                   clock_corrections.c.skew_ms)
            .join(gateways, clock_corrections.c.gateway_id == gateways.c.id)
            .where(gateways.c.name == name)).all()
    assert stored == sorted(r.ts_ms for r in records), "nothing rewritten"
    assert [tuple(f) for f in flags] == [(5, 5, 0)], "the future reading is flagged"


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "status", "code"),
    [
        (b"garbage", READINGS_TYPE, "zstd", 400, "malformed_batch"),
        (b"{\"first_seq\": 1}", READINGS_TYPE, "identity", 400, "malformed_batch"),
        (b"{\"first_seq\": 0, \"events\": []}", EVENTS_TYPE, "identity", 400,
         "malformed_batch"),
        (b"{}", "text/csv", "identity", 415, "unsupported_media_type"),
        (b"{}", READINGS_TYPE, "br", 415, "unsupported_media_type"),
        (b"", READINGS_TYPE, "identity", 400, "malformed_batch"),
        (b'{"first_seq": 7, "events": []}', EVENTS_TYPE, "identity", 400, "malformed_batch"),
        (b'{"first_seq": 1, "readings": []}', PLAIN_TYPE, "identity", 400, "malformed_batch"),
    ],
)
def test_bad_bodies_get_a_clear_error(
    hub: HubProcess, body: bytes, content_type: str, encoding: str, status: int, code: str
) -> None:
    client, _ = _gateway(hub)
    answer = client.post("/v1/gateway/streams/readings/batches", content=body,
                         headers={"Content-Type": content_type, "Content-Encoding": encoding})
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert answer.json()["detail"]


def test_oversized_bodies_and_compression_bombs_are_refused(hub: HubProcess) -> None:
    client, _ = _gateway(hub)
    huge = client.post("/v1/gateway/streams/readings/batches", content=b" " * (9 * 2**20),
                       headers={"Content-Type": READINGS_TYPE})
    assert (huge.status_code, huge.json()["error"]) == (413, "too_large")
    bomb = compress(b" " * (100 * 2**20), "zstd")
    answer = client.post("/v1/gateway/streams/readings/batches", content=bomb,
                         headers={"Content-Type": READINGS_TYPE, "Content-Encoding": "zstd"})
    assert (answer.status_code, answer.json()["error"]) == (413, "too_large")


@pytest.mark.parametrize(
    ("stream", "headers"),
    [
        ("Readings", {}),
        ("a" * 40, {}),
        ("readings", {"X-Ponton-Sent-At": "yesterday"}),
        ("readings", {"X-Ponton-Backlog": "-"}),
        ("readings", {"X-Ponton-Sent-At": "1" + "0" * 30}),
        ("readings", {"X-Ponton-Backlog": "-5"}),
    ],
)
def test_bad_stream_names_and_headers_are_refused(
    hub: HubProcess, stream: str, headers: dict[str, str]
) -> None:
    client, _ = _gateway(hub)
    answer = _push(client, stream, encode_readings(1, _readings(1)), headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


@pytest.mark.parametrize("token", ["", "Bearer", "Bearer pgw_unknown", "Basic abc",
                                   "Bearer pop_not-a-gateway-token"])
def test_pushes_without_a_valid_gateway_token_are_refused(hub: HubProcess, token: str) -> None:
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches",
                        content=encode_readings(1, _readings(1)),
                        headers={"Authorization": token, "Content-Type": READINGS_TYPE})
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


def test_devices_are_declared_and_replaced(hub: HubProcess) -> None:
    client, _ = _gateway(hub)
    declaration = {"devices": [{"name": "berth-a1", "profile": "eastron-sdm120",
                                "quantities": ["voltage"]}]}
    assert client.put("/v1/gateway/devices", json=declaration).json() == {"devices": 1}
    assert client.put("/v1/gateway/devices", json={"devices": []}).json() == {"devices": 0}
    for devices in ([{"name": ""}], [{"name": "x" * 129, "profile": "p"}],
                    [{"name": "a\u0000b", "profile": "p"}],
                    [{"name": "a\u001bb", "profile": "p"}],
                    [{"name": "m", "profile": "p", "quantities": ["voltage\u0000"]}],
                    [{"name": "m", "profile": "p", "quantities": ["power\ud800"]}],
                    [{"name": "m", "profile": "p\udc00", "quantities": []}],
                    [{"name": "m", "profile": "p", "quantities": ["q" * 65]}],
                    [{"name": "twice", "profile": "p"}, {"name": "twice", "profile": "p"}]):
        bad = client.put("/v1/gateway/devices", content=json.dumps({"devices": devices}),
                         headers={"Content-Type": "application/json"})
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request"), devices


@pytest.mark.parametrize("path", ["/v1/enroll", "/v1/gateway/devices"])
def test_big_bodies_are_refused_before_any_token_or_parsing(hub: HubProcess, path: str) -> None:
    body = b'{"code": "' + b"x" * (9 * 2**20) + b'"}'
    declared = httpx.request("PUT" if "devices" in path else "POST", f"{hub.url}{path}",
                             content=body, headers={"Content-Type": "application/json"},
                             timeout=30)
    assert (declared.status_code, declared.json()["error"]) == (413, "too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 2**20

    streamed = httpx.request("PUT" if "devices" in path else "POST", f"{hub.url}{path}",
                             content=chunks(), headers={"Content-Type": "application/json"},
                             timeout=30)
    # Without a length, a body is refused as it comes; without a token, before it comes.
    expected = (401, "invalid_token") if "devices" in path else (413, "too_large")
    assert (streamed.status_code, streamed.json()["error"]) == expected


def test_a_reissued_gateway_starts_new_streams_and_keeps_the_old_records(
    hub: HubProcess,
) -> None:
    client, name = _gateway(hub)
    _push(client, "readings", encode_readings(1, _readings(50)))
    code = admin.add_gateway(hub.engine, "push", "push-site", name, reissue=True).code
    assert client.get("/v1/gateway/streams").status_code == 401, "the old token is revoked"
    token = httpx.post(f"{hub.url}/v1/enroll", json={"code": code}, timeout=10).json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    assert client.get("/v1/gateway/streams").json() == {"acked": {}}, (
        "a replacement box must not inherit marks that would delete its unsent records")
    fresh = _readings(20, start_ts=1_765_000_000_000)
    answer = _push(client, "readings", encode_readings(1, fresh))
    assert answer.json()["acked"] == {"readings": 20}
    assert _count(hub, readings, name) == 70, "both boxes' records are kept"


@pytest.mark.parametrize(("method", "path", "status", "code"),
                         [("GET", "/v1/nowhere", 404, "not_found"),
                          ("DELETE", "/v1/gateway/streams", 405, "method_not_allowed")])
def test_routing_errors_use_the_protocol_error_shape(
    hub: HubProcess, method: str, path: str, status: int, code: str
) -> None:
    answer = httpx.request(method, f"{hub.url}{path}", timeout=10)
    assert answer.status_code == status
    assert answer.json()["error"] == code
