"""The hub's door: who may enter is decided before what they carry is read (issue 11).

A request without a valid token never has its body read; every JSON body is bounded in
elements and depth, not only in bytes; a compressed batch is refused at the first chunk past
its element budget instead of after inflating; and a client that leaves mid-body is one info
line and a count, not an internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_readings
from edge_agent.codecs.compression import compress
from edge_agent.records import Reading
from sync_server import admin
from sync_server.api.context import AUTHENTICATIONS
from sync_server.api.limits import DoorRoute, departures
from sync_server.api.openapi import dependants
from sync_server.api.push_pool import PushPool
from sync_server.app import create_app
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import upgrade
from sync_server.errors import Unavailable
from sync_server.settings import HubSettings
from tests.helpers.hub import HubProcess

_names = (f"door{i}" for i in itertools.count())
#: Far more JSON elements than any body may hold, in far fewer bytes than the byte limit.
_EXPANSION = b'{"a": [' + b"[]," * 400_000 + b"[]]}"


@pytest.fixture(scope="module")
def app_and_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data_dir = tmp_path_factory.mktemp("door")
    engine = create_hub_engine(f"sqlite:///{data_dir / 'hub.db'}")
    upgrade(engine)
    engine.dispose()
    app = create_app(HubSettings(data_dir=data_dir, demo=True))
    yield app
    app.state.hub.engine.dispose()


def _call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]
          ) -> tuple[int, bool]:
    """Run one request through the ASGI app; its status and whether the body was asked for."""
    asked = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked = True
        return {"type": "http.request", "body": b"[]," * 1000, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return status, asked


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every route of the app, included routers' too (FastAPI keeps those as they are)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        else:
            yield from _api_routes(getattr(getattr(route, "original_router", None), "routes", []))


#: Every route answered without a token: the health check, enrollment and open data.
PUBLIC_PATHS = {"/v1/health", "/healthz", "/readyz", "/v1/enroll", "/v1/open/{territory}/services",
                "/v1/open/{territory}/catalog.jsonld", "/v1/open/{territory}/car-parks.csv",
                "/v1/open/{territory}/energy-monthly.csv", "/ngsi-ld/v1/entities",
                "/ngsi-ld/v1/entities/{entity_id:path}"}


def _authenticated_routes(app: Any) -> Iterator[tuple[str, str]]:
    for route in _api_routes(app.routes):
        if route.path not in PUBLIC_PATHS:
            for method in sorted(route.methods or ()):
                yield method, re.sub(r"\{[^}]+\}", "a" * 32, route.path)  # fits every convertor


@pytest.mark.parametrize("authorization", [None, b"Bearer", b"Bearer pgw_unknown",
                                           b"Bearer pop_unknown", b"Basic abc"])
def test_every_authenticated_route_refuses_a_bad_token_before_reading_the_body(
    app_and_dir: Any, authorization: bytes | None
) -> None:
    routes = list(_authenticated_routes(app_and_dir))
    assert len(routes) > 20, "the walk found the routes"
    headers = [(b"content-type", b"application/json"), (b"content-length", b"3000000")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    for method, path in routes:
        status, asked = _call(app_and_dir, method, path, headers)
        assert (status, asked) == (401, False), f"{method} {path}"


def test_every_route_has_the_door_and_only_declared_routes_are_public(app_and_dir: Any) -> None:
    """The walk above skips public routes: only those declared above, and every route, public
    or not, reads its body through the door's bounds."""
    routes = list(_api_routes(app_and_dir.routes))
    assert routes
    assert all(isinstance(route, DoorRoute) for route in routes), [
        route.path for route in routes if not isinstance(route, DoorRoute)]
    unauthenticated = {route.path for route in routes
                       if not any(dependant.call in AUTHENTICATIONS
                                  for dependant in dependants(route))}
    assert unauthenticated == PUBLIC_PATHS


