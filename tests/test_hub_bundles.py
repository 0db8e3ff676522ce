"""Signed bundles over real HTTP: published by the hub, fetched conditionally, verified by the
gateway with the key it pinned at enrollment, kept by its BundleStore.

Each test has a territory of its own, so versions start at 1 in every test.
"""

from __future__ import annotations

import base64
import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from edge_agent.codecs.bundle import verify_bundle
from edge_agent.errors import BundleError
from edge_agent.records import now_ms
from edge_agent.sync.bundles import BundleStore
from sync_server.bundles import publish_bundle
from sync_server.db.schema import bundles, territories
from sync_server.errors import BadRequest, HubError, NotFound
from sync_server.keys import SigningKey, load_signing_key
from tests.helpers.hub import HubProcess

_territories = itertools.count(1)
_POLICY = {"gates": [{"name": "berth-a3", "fail_mode": "closed", "badges": ["h:1f2e"]}],
           "rate": 0.25, "note": "quai \u00e9st"}


@dataclass
class Gateway:
    """An enrolled gateway of a fresh territory, with what it pinned."""

    hub: HubProcess
    territory: str
    token: str
    public_key: bytes

    def pull(self, kind: str = "policy", if_none_match: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if if_none_match is not None:
            headers["If-None-Match"] = if_none_match
        return httpx.get(f"{self.hub.url}/v1/gateway/bundles/{kind}", headers=headers,
                         timeout=10)

    def publish(self, payload: dict[str, Any], kind: str = "policy",
                expires_in_s: int = 3600) -> int:
        return publish_bundle(self.hub.engine, _key(self.hub), self.territory, kind, payload,
                              expires_in_s=expires_in_s)


def _key(hub: HubProcess) -> SigningKey:
    return load_signing_key(hub.data_dir / "signing-key.pem", demo=False)


@pytest.fixture
def gateway(hub: HubProcess) -> Gateway:
    territory = f"bundles{next(_territories)}"
    identity = hub.enroll(territory, "gw1")
    public_key = base64.b64decode(identity["signing_public_key"], validate=True)
    return Gateway(hub, territory, identity["token"], public_key)


def test_a_published_bundle_is_served_signed_and_verifies(gateway: Gateway) -> None:
    assert gateway.publish(_POLICY) == 1
    answer = gateway.pull()
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == '"policy-1"'
    assert answer.headers["Content-Type"].startswith("application/json")
    bundle = verify_bundle(answer.content, gateway.public_key, kind="policy",
                           territory=gateway.territory)
    assert (bundle.kind, bundle.territory, bundle.version) == ("policy", gateway.territory, 1)
    assert bundle.payload == _POLICY
    assert not bundle.expired(now_ms())
    assert bundle.expires_at_ms - bundle.issued_at_ms == 3_600_000
    assert abs(bundle.issued_at_ms - now_ms()) < 10_000
    assert answer.json()["key_id"] == _key(gateway.hub).key_id


def test_an_unchanged_bundle_answers_304(gateway: Gateway) -> None:
    gateway.publish(_POLICY)
    for tag in ('"policy-1"', '"config-3", "policy-1"', '"policy-1",  "policy-2"',
                'W/"policy-1"', "*"):
        answer = gateway.pull(if_none_match=tag)
        assert answer.status_code == 304, tag
        assert answer.content == b""
        assert answer.headers["ETag"] == '"policy-1"'
    for stale in ('"policy-0"', '"config-1"', "policy-1", '"policy-11"'):
        assert gateway.pull(if_none_match=stale).status_code == 200, stale


def test_a_new_version_is_served_with_a_new_etag(gateway: Gateway) -> None:
    gateway.publish(_POLICY)
    assert gateway.publish({**_POLICY, "rate": 0.5}) == 2
    answer = gateway.pull(if_none_match='"policy-1"')
    assert answer.status_code == 200
    assert answer.headers["ETag"] == '"policy-2"'
    bundle = verify_bundle(answer.content, gateway.public_key, kind="policy",
                           territory=gateway.territory)
    assert (bundle.version, bundle.payload["rate"]) == (2, 0.5)
    assert gateway.pull(if_none_match='"policy-2"').status_code == 304


def test_kinds_are_versioned_apart(gateway: Gateway) -> None:
    gateway.publish(_POLICY)
    gateway.publish(_POLICY)
    assert gateway.publish({"poll_interval_s": 5}, kind="config") == 1
    config = gateway.pull("config")
    assert config.headers["ETag"] == '"config-1"'
    assert verify_bundle(config.content, gateway.public_key, kind="config",
                         territory=gateway.territory).payload == {"poll_interval_s": 5}
    with pytest.raises(BundleError, match="'config' bundle, 'policy' was expected"):
        verify_bundle(config.content, gateway.public_key, kind="policy",
                      territory=gateway.territory)
    assert gateway.pull("policy").headers["ETag"] == '"policy-2"'


def test_the_bundle_store_accepts_successive_versions(gateway: Gateway, tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles", gateway.public_key, gateway.territory)
    gateway.publish(_POLICY)
    first = gateway.pull().content
    accepted = store.accept(first, now_ms=now_ms())
    assert accepted is not None
    assert accepted.version == 1
    assert store.accept(gateway.pull().content, now_ms=now_ms()) is None, "same version again"

    gateway.publish({**_POLICY, "rate": 0.75})
    second = store.accept(gateway.pull().content, now_ms=now_ms())
    assert second is not None
    assert (second.version, second.payload["rate"]) == (2, 0.75)
    with pytest.raises(BundleError, match="rollback refused"):
        store.accept(first, now_ms=now_ms())
    current = store.current("policy")
    assert current is not None
    assert current.version == 2
    assert store.versions() == {"policy": 2}
    reopened = BundleStore(tmp_path / "bundles", gateway.public_key, gateway.territory)
    assert reopened.current("policy") == current


def test_an_expired_bundle_is_served_but_the_gateway_refuses_it(
    gateway: Gateway, tmp_path: Path
) -> None:
    gateway.publish(_POLICY, expires_in_s=1)
    answer = gateway.pull()
    assert answer.status_code == 200
    store = BundleStore(tmp_path, gateway.public_key, gateway.territory)
    expires = verify_bundle(answer.content, gateway.public_key, kind="policy",
                            territory=gateway.territory).expires_at_ms
    with pytest.raises(BundleError, match="expired"):
        store.accept(answer.content, now_ms=expires)
    assert store.current("policy") is None


def test_a_bundle_for_another_territory_or_key_is_refused(
    gateway: Gateway, hub: HubProcess
) -> None:
    gateway.publish(_POLICY)
    envelope = gateway.pull().content
    with pytest.raises(BundleError, match="territory"):
        verify_bundle(envelope, gateway.public_key, kind="policy", territory="elsewhere")
    with pytest.raises(BundleError, match="pinned"):
        verify_bundle(envelope, bytes(32), kind="policy", territory=gateway.territory)
    tampered = envelope.replace(b'"rate":0.25', b'"rate":0.35')
    assert tampered != envelope
    with pytest.raises(BundleError, match="signature"):
        verify_bundle(tampered, gateway.public_key, kind="policy", territory=gateway.territory)


def test_nothing_published_answers_404_no_bundle(gateway: Gateway) -> None:
    for kind in ("policy", "config"):
        answer = gateway.pull(kind)
        assert (answer.status_code, answer.json()["error"]) == (404, "no_bundle")
        assert answer.json()["detail"]
        assert "ETag" not in answer.headers
        assert gateway.pull(kind, if_none_match=f'"{kind}-1"').status_code == 404


@pytest.mark.parametrize("kind",
                         ["firmware", "Policy", "policy.json", "policy%20", "config,policy"])
def test_an_unknown_kind_answers_404(gateway: Gateway, kind: str) -> None:
    gateway.publish(_POLICY)
    answer = gateway.pull(kind)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found"


def test_pulling_needs_the_gateways_token(gateway: Gateway) -> None:
    gateway.publish(_POLICY)
    for token in ("", "Bearer pgw_unknown", f"Bearer {gateway.token}x"):
        answer = httpx.get(f"{gateway.hub.url}/v1/gateway/bundles/policy",
                           headers={"Authorization": token}, timeout=10)
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"payload": {"rate": float("nan")}}, BadRequest, "cannot be signed"),
        ({"payload": {"limits": [1.0, float("inf")]}}, BadRequest, "cannot be signed"),
        ({"payload": {"badges": {b"raw"}}}, BadRequest, "cannot be signed"),
        ({"payload": {1: "integer key"}}, BadRequest, "cannot be signed"),
        ({"kind": "firmware"}, BadRequest, "not one of"),
        ({"expires_in_s": 0}, BadRequest, "lifetime"),
        ({"territory": "atlantis"}, NotFound, "no territory"),
    ],
)
def test_unpublishable_bundles_are_refused_and_store_nothing(
    gateway: Gateway, arguments: dict[str, Any], error: type[HubError], message: str
) -> None:
    gateway.publish(_POLICY)
    options: dict[str, Any] = {"territory": gateway.territory, "kind": "policy",
                               "payload": _POLICY, "expires_in_s": 60, **arguments}
    with pytest.raises(error, match=message):
        publish_bundle(gateway.hub.engine, _key(gateway.hub), options["territory"],
                       options["kind"], options["payload"], expires_in_s=options["expires_in_s"])
    with gateway.hub.engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(bundles)
            .join(territories, bundles.c.territory_id == territories.c.id)
            .where(territories.c.name == gateway.territory)).scalar_one()
    assert stored == 1
    assert gateway.pull().headers["ETag"] == '"policy-1"'


def test_concurrent_publications_get_distinct_versions(gateway: Gateway) -> None:
    start = threading.Barrier(6)
    versions: list[int] = []
    failures: list[BaseException] = []

    def publish(rate: float) -> None:
        start.wait()
        try:
            versions.append(gateway.publish({**_POLICY, "rate": rate}))
        except Exception as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=publish, args=(i / 10,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]
    assert gateway.pull().headers["ETag"] == '"policy-6"'
