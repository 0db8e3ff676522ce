"""Enrollment over real HTTP: identity, single use, expiry, rate limit, re-issue, hostile bodies.

Every test sends from its own loopback address (127.0.0.N), so the hub's per-address count of
failed attempts is the test's own: the rate limit can be driven to its refusal without
waiting out the window, and another address shows that the failures of one do not count.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from edge_agent.codecs.bundle import key_id
from edge_agent.records import now_ms
from sync_server import admin
from sync_server.app import create_app
from sync_server.credentials import digest, new_enrollment_code
from sync_server.db.schema import enroll_failures, gateways, territories
from sync_server.enrollment import client_key
from sync_server.keys import load_signing_key, open_badge_key
from sync_server.settings import HubSettings
from tests.helpers.hub import HubProcess

_addresses = itertools.count(2)
_names = itertools.count(1)

_IDENTITY_FIELDS = {"gateway", "territory", "site", "token", "signing_public_key",
                    "signing_key_id", "badge_key", "hub_time_ms"}


@pytest.fixture
def source() -> str:
    """A loopback address of the test's own, to enroll from."""
    number = next(_addresses)
    assert number < 255, "more tests than loopback addresses: reuse addresses per module"
    return f"127.0.0.{number}"


def _enroll(hub: HubProcess, source: str, **request: Any) -> httpx.Response:
    """POST /v1/enroll from ``source``; ``json=`` or ``content=`` as httpx takes them."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=hub.url, transport=transport, timeout=30) as client:
        return client.post("/v1/enroll", **request)


def _code(hub: HubProcess, territory: str = "enroll", **options: Any) -> admin.Enrollment:
    """A fresh gateway in ``territory`` and its one-time code."""
    site = hub.territory(territory).site
    return admin.add_gateway(hub.engine, territory, site, f"gw{next(_names)}", **options)


def _marks(hub: HubProcess, token: str) -> httpx.Response:
    return httpx.get(f"{hub.url}/v1/gateway/streams", timeout=10,
                     headers={"Authorization": f"Bearer {token}"})


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        pytest.fail(f"not canonical base64: {text!r} ({exc})")


def test_a_code_yields_the_identity_the_protocol_promises(hub: HubProcess, source: str) -> None:
    enrollment = _code(hub)
    answer = _enroll(hub, source, json={"code": enrollment.code})
    assert answer.status_code == 200, answer.text
    identity = answer.json()
    assert set(identity) == _IDENTITY_FIELDS
    assert (identity["gateway"], identity["territory"], identity["site"]) == (
        enrollment.gateway, "enroll", "enroll-site")
    assert identity["token"].startswith("pgw_")
    assert abs(identity["hub_time_ms"] - now_ms()) < 10_000

    marks = _marks(hub, identity["token"])
    assert (marks.status_code, marks.json()) == (200, {"acked": {}}), "the token works at once"

    key = load_signing_key(hub.data_dir / "signing-key.pem", demo=False)
    public = _b64(identity["signing_public_key"])
    assert public == key.public_bytes
    assert identity["signing_key_id"] == key.key_id == key_id(public)

    badge_key = _b64(identity["badge_key"])
    assert len(badge_key) == 32
    with hub.engine.connect() as conn:
        stored_badge_key = conn.execute(select(territories.c.badge_key)
                                        .where(territories.c.name == "enroll")).scalar_one()
        gateway = conn.execute(select(gateways.c.token_hash, gateways.c.enrolled_ms)
                               .where(gateways.c.name == enrollment.gateway)).one()
    assert open_badge_key(hub.engine, "enroll", stored_badge_key) == badge_key  # sealed
    assert gateway.token_hash == digest(identity["token"]), "only the token's SHA-256 is kept"
    assert gateway.enrolled_ms is not None


def test_the_badge_key_is_the_territorys(hub: HubProcess, source: str) -> None:
    keys = {}
    for territory, index in (("north", 1), ("north", 2), ("south", 1)):
        answer = _enroll(hub, source, json={"code": _code(hub, territory).code})
        assert answer.status_code == 200, answer.text
        keys[territory, index] = _b64(answer.json()["badge_key"])
    assert keys["north", 1] == keys["north", 2]
    assert keys["north", 1] != keys["south", 1]
    assert all(len(k) == 32 for k in keys.values())


def test_a_code_is_single_use(hub: HubProcess, source: str) -> None:
    code = _code(hub).code
    first = _enroll(hub, source, json={"code": code})
    assert first.status_code == 200
    again = _enroll(hub, source, json={"code": code})
    assert (again.status_code, again.json()["error"]) == (401, "invalid_code")
    assert _marks(hub, first.json()["token"]).status_code == 200, "the first token stays valid"


def test_used_expired_and_unknown_codes_answer_alike(hub: HubProcess, source: str) -> None:
    used = _code(hub).code
    assert _enroll(hub, source, json={"code": used}).status_code == 200
    expired = _code(hub, expires_in_s=1)
    time.sleep(1.2)
    unknown = new_enrollment_code()
    answers = [_enroll(hub, source, json={"code": code}) for code in (used, expired.code, unknown)]
    assert {a.status_code for a in answers} == {401}
    assert [a.json() for a in answers] == [answers[0].json()] * 3
    assert answers[0].json()["error"] == "invalid_code"
    assert answers[0].json()["detail"]
    with hub.engine.connect() as conn:
        enrolled = conn.execute(select(gateways.c.enrolled_ms)
                                .where(gateways.c.name == expired.gateway)).scalar_one()
    assert enrolled is None, "an expired code enrolls nothing"


@pytest.mark.parametrize(
    "typed",
    [str.lower, lambda c: c.replace("-", ""), lambda c: c.replace("-", " "),
     lambda c: f"  {c.lower().replace('-', '')} ", lambda c: c[:9].lower() + c[9:]],
    ids=["lower", "no-dashes", "spaces", "padded-lower", "mixed-case"],
)
def test_codes_are_case_and_dash_insensitive(
    hub: HubProcess, source: str, typed: Any
) -> None:
    code = _code(hub).code
    assert code.count("-") == 3
    assert code == code.upper()
    answer = _enroll(hub, source, json={"code": typed(code)})
    assert answer.status_code == 200, answer.text


def test_ten_failures_lock_the_address_out_even_for_a_valid_code(
    hub: HubProcess, source: str
) -> None:
    valid = _code(hub).code
    for _ in range(10):
        answer = _enroll(hub, source, json={"code": new_enrollment_code()})
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_code")
    for code in (valid, new_enrollment_code()):
        refused = _enroll(hub, source, json={"code": code})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "too_many_attempts"
        assert 0 < int(refused.headers["Retry-After"]) <= 900
    # The refusal did not spend the code, and this address's failures are not another's.
    other = f"127.0.1.{source.rsplit('.', 1)[1]}"
    assert _enroll(hub, other, json={"code": valid}).status_code == 200


def test_reissue_revokes_the_token_and_voids_the_unused_code(
    hub: HubProcess, source: str
) -> None:
    first = _code(hub)
    old_token = _enroll(hub, source, json={"code": first.code}).json()["token"]
    site = hub.territory("enroll").site
    unused = admin.add_gateway(hub.engine, "enroll", site, first.gateway, reissue=True).code
    revoked = _marks(hub, old_token)
    assert (revoked.status_code, revoked.json()["error"]) == (401, "invalid_token")

    latest = admin.add_gateway(hub.engine, "enroll", site, first.gateway, reissue=True).code
    voided = _enroll(hub, source, json={"code": unused})
    assert (voided.status_code, voided.json()["error"]) == (401, "invalid_code")
    answer = _enroll(hub, source, json={"code": latest})
    assert answer.status_code == 200, answer.text
    assert answer.json()["gateway"] == first.gateway
    assert _marks(hub, answer.json()["token"]).status_code == 200
    assert _marks(hub, old_token).status_code == 401


@pytest.mark.parametrize(
    "request_args",
    [
        {"json": {}},
        {"json": {"kode": "ABCD-EFGH-IJKL-MNOP"}},
        {"json": {"code": "A" * 10_000}},
        {"json": {"code": ""}},
        {"json": {"code": 1234}},
        {"json": {"code": ["ABCD"]}},
        {"json": {"code": None}},
        {"json": ["ABCD-EFGH-IJKL-MNOP"]},
        {"json": "ABCD-EFGH-IJKL-MNOP"},
        {"content": b"code=ABCD", "headers": {"Content-Type": "application/json"}},
        {"content": b"{\"code\": ", "headers": {"Content-Type": "application/json"}},
        {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
        {},
    ],
    ids=["empty", "other-field", "10kB", "blank", "int", "list", "null", "array", "string",
         "form", "truncated", "not-utf8", "no-body"],
)
def test_hostile_bodies_are_invalid_requests(
    hub: HubProcess, source: str, request_args: dict[str, Any]
) -> None:
    answer = _enroll(hub, source, **request_args)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "invalid_request"
    assert len(body["detail"]) < 2_000, "the detail does not echo a huge input back"


def test_hostile_bodies_do_not_count_as_failed_codes(hub: HubProcess, source: str) -> None:
    for _ in range(12):
        assert _enroll(hub, source, json={"code": 1}).status_code == 400
    assert _enroll(hub, source, json={"code": _code(hub).code}).status_code == 200


def test_one_code_redeemed_by_eight_threads_at_once_enrolls_once(
    hub: HubProcess, source: str
) -> None:
    enrollment = _code(hub)
    start = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def redeem() -> None:
        start.wait()
        answer = _enroll(hub, source, json={"code": enrollment.code})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7
    winner = next(a.json() for a in answers if a.status_code == 200)
    assert {a.json()["error"] for a in answers if a.status_code == 401} == {"invalid_code"}
    with hub.engine.connect() as conn:
        stored = conn.execute(select(gateways.c.token_hash)
                              .where(gateways.c.name == enrollment.gateway)).scalar_one()
    assert stored == digest(winner["token"])
    assert _marks(hub, winner["token"]).status_code == 200


def test_a_parallel_burst_gets_exactly_the_allowed_failures(
    hub: HubProcess, source: str
) -> None:
    """50 wrong codes at once from one address: 10 are tried, 40 refused unread."""
    burst = 50
    start = threading.Barrier(burst)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt() -> None:
        start.wait()
        answer = _enroll(hub, source, json={"code": new_enrollment_code()})
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [401] * 10 + [429] * 40
    with hub.engine.connect() as conn:
        counted = conn.execute(select(func.count()).select_from(enroll_failures)
                               .where(enroll_failures.c.client == source)).scalar_one()
    assert counted == 10


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:a:b:1:2:3:4", "2001:db8:a:b::/64"),
    ("2001:DB8:A:B::", "2001:db8:a:b::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("::1", "::/64"),
    ("testclient", "testclient"),
    ("x" * 100, "x" * 64),
])
def test_the_limit_counts_ipv6_clients_by_their_64(address: str, key: str) -> None:
    assert client_key(address) == key


async def test_addresses_of_one_ipv6_64_share_the_limit(hub: HubProcess) -> None:
    app = create_app(HubSettings(data_dir=hub.data_dir, database_url=hub.database_url,
                                 demo=True))

    async def enroll(address: str, code: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 40_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            return await client.post("/v1/enroll", json={"code": code})

    try:
        for host in range(1, 11):
            wrong = await enroll(f"2001:db8:64:1::{host:x}", new_enrollment_code())
            assert wrong.status_code == 401, wrong.text
        valid = _code(hub).code
        refused = await enroll("2001:db8:64:1:ffff:ffff:ffff:ffff", valid)
        assert (refused.status_code, refused.json()["error"]) == (429, "too_many_attempts")
        assert "2001:db8:64:1::/64" in refused.json()["detail"]
        assert (await enroll("2001:db8:64:2::1", valid)).status_code == 200, "another /64"
    finally:
        app.state.hub.engine.dispose()
