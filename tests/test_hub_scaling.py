"""Two hub processes on one database, requests alternating and racing between them: every
record is still stored exactly once (the hub is stateless; the database decides)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from edge_agent.codecs.batch import READINGS_TYPE, encode_readings
from edge_agent.codecs.compression import compress
from edge_agent.records import Reading
from simulators.hub_process import spawn_hub, stop_process
from sync_server.db.schema import gateways, readings, series
from tests.helpers.hub import HubProcess

BATCHES = 40
SIZE = 500


@pytest.fixture(scope="module")
def second_hub(hub: HubProcess) -> Iterator[str]:
    """Another hub process serving the same database as ``hub``."""
    url, process = spawn_hub(hub.data_dir / "second", hub.database_url)
    try:
        yield url
    finally:
        stop_process(process)


def _body(batch: int) -> bytes:
    first = batch * SIZE + 1
    records = [Reading(f"m{i % 7}", "active_power", 1_764_000_000_000 + (first + i) * 1000,
                       float((first + i) % 1000)) for i in range(SIZE)]
    return compress(encode_readings(first, records), "zstd")


def _push(url: str, token: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/v1/gateway/streams/readings/batches", content=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": READINGS_TYPE, "Content-Encoding": "zstd"})


def _push_admitted(url: str, token: str, body: bytes) -> httpx.Response:
    """``_push``, sent again after a 503 as the agent does: a process lets one gateway hold
    two push slots at once (sync_server/api/push_pool.py), and three racers ask for three."""
    for _ in range(100):
        answer = _push(url, token, body)
        if answer.status_code != 503:
            return answer
        time.sleep(0.05)
    return answer


def _stored(hub: HubProcess, gateway: str) -> tuple[int, int, int]:
    with hub.engine.connect() as conn:
        row = conn.execute(
            select(func.count(), func.count(func.distinct(readings.c.seq)),
                   func.max(readings.c.seq))
            .select_from(readings).join(series, readings.c.series_id == series.c.id)
            .join(gateways, series.c.gateway_id == gateways.c.id)
            .where(gateways.c.name == gateway)).one()
    return int(row[0]), int(row[1]), int(row[2])


def test_alternating_and_racing_requests_store_each_record_once(
    hub: HubProcess, second_hub: str
) -> None:
    token = hub.enroll("scaling", "gw-two-hubs")["token"]
    urls = (hub.url, second_hub)
    answers: list[int] = []
    for batch in range(BATCHES):
        body = _body(batch)
        # Each batch goes to one hub, then to both at once: a gateway retrying on another
        # process while its first request is still being stored.
        answers.append(_push(urls[batch % 2], token, body).status_code)
        racers = [threading.Thread(target=lambda u=url, b=body: answers.append(
            _push(u, token, b).status_code)) for url in urls]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
    assert answers == [200] * (3 * BATCHES)
    assert _stored(hub, "gw-two-hubs") == (BATCHES * SIZE, BATCHES * SIZE, BATCHES * SIZE)


def test_first_pushes_of_a_new_stream_race_safely(hub: HubProcess, second_hub: str) -> None:
    token = hub.enroll("scaling", "gw-race")["token"]
    body = _body(0)
    statuses: list[int] = []
    racers = [threading.Thread(target=lambda u=url: statuses.append(
        _push_admitted(u, token, body).status_code)) for url in (hub.url, second_hub) * 3]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert statuses == [200] * 6
    assert _stored(hub, "gw-race") == (SIZE, SIZE, SIZE)
