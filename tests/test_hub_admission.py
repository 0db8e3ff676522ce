"""Admission control on a real hub process (both stores): a flood of pushes beyond the push
pool is answered 503 with Retry-After, the agent's client comes back after its backoff, and
every record is then stored exactly once; bad batches are still refused whole, counted.

The hub runs with one push thread and no queue, so two pushes at once already overflow it,
and a body must be in within 2 s (``--body-timeout``).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from edge_agent.codecs.batch import READINGS_TYPE, encode_readings
from edge_agent.codecs.compression import compress
from edge_agent.errors import HubRejected
from edge_agent.records import Reading, now_ms
from edge_agent.store import Batch
from edge_agent.sync.client import HubClient
from edge_agent.sync.loop import backoff_delay
from sync_server import admin
from sync_server.api.push_pool import PER_GATEWAY
from sync_server.db.schema import gateways, readings, streams
from tests.helpers.hub import HubProcess, start_hub
from tests.test_sync_agent import an_identity

GATEWAYS = 6
BATCHES = 4
BATCH_SIZE = 2_000
_names = (f"adm{i}" for i in itertools.count())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[HubProcess]:
    data_dir = tmp_path_factory.mktemp("hub")
    serve_args = ["--push-threads", "1", "--push-queue", "0", "--body-timeout", "2"]
    if request.param == "sqlite":
        with start_hub(data_dir, serve_args=serve_args) as running:
            yield running
        return
    from tests.helpers.postgres import fresh_database, require_postgres

    require_postgres()
    with fresh_database("admission") as url, start_hub(data_dir, url,
                                                       serve_args=serve_args) as running:
        yield running


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub with room for five pushes at once (the share of a gateway is store-blind)."""
    serve_args = ["--push-threads", "1", "--push-queue", "4", "--body-timeout", "30"]
    with start_hub(tmp_path_factory.mktemp("roomy"), serve_args=serve_args) as running:
        yield running


