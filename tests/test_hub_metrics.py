"""The hub's /metrics, /healthz and /readyz, scraped from a real hub process (both stores).

Metrics cover every territory, so only an admin operator token reads them: no token, a
gateway's token, a territory's operator token and a forged one are all refused.
"""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.codecs.batch import READINGS_TYPE, encode_readings
from edge_agent.records import Reading
from sync_server import admin
from sync_server.access.policy import PolicySigner, set_rules
from sync_server.access.registry import BadgeRef, import_badges, revoke_badge
from sync_server.keys import load_signing_key
from tests.helpers.hub import HubProcess


def _scrape(hub: HubProcess, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{hub.url}/metrics", headers={"Authorization": f"Bearer {token}"},
                       timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def admin_token(hub: HubProcess) -> str:
    return admin.add_operator_token(hub.engine, None, "metrics-scraper")


def test_a_push_moves_the_request_ingest_and_gateway_metrics(hub: HubProcess,
                                                            admin_token: str) -> None:
    identity = hub.enroll("metrics-t")
    before = _scrape(hub, admin_token)
    readings = [Reading("meter-1", "energy_import_kwh", 1_764_800_000_000 + i, float(i))
                for i in range(7)]
    answer = httpx.post(f"{hub.url}/v1/gateway/streams/readings/batches",
                        content=encode_readings(1, readings),
                        headers={"Authorization": f"Bearer {identity['token']}",
                                 "Content-Type": READINGS_TYPE, "X-Ponton-Backlog": "42"},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    after = _scrape(hub, admin_token)

    route = {"method": "POST", "route": "/v1/gateway/streams/{stream}/batches"}
    assert (_value(after, "ponton_hub_requests_total", **route, status="200")
            - _value(before, "ponton_hub_requests_total", **route, status="200")) == 1
    assert (_value(after, "ponton_hub_request_duration_seconds_count", **route)
            - _value(before, "ponton_hub_request_duration_seconds_count", **route)) == 1
    assert (_value(after, "ponton_hub_records_stored_total", kind="reading")
            - _value(before, "ponton_hub_records_stored_total", kind="reading")) == 7
    assert _value(after, "ponton_hub_gateways", territory="metrics-t") == 1
    assert _value(after, "ponton_hub_gateways_online", territory="metrics-t") == 1
    assert _value(after, "ponton_hub_backlog_records", territory="metrics-t") == 42
    for name in ("ponton_hub_clients_departed_total", "ponton_hub_pushes_busy_total"):
        assert (name, ()) in after, name


def test_bundles_served_are_counted_by_form(hub: HubProcess, admin_token: str) -> None:
    """Whether revocations travel as deltas shows in the metrics, not only in the agents."""
    token = hub.enroll("metrics-bundles")["token"]
    signer = PolicySigner(load_signing_key(hub.data_dir / "signing-key.pem", demo=False), 3600)
    set_rules(hub.engine, signer, "metrics-bundles", {
        "categories": ["boater"], "zones": {"pontoon": {}},
        "entitlements": [{"category": "boater", "zone": "pontoon"}],
        "gates": {"gate-a": {"zone": "pontoon"}}})
    badges = "".join(f"{0x100000000 + n:010x},hex,boater\n" for n in range(500))
    import_badges(hub.engine, signer, "metrics-bundles",
                  f"number,form,category\n{badges}".encode())  # a delta is worth it

    def pull(base: int | None) -> httpx.Response:
        return httpx.get(f"{hub.url}/v1/gateway/bundles/policy",
                         params={} if base is None else {"base": base},
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)

    before = _scrape(hub, admin_token)
    full = pull(None)
    assert full.status_code == 200, full.text
    held = int(full.headers["etag"].strip('"').removeprefix("policy-"))
    assert pull(held).status_code == 304
    revoke_badge(hub.engine, signer, "metrics-bundles", BadgeRef("0100000002"))
    delta = pull(held)
    assert delta.status_code == 200, delta.text
    assert delta.headers["content-type"].startswith("application/vnd.ponton")
    after = _scrape(hub, admin_token)
    for form in ("full", "unchanged", "delta"):
        name = "ponton_hub_bundles_served_total"
        assert (_value(after, name, kind="policy", form=form)
                - _value(before, name, kind="policy", form=form)) == 1, form


def test_raw_paths_are_counted_under_their_route_template(hub: HubProcess,
                                                          admin_token: str) -> None:
    """A client inventing paths and methods cannot grow the number of series."""
    for path in ("/v1/nowhere/1", "/v1/nowhere/2", "/v1/open/a/services", "/v1/open/b/services"):
        httpx.get(f"{hub.url}{path}", timeout=30)
    # Not HTTP to the hub's parser (httptools): refused before the app, counted nowhere.
    assert httpx.request("BREW", f"{hub.url}/healthz", timeout=30).status_code == 400
    httpx.request("PROPFIND", f"{hub.url}/healthz", timeout=30)  # HTTP, not the hub's
    text = httpx.get(f"{hub.url}/metrics", headers={"Authorization": f"Bearer {admin_token}"},
                     timeout=30).text
    routes = set(re.findall(r'ponton_hub_requests_total\{[^}]*route="([^"]*)"', text))
    assert "/v1/open/{territory}/services" in routes
    assert "(unmatched)" in routes
    assert not {route for route in routes if "nowhere" in route or "/a/" in route}
    assert 'method="BREW"' not in text
    assert 'method="PROPFIND"' not in text
    assert 'method="other"' in text


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401), ("Bearer pop_forged", 401), ("Bearer pgw_forged", 401),
    ("Basic YWRtaW46YWRtaW4=", 401), ("gateway", 401), ("territory", 403)])
def test_metrics_refuse_anything_but_an_admin_token(hub: HubProcess, authorization: str | None,
                                                    status: int) -> None:
    if authorization == "gateway":
        authorization = f"Bearer {hub.enroll('metrics-t')['token']}"
    elif authorization == "territory":
        authorization = f"Bearer {hub.territory('metrics-t').operator_token}"
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = httpx.get(f"{hub.url}/metrics", headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error", "detail"}
    assert "ponton_hub" not in answer.text


def test_healthz_and_readyz(hub: HubProcess) -> None:
    alive = httpx.get(f"{hub.url}/healthz", timeout=30)
    assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
    ready = httpx.get(f"{hub.url}/readyz", timeout=30)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert httpx.get(f"{hub.url}/v1/health", timeout=30).json() == {"status": "ok"}
