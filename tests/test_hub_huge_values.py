"""Readings of huge magnitude on a real hub process (both stores): the chart of their series
still answers, and the rollup job still rolls every stream up.

Two readings of 1.7e308 in one hour sum beyond the largest double: PostgreSQL raised on the
sum (the chart answered 500, and every rollup pass failed at that bucket, so no stream after
it was rolled up again), SQLite made it infinite (which no JSON answer carries).
"""

from __future__ import annotations

import httpx
from sqlalchemy import select

from edge_agent.codecs.batch import READINGS_TYPE, encode_readings
from edge_agent.records import Reading, now_ms
from sync_server.db.schema import rollup_marks, streams
from sync_server.rollups import HOUR_MS, roll_up
from tests.helpers.hub import HubProcess

HOUR = (now_ms() - 3 * 86_400_000) // HOUR_MS * HOUR_MS


def _push(hub: HubProcess, token: str, records: list[Reading]) -> None:
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches",
                        content=encode_readings(1, records), timeout=30,
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": READINGS_TYPE})
    assert answer.status_code == 200, answer.text


def _chart(hub: HubProcess, gateway: str, bucket_s: int) -> list[dict[str, object]]:
    with hub.operator("huge") as operator:
        answer = operator.get("/v1/series", params={
            "gateway": gateway, "device": "meter", "quantity": "energy",
            "from_ms": HOUR, "to_ms": HOUR + 2 * HOUR_MS, "bucket_s": bucket_s})
    assert answer.status_code == 200, answer.text
    buckets: list[dict[str, object]] = answer.json()["buckets"]
    return buckets


def test_huge_values_leave_the_chart_and_the_rollups_working(hub: HubProcess) -> None:
    huge = hub.enroll("huge", "gw-huge")
    plain = hub.enroll("huge", "gw-plain")
    _push(hub, huge["token"], [
        Reading("meter", "energy", HOUR + 1_000, 1.7e308),
        Reading("meter", "energy", HOUR + 2_000, 1.7e308),
        Reading("meter", "energy", HOUR + 3_000, 5.0),
        Reading("meter", "energy", HOUR + HOUR_MS + 1_000, 7.0)])
    _push(hub, plain["token"], [Reading("meter", "energy", HOUR + 1_000, 2.0)])
    expected = [{"bucket_ms": HOUR, "avg": 5.0, "min": 5.0, "max": 5.0, "count": 1},
                {"bucket_ms": HOUR + HOUR_MS, "avg": 7.0, "min": 7.0, "max": 7.0, "count": 1}]

    assert _chart(hub, "gw-huge", 3600) == expected, "raw: the huge values left out"
    assert _chart(hub, "gw-huge", 60)[0]["count"] == 1

    roll_up(hub.engine)

    with hub.engine.connect() as conn:
        rolled = sorted(conn.execute(
            select(rollup_marks.c.rolled_seq)
            .join(streams, rollup_marks.c.stream_id == streams.c.id)).scalars())
    assert rolled == [1, 4], "both streams rolled up, the plain one too"
    assert _chart(hub, "gw-huge", 3600) == expected, "from the rollups: the same answer"
    assert _chart(hub, "gw-plain", 3600) == [
        {"bucket_ms": HOUR, "avg": 2.0, "min": 2.0, "max": 2.0, "count": 1}]