def _stall(hub: HubProcess, token: str, body: bytes) -> socket.socket:
    """A push whose body stops after five bytes: its connection, for the answer."""
    host, _, port = hub.url.removeprefix("http://").rpartition(":")
    link = socket.create_connection((host, int(port)), timeout=30)
    link.sendall(f"POST /v1/gateway/streams/readings/batches HTTP/1.1\r\nHost: hub\r\n"
                 f"Authorization: Bearer {token}\r\nContent-Type: {READINGS_TYPE}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:5])
    return link


def _answer(link: socket.socket) -> str:
    """One whole HTTP answer from ``link``: its head and its body may come in two segments."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = link.recv(65_536)
        assert chunk, f"the connection ended inside the head: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    declared = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert declared is not None, head
    length = int(declared.group(1))
    while len(body) < length:
        chunk = link.recv(65_536)
        assert chunk, f"the connection ended inside the body: {received!r}"
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def _scrape(hub: HubProcess, name: str, **labels: str) -> float:
    token = admin.add_operator_token(hub.engine, None, next(_names))
    text = httpx.get(f"{hub.url}/metrics", headers={"Authorization": f"Bearer {token}"},
                     timeout=10).text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                     if labels else "")
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(wanted + " ")]
    return sum(values)


def _readings(gateway: int, first: int, count: int) -> list[Reading]:
    start = now_ms() - 86_400_000
    return [Reading(f"meter-{i % 20}", ("voltage", "current")[i % 2],
                    start + (first + i) * 1000, 230.0 + gateway + (first + i) % 7 / 10)
            for i in range(count)]


def _batch(first_seq: int, records: list[Reading]) -> Batch:
    return Batch("readings", list(enumerate(records, first_seq)), first_seq,
                 first_seq + len(records) - 1)


Refusal = tuple[int, str, float | None]


async def _push_until_acked(client: HubClient, batch: Batch, seen: list[Refusal],
                            rng: random.Random) -> dict[str, int]:
    """Push as the agent's sync loop does: on 503, wait its backoff (which honours
    Retry-After; a tenth of it here, to keep the test short) and send the batch again."""
    failures = 0
    while True:
        try:
            return await client.push(batch, sent_at_ms=now_ms(), backlog=0)
        except HubRejected as exc:
            seen.append((exc.status, exc.code, client.retry_after_s))
            if exc.status != 503:
                raise
            failures += 1
            await asyncio.sleep(backoff_delay(failures, cap_s=2, rng=rng,
                                              retry_after_s=client.retry_after_s) / 10)


def test_a_flood_is_answered_busy_then_stored_exactly_once(hub: HubProcess) -> None:
    identities = [hub.enroll("admission", next(_names)) for _ in range(GATEWAYS)]
    busy_before = _scrape(hub, "ponton_hub_pushes_busy_total")
    seen: list[Refusal] = []

    async def gateway(number: int, identity: dict[str, str]) -> list[dict[str, int]]:
        rng = random.Random(number)
        acks = []
        async with HubClient(an_identity(hub.url, identity["token"])) as client:
            for b in range(BATCHES):
                first = b * BATCH_SIZE
                batch = _batch(first + 1, _readings(number, first, BATCH_SIZE))
                acks.append(await _push_until_acked(client, batch, seen, rng))
        return acks

    async def flood() -> list[list[dict[str, int]]]:
        return await asyncio.gather(*(gateway(n, identity)
                                      for n, identity in enumerate(identities)))

    answers = asyncio.run(flood())

    assert seen, "six gateways at once on one push thread and no queue: some got 503"
    assert set(seen) == {(503, "busy", 1.0)}, "refused as busy; the agent read Retry-After"
    assert _scrape(hub, "ponton_hub_pushes_busy_total") - busy_before == len(seen)
    assert [acks[-1]["readings"] for acks in answers] == [BATCHES * BATCH_SIZE] * GATEWAYS
    names = [identity["gateway"] for identity in identities]
    with hub.engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(readings)
            .join(streams, streams.c.id == readings.c.stream_id)
            .join(gateways, gateways.c.id == streams.c.gateway_id)
            .where(gateways.c.name.in_(names))).scalar_one()
    assert stored == GATEWAYS * BATCHES * BATCH_SIZE, "every reading once, none lost"


def test_a_batch_pushed_again_after_its_ack_is_stored_once(hub: HubProcess) -> None:
    identity = hub.enroll("admission", next(_names))
    batch = _batch(1, _readings(0, 0, 500))

    async def twice() -> list[dict[str, int]]:
        async with HubClient(an_identity(hub.url, identity["token"])) as client:
            return [await client.push(batch, sent_at_ms=now_ms(), backlog=0)
                    for _ in range(2)]

    assert asyncio.run(twice()) == [{"readings": 500}] * 2
    body = compress(encode_readings(1, [r for _, r in batch.records if isinstance(r, Reading)]),
                    "zstd")
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches", content=body,
                        headers={"Authorization": f"Bearer {identity['token']}",
                                 "Content-Type": READINGS_TYPE, "Content-Encoding": "zstd"})
    assert (answer.json()["stored"], answer.json()["duplicates"]) == (0, 500)


def test_a_malformed_batch_is_refused_with_a_clear_error(hub: HubProcess) -> None:
    identity = hub.enroll("admission", next(_names))
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches",
                        content=b'{"first_seq": 1, "series": [["m1", ["voltage"]]], "s": [7]}',
                        headers={"Authorization": f"Bearer {identity['token']}",
                                 "Content-Type": READINGS_TYPE})
    assert (answer.status_code, answer.json()["error"]) == (400, "malformed_batch")
    assert "malformed readings batch" in answer.json()["detail"]


def test_a_columnar_batch_with_a_bad_reading_names_it_and_is_counted(hub: HubProcess) -> None:
    identity = hub.enroll("admission", next(_names))
    good = _readings(0, 0, 10)
    ahead = now_ms() + 3 * 86_400_000  # two days past what a clock may be ahead
    records = [*good[:3], Reading("meter-1", "voltage", ahead, 231.0), *good[3:]]
    before = _scrape(hub, "ponton_hub_records_refused_total", rule="ts_ms")
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches",
                        content=encode_readings(21, records),
                        headers={"Authorization": f"Bearer {identity['token']}",
                                 "Content-Type": READINGS_TYPE})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_record")
    assert "record 3 (seq 24)" in answer.json()["detail"]
    assert "ts_ms" in answer.json()["detail"]
    assert _scrape(hub, "ponton_hub_records_refused_total", rule="ts_ms") == before + 1
    marks = httpx.get(f"{hub.url}/v1/gateway/streams",
                      headers={"Authorization": f"Bearer {identity['token']}"}).json()
    assert marks == {"acked": {}}, "nothing of the batch was stored"


def test_a_body_that_stops_coming_frees_its_push_slot(hub: HubProcess) -> None:
    """A gateway whose link dies mid-body without a word (or that sends a byte at a time)
    looks like one still sending: it held its push slot, here the only one, for as long as
    its connection stayed open, and every other push was answered 503 meanwhile."""
    stalled = hub.enroll("admission", next(_names))["token"]
    other = hub.enroll("admission", next(_names))["token"]
    departed_before = _scrape(hub, "ponton_hub_clients_departed_total")
    body = encode_readings(1, _readings(0, 0, 10))
    with _stall(hub, stalled, body) as link:
        answers = []
        deadline = time.monotonic() + 60  # bounds the loop; the hub's own deadline is 2 s
        while time.monotonic() < deadline:
            answer = httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches", content=body,
                                headers={"Authorization": f"Bearer {other}",
                                         "Content-Type": READINGS_TYPE}, timeout=30)
            answers.append(answer.status_code)
            if answer.status_code != 503:
                break
            time.sleep(0.2)
        stalled_answer = _answer(link)
        assert link.recv(1) == b"", "the hub closed the stalled connection"
    assert answers[0] == 503, "the stalled body held the only slot at first"
    assert answers[-1] == 200, "then its deadline freed the slot"
    assert stalled_answer.startswith("HTTP/1.1 408 ")
    assert '"error":"body_timeout"' in stalled_answer
    assert _scrape(hub, "ponton_hub_clients_departed_total") == departed_before + 1


def test_one_gateway_cannot_hold_every_push_slot(roomy: HubProcess) -> None:
    """A gateway opening connection after connection and sending slowly (a stolen box) holds
    its share of the slots, not all five: its next push is answered 503 before its body is
    read, and another gateway's pushes still go in."""
    hog = roomy.enroll("admission", next(_names))["token"]
    other = roomy.enroll("admission", next(_names))["token"]
    body = encode_readings(1, _readings(0, 0, 10))
    held = [_stall(roomy, hog, body) for _ in range(PER_GATEWAY)]
    try:
        time.sleep(0.5)  # the stalled pushes passed the door and wait for their bodies
        with _stall(roomy, hog, body) as refused:
            answer = _answer(refused)
        assert answer.startswith("HTTP/1.1 503 "), answer
        assert "Retry-After: 1" in answer.replace("retry-after", "Retry-After")
        assert '"error":"busy"' in answer
        pushed = httpx.post(f"{roomy.url}/v1/gateway/streams/readings/batches", content=body,
                            headers={"Authorization": f"Bearer {other}",
                                     "Content-Type": READINGS_TYPE}, timeout=30)
        assert pushed.status_code == 200, pushed.text
    finally:
        for link in held:
            link.close()
    for _ in range(100):  # the hub sees the stalled pushes go: their slots come back
        again = httpx.post(f"{roomy.url}/v1/gateway/streams/readings/batches", content=body,
                           headers={"Authorization": f"Bearer {hog}",
                                    "Content-Type": READINGS_TYPE}, timeout=30)
        if again.status_code != 503:
            break
        time.sleep(0.1)
    assert again.status_code == 200, again.text


def test_a_dashboard_form_that_stops_coming_is_answered_408_and_closed(hub: HubProcess) -> None:
    host, _, port = hub.url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as link:
        link.sendall(b"POST /ui/signin HTTP/1.1\r\nHost: hub\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\n\r\ntoken=")
        answer = b""
        while chunk := link.recv(65_536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in answer.lower()
