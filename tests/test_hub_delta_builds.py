"""Every gateway of a territory asks for the same policy delta at once, right after a change
(each push answer names the new version): the hub builds it once, not once per request.

Building one reads and compares two whole badge tables (0.3 s and tens of megabytes for
100,000 badges); built by every request at once, forty threads did the same work together.
The app runs in this process (so the builds can be counted) behind a real uvicorn socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn

from edge_agent.codecs.bundle_delta import DELTA_MEDIA_TYPE, encode_delta
from sync_server import bundle_deltas
from sync_server.app import create_app
from sync_server.settings import HubSettings
from tests.helpers.hub import HubProcess, start_hub
from tests.test_policy_deltas import newest, revoke, territory

REQUESTS = 6


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with start_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture
def app_url(hub: HubProcess) -> Iterator[str]:
    """The hub's app in this process, on a socket of its own."""
    app = create_app(HubSettings(data_dir=hub.data_dir, database_url=hub.database_url,
                                 demo=True))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.hub.engine.dispose()
        sock.close()


def test_a_delta_asked_for_by_many_at_once_is_built_once(
        hub: HubProcess, app_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    territory(hub, "herd")
    base = newest(hub, "herd")
    revoke(hub, "herd", 7)
    tokens = [hub.enroll("herd", f"herd-gw{n}")["token"] for n in range(REQUESTS)]
    built = []

    def slow_encode(key: Any, old: Mapping[str, Any], new: Mapping[str, Any]) -> bytes:
        built.append(1)
        time.sleep(0.5)  # long enough for every request to be asking meanwhile
        return encode_delta(key, old, new)

    monkeypatch.setattr(bundle_deltas, "encode_delta", slow_encode)

    def fetch(token: str) -> httpx.Response:
        return httpx.get(f"{app_url}/v1/gateway/bundles/policy", params={"base": base},
                         headers={"Authorization": f"Bearer {token}"}, timeout=60)

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(fetch, tokens))

    assert {(a.status_code, a.headers["content-type"]) for a in answers} == {
        (200, DELTA_MEDIA_TYPE)}
    assert len({a.content for a in answers}) == 1
    assert len(built) == 1, f"built {len(built)} times for {REQUESTS} requests at once"
