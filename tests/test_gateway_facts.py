"""What a gateway tells the hub about itself on each push (agent version, sync lag, bundle
versions held): a real agent process reports them, the hub keeps them and the dashboard
shows them; hostile header values are refused whole, counted, and nothing is kept."""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from edge_agent import __version__
from edge_agent.codecs.access_policy import pack_badges, policy_payload
from edge_agent.codecs.batch import READINGS_TYPE, encode_readings
from edge_agent.records import Reading, now_ms
from edge_agent.sync.facts import fact_headers
from simulators.demo import agent_process
from sync_server import bad_records
from sync_server.bundles import publish_bundle
from sync_server.db.schema import gateways
from sync_server.errors import BadRequest
from sync_server.gateway_facts import GatewayFacts, parse_facts
from sync_server.keys import load_signing_key
from sync_server.ui.accounts import add_user
from tests.helpers.gateway import make_gateway
from tests.helpers.hub import HubProcess
from tests.helpers.marina_world import PASSWORD, RULES, signed_in
from tests.helpers.ui_world import AGENT_SETTINGS, MeterThread

_numbers = itertools.count(1)


def gateway_row(hub: HubProcess, name: str) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        row = conn.execute(select(gateways).where(gateways.c.name == name)).one()
    return dict(row._mapping)


def wait_for(check: Any, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return value


def test_a_real_agent_reports_its_version_lag_and_policy_and_the_pages_show_them(
    hub: HubProcess, tmp_path: Path
) -> None:
    hub.territory("facts")
    add_user(hub.engine, "fay", "operator", "facts", PASSWORD)
    signing = load_signing_key(hub.data_dir / "signing-key.pem", demo=False)
    policy = publish_bundle(hub.engine, signing, "facts", "policy",
                            policy_payload(RULES, pack_badges([])), expires_in_s=3600)
    with MeterThread() as meter:
        gateway = make_gateway(tmp_path, hub, "facts", "facts-gw", counts={"readings": 0},
                               sync_settings=AGENT_SETTINGS.format(endpoint=meter.endpoint,
                                                                    meter="berth-f1"))
        with agent_process(gateway.config, tmp_path / "agent.log"):
            row = wait_for(lambda: (found := gateway_row(hub, "facts-gw"))[
                "held_policy_version"] == policy and found)
    assert row["agent_version"] == __version__
    assert 0 <= row["sync_lag_ms"] < 60_000, "the oldest waiting record was seconds old"
    assert row["held_config_version"] is None, "no configuration bundle was published"
    with signed_in(hub, "fay") as ui:
        overview = ui.get("/").text
        page = ui.get("/gateways/facts-gw").text
        access = ui.get("/access").text
    assert f"<td>{__version__}</td>" in overview
    assert re.search(f'<div class="held-policy"><dt>[^<]+</dt><dd><span class="pill ok">'
                     f"{policy}</span>", page)
    assert f'<tr data-gateway="facts-gw">\n      <td>facts-gw</td>\n      <td><span ' \
           f'class="pill ok">{policy}</span></td>' in access


def push(hub: HubProcess, token: str, headers: dict[str, str], seq: int = 1) -> httpx.Response:
    body = encode_readings(seq, [Reading("m1", "voltage", now_ms(), 230.0)])
    return httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches", content=body,
                      timeout=10, headers={"Authorization": f"Bearer {token}",
                                           "Content-Type": READINGS_TYPE, **headers})


def test_facts_are_kept_and_an_absent_header_keeps_the_previous_value(hub: HubProcess) -> None:
    token = hub.enroll("facts", "facts-kept")["token"]
    answer = push(hub, token, {"X-Ponton-Agent-Version": "0.2.0.dev3+g1a2b3c4",
                               "X-Ponton-Sync-Lag-Ms": "1500",
                               "X-Ponton-Bundles": "config=4,policy=9,future_kind=2"})
    assert answer.status_code == 200, answer.text
    assert push(hub, token, {}, seq=2).status_code == 200
    row = gateway_row(hub, "facts-kept")
    assert (row["agent_version"], row["sync_lag_ms"], row["held_config_version"],
            row["held_policy_version"]) == ("0.2.0.dev3+g1a2b3c4", 1500, 4, 9)


@pytest.mark.parametrize(("header", "value"), [
    ("X-Ponton-Agent-Version", "1.0 <script>"),
    ("X-Ponton-Agent-Version", "9" * 65),
    ("X-Ponton-Agent-Version", "-1"),
    ("X-Ponton-Sync-Lag-Ms", "-5"),
    ("X-Ponton-Sync-Lag-Ms", "1e3"),
    ("X-Ponton-Sync-Lag-Ms", str(2**53 + 1)),
    ("X-Ponton-Sync-Lag-Ms", "9" * 400),
    ("X-Ponton-Bundles", "policy=0"),
    ("X-Ponton-Bundles", "policy=3,policy=4"),
    ("X-Ponton-Bundles", "policy"),
    ("X-Ponton-Bundles", "Policy=3"),
    ("X-Ponton-Bundles", ",".join(f"k{i}=1" for i in range(17))),
    ("X-Ponton-Bundles", "policy=" + "9" * 17),
])
def test_hostile_fact_headers_refuse_the_push_whole(hub: HubProcess, header: str,
                                                    value: str) -> None:
    name = f"facts-hostile-{next(_numbers)}"
    token = hub.enroll("facts", name)["token"]
    answer = push(hub, token, {"X-Ponton-Agent-Version": "1.0", header: value})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "invalid_request"
    assert header in body["detail"]
    assert "nothing of this batch was stored" in body["detail"]
    marks = httpx.get(f"{hub.url}/v1/gateway/streams", timeout=10,
                      headers={"Authorization": f"Bearer {token}"}).json()["acked"]
    assert marks == {}, "nothing of the batch was stored"
    row = gateway_row(hub, name)
    assert (row["agent_version"], row["sync_lag_ms"], row["held_policy_version"],
            row["last_seen_ms"]) == (None, None, None, None), "no fact was kept"


@pytest.mark.parametrize(("header", "arguments"), [
    ("X-Ponton-Agent-Version", ("é", None, None)),
    ("X-Ponton-Sync-Lag-Ms", (None, "", None)),
    ("X-Ponton-Bundles", (None, None, "")),
])
def test_a_refused_header_is_counted_under_its_name(header: str,
                                                   arguments: tuple[str | None, ...]) -> None:
    before = bad_records.counts()["refused"].get(header, 0)
    with pytest.raises(BadRequest, match=header):
        parse_facts(*arguments)
    assert bad_records.counts()["refused"][header] == before + 1


def test_the_agent_sends_only_what_it_knows() -> None:
    assert fact_headers(None, {}) == {"X-Ponton-Agent-Version": __version__}
    assert fact_headers(1500, {"policy": {"version": 12, "expires_at_ms": 1},
                               "config": {"version": 3, "expires_at_ms": 1}}) == {
        "X-Ponton-Agent-Version": __version__, "X-Ponton-Sync-Lag-Ms": "1500",
        "X-Ponton-Bundles": "config=3,policy=12"}
    assert parse_facts(__version__, "1500", "config=3,policy=12") == GatewayFacts(
        __version__, 1500, 12, 3), "the hub reads what the agent sends"