def test_a_client_leaving_mid_body_is_counted(app_and_dir: Any) -> None:
    before = departures.count
    messages = iter([{"type": "http.request", "body": b"{", "more_body": True},
                     {"type": "http.disconnect"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/enroll",
             "raw_path": b"/v1/enroll", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app_and_dir(scope, receive, send))
    assert departures.count == before + 1
    assert sent[0]["status"] != 500


def test_the_push_pool_answers_busy_when_its_queue_is_full() -> None:
    pool = PushPool(threads=1, queue=1)

    async def scenario() -> list[object]:
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def wait() -> str:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(timeout=10)
            return "done"

        running = asyncio.create_task(pool.run(wait))
        queued = asyncio.create_task(pool.run(lambda: "queued"))
        await asyncio.sleep(0.05)
        with pytest.raises(Unavailable) as refused:
            await pool.run(lambda: "refused")
        gate.set()
        return [await running, await queued, refused.value.retry_after_s]

    assert asyncio.run(scenario()) == ["done", "queued", 1]


def _one_slot(app: Any, territory: str) -> tuple[str, PushPool]:
    """A gateway's enrollment code in a new territory, and a push pool of one slot that
    ``app`` now uses (the caller puts the app's state back)."""
    state = app.state.hub
    admin.add_territory(state.engine, territory)
    admin.add_site(state.engine, territory, f"{territory}-site")
    code = admin.add_gateway(state.engine, territory, f"{territory}-site", f"{territory}-gw").code
    pool = PushPool(threads=1, queue=0)
    app.state.hub = dataclasses.replace(state, pushing=pool)
    return code, pool


def test_a_push_beyond_the_push_queue_is_answered_busy(app_and_dir: Any) -> None:
    """503 with Retry-After in the one error shape; the agent retries as for any 503."""
    state = app_and_dir.state.hub
    code, full = _one_slot(app_and_dir, "busy")
    release = threading.Event()

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app_and_dir)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            token = (await client.post("/v1/enroll", json={"code": code})).json()["token"]
            blocking = asyncio.create_task(full.run(lambda: release.wait(10)))
            await asyncio.sleep(0.05)
            readings = [Reading("m1", "voltage", 1_764_000_000_000, 230.0)]
            answers = [await client.post(
                "/v1/gateway/streams/readings/batches", content=encode_readings(1, readings),
                headers={"Authorization": f"Bearer {sent}", "Content-Type": READINGS_TYPE})
                for sent in (token, "pgw_forged")]
            release.set()
            await blocking
            return answers

    try:
        answers = asyncio.run(scenario())
    finally:
        app_and_dir.state.hub = state
    for answer in answers:  # the forged token too: refused before any lookup or body read
        assert (answer.status_code, answer.json()["error"]) == (503, "busy")
        assert answer.headers["Retry-After"] == "1"
    assert full.busy == 2



def test_a_push_refused_at_the_door_gives_its_slot_back(app_and_dir: Any) -> None:
    """One slot only: a forged token, a malformed body and a good push in turn all get in."""
    state = app_and_dir.state.hub
    code, one = _one_slot(app_and_dir, "slot")

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app_and_dir)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            token = (await client.post("/v1/enroll", json={"code": code})).json()["token"]
            good = encode_readings(1, [Reading("m1", "voltage", 1_764_000_000_000, 230.0)])
            return [(await client.post(
                "/v1/gateway/streams/readings/batches", content=body,
                headers={"Authorization": f"Bearer {sent}", "Content-Type": READINGS_TYPE}
            )).status_code for sent, body in (("pgw_forged", good), (token, b"{"),
                                              (token, good))]

    try:
        statuses = asyncio.run(scenario())
    finally:
        app_and_dir.state.hub = state
    assert statuses == [401, 400, 200]
    assert one.busy == 0


# --- over HTTP, against a real hub process (SQLite and PostgreSQL) ---


def _gateway(hub: HubProcess) -> httpx.Client:
    identity = hub.enroll("door", next(_names))
    return httpx.Client(base_url=hub.url, timeout=30,
                        headers={"Authorization": f"Bearer {identity['token']}"})


def _raw(hub: HubProcess, head: str, body: bytes = b"", *, wait: float = 5) -> bytes:
    """Send ``head`` and ``body`` over a socket; what comes back within ``wait`` seconds, up to
    the end of a JSON answer."""
    host, port = hub.url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head.encode() + body)
        with contextlib.suppress(TimeoutError):
            while not answer.endswith(b"}") and (piece := sock.recv(65536)):
                answer += piece
    return answer


def test_a_request_without_a_token_is_answered_before_its_body_arrives(
    hub: HubProcess,
) -> None:
    """The body never comes: the 401 must not wait for it."""
    started = time.perf_counter()
    answer = _raw(hub, "PUT /v1/policy/rules HTTP/1.1\r\nHost: hub\r\n"
                       "Content-Type: application/json\r\nContent-Length: 8000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"invalid_token"' in answer
    assert time.perf_counter() - started < 5


def test_json_bodies_are_bounded_in_elements_and_depth(hub: HubProcess) -> None:
    with hub.operator("door") as operator:
        expanded = operator.put("/v1/policy/rules", content=_EXPANSION,
                                headers={"Content-Type": "application/json"})
        assert (expanded.status_code, expanded.json()["error"]) == (413, "too_large")
        assert "elements" in expanded.json()["detail"]
        deep = b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}"
        nested = operator.put("/v1/policy/rules", content=deep,
                              headers={"Content-Type": "application/json"})
        assert (nested.status_code, nested.json()["error"]) == (400, "invalid_request")
        assert "deep" in nested.json()["detail"]
    with _gateway(hub) as gateway:
        answer = gateway.put("/v1/gateway/devices", content=_EXPANSION,
                             headers={"Content-Type": "application/json"})
        assert (answer.status_code, answer.json()["error"]) == (413, "too_large")


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_an_expanding_batch_is_refused_at_its_element_budget(
    hub: HubProcess, encoding: Any
) -> None:
    """60 MiB of ``[],`` (5 KB in zstd) used to be parsed whole: 4 s and 1.8 GB."""
    size = 60 * 2**20 if encoding != "identity" else 7 * 2**20
    document = b'{"first_seq": 1, "events": [' + b"[]," * (size // 3) + b"[]]}"
    with _gateway(hub) as gateway:
        answer = gateway.post("/v1/gateway/streams/events/batches",
                              content=compress(document, encoding),
                              headers={"Content-Type": EVENTS_TYPE,
                                       "Content-Encoding": encoding})
        assert (answer.status_code, answer.json()["error"]) == (413, "too_large"), answer.text
        assert "elements" in answer.json()["detail"]
        readings = [Reading("m1", "voltage", 1_764_000_000_000 + i, 230.0) for i in range(50)]
        fine = gateway.post("/v1/gateway/streams/readings/batches",
                            content=compress(encode_readings(1, readings), encoding),
                            headers={"Content-Type": READINGS_TYPE,
                                     "Content-Encoding": encoding})
        assert fine.json()["stored"] == 50, fine.text


def test_a_batch_nested_too_deep_is_refused(hub: HubProcess) -> None:
    attrs = {"a": json.loads("[" * 60 + "]" * 60)}
    document = json.dumps({"first_seq": 1, "events": [
        {"kind": "x", "device": "d", "ts_ms": 1_764_000_000_000, "attrs": attrs}]})
    with _gateway(hub) as gateway:
        answer = gateway.post("/v1/gateway/streams/events/batches",
                              content=compress(document.encode(), "zstd"),
                              headers={"Content-Type": EVENTS_TYPE, "Content-Encoding": "zstd"})
    assert (answer.status_code, answer.json()["error"]) == (400, "malformed_batch")
    assert "deep" in answer.json()["detail"]


def test_an_upload_cut_mid_body_is_one_info_line(hub: HubProcess) -> None:
    """A 4G gateway losing its link mid-push is normal: no traceback, no error line."""
    log = Path(hub.data_dir) / "hub.log"
    with _gateway(hub) as gateway:
        token = gateway.headers["Authorization"]
    before = log.read_text(encoding="utf-8")
    for _ in range(3):
        _raw(hub, "POST /v1/gateway/streams/readings/batches HTTP/1.1\r\nHost: hub\r\n"
                  f"Authorization: {token}\r\nContent-Type: {READINGS_TYPE}\r\n"
                  "Content-Length: 1000\r\n\r\n", b'{"first_seq": 1', wait=0.2)
    deadline = time.monotonic() + 10
    while log.read_text(encoding="utf-8").count("went away") < before.count("went away") + 3:
        assert time.monotonic() < deadline, log.read_text(encoding="utf-8")[len(before):]
        time.sleep(0.05)
    time.sleep(0.3)  # anything else the hub would log about them
    added = log.read_text(encoding="utf-8")[len(before):].splitlines()
    assert len(added) == 3, added
    assert all(" INFO " in line and "POST /v1/gateway/streams/readings/batches" in line
               for line in added), added
