"""Signing in to the dashboard over real HTTP, on SQLite and PostgreSQL (conftest's ``hub``):
CSRF on every form, failed sign-ins limited, idle expiry, tokens and links, and the
territory rule on forms. The browser scenarios are in test_ui_browser.py."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from edge_agent.records import Event, now_ms
from sync_server import admin
from sync_server.api.limits import DoorRoute
from sync_server.credentials import digest
from sync_server.db.schema import alarm_acks, ui_sessions, ui_signin_failures
from sync_server.ui.accounts import add_user, new_signin_link, remove_user
from sync_server.ui.pages import PAGES
from sync_server.ui.sessions import SIGNIN_MAX_FAILURES, close_session, live_sessions
from tests.helpers.field import push
from tests.helpers.hub import HubProcess

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def world(hub: HubProcess) -> HubProcess:
    hub.territory("dunkerque")
    hub.territory("toulon")
    add_user(hub.engine, "alice", "operator", "dunkerque", PASSWORD)
    add_user(hub.engine, "carl", "staff", "dunkerque", PASSWORD)
    token = hub.enroll("toulon", "toulon-gw")["token"]
    push(hub, token, "alarms", [Event("alarm.raised", "pump", now_ms(),
                                      {"rule": "secret-rule", "severity": "critical"})])
    return hub


@pytest.fixture
def browser(world: HubProcess) -> Iterator[httpx.Client]:
    """A cookie-keeping client, as a browser is (no redirects followed)."""
    with httpx.Client(base_url=f"{world.url}/ui", timeout=30) as client:
        yield client


def signin_form(client: httpx.Client) -> str:
    page = client.get("/signin")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/signin", data={"csrf": signin_form(client), "name": name,
                                        "password": password})


def csrf(client: httpx.Client, path: str = "/") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def session_rows(hub: HubProcess) -> int:
    with hub.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ui_sessions)).scalar_one())


def test_signing_in_sets_a_strict_http_only_cookie(world: HubProcess,
                                                   browser: httpx.Client) -> None:
    answer = sign_in(browser, "alice")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/"
    cookie = next(value for key, value in answer.headers.multi_items()
                  if key == "set-cookie" and value.startswith("ponton_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui/" in cookie
    assert "Secure" not in cookie  # plain HTTP; test_ui_pages.py checks it under TLS
    assert browser.get("/").status_code == 200


def test_the_sign_in_form_needs_its_own_csrf_token(browser: httpx.Client) -> None:
    signin_form(browser)  # the cookie is set, but the form does not repeat it
    forged = browser.post("/signin", data={"name": "alice", "password": PASSWORD})
    assert forged.status_code == 403
    assert 'data-code="csrf"' in forged.text
    assert "ponton_session" not in browser.cookies


def test_a_wrong_password_and_an_unknown_name_look_alike(browser: httpx.Client,
                                                        world: HubProcess) -> None:
    try:
        wrong = sign_in(browser, "alice", "not the password")
        unknown = sign_in(browser, "nobody", PASSWORD)
        assert wrong.status_code == unknown.status_code == 401
        message = "Nom, mot de passe ou jeton incorrect."
        assert message in wrong.text
        assert message in unknown.text
    finally:
        with world.engine.begin() as conn:
            conn.execute(delete(ui_signin_failures))


def test_failed_sign_ins_are_limited_per_address(browser: httpx.Client,
                                                 world: HubProcess) -> None:
    try:
        for _ in range(SIGNIN_MAX_FAILURES):
            assert sign_in(browser, "alice", "guess").status_code == 401
        locked = sign_in(browser, "alice")  # even the right password must wait now
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert 'data-code="too_many_attempts"' in locked.text
        assert "ponton_session" not in browser.cookies
    finally:
        with world.engine.begin() as conn:
            conn.execute(delete(ui_signin_failures))
    assert sign_in(browser, "alice").status_code == 303


def test_an_idle_session_expires_and_is_deleted(browser: httpx.Client,
                                                world: HubProcess) -> None:
    assert sign_in(browser, "alice").status_code == 303
    before = session_rows(world)
    idle = now_ms() - (1800 + 1) * 1000  # the hub's default idle timeout, passed
    with world.engine.begin() as conn:
        conn.execute(update(ui_sessions).values(seen_ms=idle).where(
            ui_sessions.c.created_ms >= now_ms() - 60_000))
    answer = browser.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/signin"
    assert session_rows(world) < before


def test_an_operator_token_signs_in_until_it_is_revoked(browser: httpx.Client,
                                                        world: HubProcess) -> None:
    token = admin.add_operator_token(world.engine, "dunkerque", "desk")
    answer = browser.post("/signin", data={"csrf": signin_form(browser), "token": token})
    assert answer.status_code == 303
    page = browser.get("/")
    assert "desk · opérateur · dunkerque" in page.text
    token_id = next(row["id"] for row in admin.operator_token_list(world.engine)
                    if row["name"] == "desk")
    admin.revoke_operator_token(world.engine, token_id)
    assert browser.get("/").status_code == 303
    again = browser.post("/signin", data={"csrf": signin_form(browser), "token": token})
    assert again.status_code == 401


def test_an_admin_token_signs_in_as_admin(browser: httpx.Client, world: HubProcess) -> None:
    token = admin.add_operator_token(world.engine, None, "ops")
    assert browser.post("/signin", data={"csrf": signin_form(browser),
                                         "token": token}).status_code == 303
    page = browser.get("/")
    assert "ops · administrateur" in page.text
    assert "toulon-gw" in page.text


def test_removing_an_account_ends_its_sessions(browser: httpx.Client,
                                               world: HubProcess) -> None:
    add_user(world.engine, "temp", "operator", "dunkerque", PASSWORD)
    assert sign_in(browser, "temp").status_code == 303
    assert browser.get("/").status_code == 200
    remove_user(world.engine, "temp")
    assert browser.get("/").status_code == 303


def test_a_sign_in_link_works_once(world: HubProcess, browser: httpx.Client) -> None:
    code = new_signin_link(world.engine, "alice", 600)
    first = browser.get(f"/signin/link/{code}")
    assert first.status_code == 303
    assert browser.get("/").status_code == 200
    browser.cookies.clear()
    second = browser.get(f"/signin/link/{code}")
    assert second.status_code == 401
    assert "déjà utilisé ou expiré" in second.text


def test_another_territory_s_alarm_cannot_be_acknowledged(
    world: HubProcess, browser: httpx.Client
) -> None:
    with world.operator("toulon") as toulon:
        foreign = toulon.get("/v1/alarms").json()["alarms"][0]["id"]
    assert sign_in(browser, "carl").status_code == 303
    token = csrf(browser, "/alarms")
    elsewhere = browser.post(f"/alarms/{foreign}/ack", data={"csrf": token, "comment": "x"})
    nowhere = browser.post("/alarms/999999-1/ack", data={"csrf": token, "comment": "x"})
    assert elsewhere.status_code == nowhere.status_code == 404
    detail = re.compile(r'<p class="detail" data-code="not_found">(.*?)</p>')
    assert detail.findall(elsewhere.text) == detail.findall(nowhere.text) != []
    unsigned = browser.post(f"/alarms/{foreign}/ack", data={"comment": "x"})
    assert unsigned.status_code == 403
    by_htmx = browser.post(f"/alarms/{foreign}/ack", data={"comment": "x"},
                           headers={"HX-Request": "true"})
    assert by_htmx.status_code == 403
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(alarm_acks)).scalar_one() == 0


def test_the_json_api_keeps_its_error_shape(world: HubProcess) -> None:
    api = httpx.get(f"{world.url}/v1/no-such-route", timeout=10)
    assert api.status_code == 404
    assert api.json() == {"error": "not_found", "detail": "Not Found"}
    page = httpx.get(f"{world.url}/ui/no-such-page", timeout=10)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" not in api.headers  # the API's answers are untouched
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    asset = httpx.get(f"{world.url}/ui/static/htmx.min.js", timeout=10)
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "max-age=300"


def test_a_form_beyond_the_body_limit_is_refused_before_it_is_read(world: HubProcess) -> None:
    """The dashboard's forms pass the JSON API's door: a declared size over the limit is
    refused at once, on an HTML page, before any body byte is sent."""
    limit = 8 * 2**20
    address = httpx.URL(world.url)
    assert address.port is not None
    with socket.create_connection((address.host, address.port), timeout=30) as sock:
        sock.sendall(b"POST /ui/signin HTTP/1.1\r\nHost: hub\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     + f"Content-Length: {limit + 1}\r\n\r\n".encode())
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "text/html" in answer


def test_every_dashboard_route_passes_the_door() -> None:
    routes = [route for page in PAGES for route in page.router.routes]
    assert routes
    assert all(isinstance(route, DoorRoute) for route in routes), [
        route.path for route in routes if not isinstance(route, DoorRoute)]


def test_open_streams_check_their_sessions_together_and_end_with_them(
        world: HubProcess) -> None:
    """One read checks every stream's session: a live one stays, an idle one and one of a
    revoked token end (and the idle one is deleted), as ``find_session`` would say."""
    token = admin.add_operator_token(world.engine, "dunkerque", "wall")
    secrets_ = {}
    for name in ("live", "idle", "revoked"):
        with httpx.Client(base_url=f"{world.url}/ui", timeout=30) as client:
            if name == "revoked":
                client.post("/signin", data={"csrf": signin_form(client), "token": token})
            else:
                sign_in(client, "alice")
            secrets_[name] = client.cookies["ponton_session"]
    with world.engine.begin() as conn:
        conn.execute(update(ui_sessions).values(seen_ms=now_ms() - 1801 * 1000).where(
            ui_sessions.c.id == digest(secrets_["idle"])))
    admin.revoke_operator_token(world.engine, next(
        row["id"] for row in admin.operator_token_list(world.engine) if row["name"] == "wall"))
    assert live_sessions(world.engine, list(secrets_.values()), 1800) == {secrets_["live"]}
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ui_sessions).where(
            ui_sessions.c.id == digest(secrets_["idle"]))).scalar() == 0


def test_a_live_stream_ends_soon_after_its_session(browser: httpx.Client,
                                                   world: HubProcess) -> None:
    assert sign_in(browser, "alice").status_code == 303
    secret = browser.cookies["ponton_session"]
    with browser.stream("GET", "/alarms/live") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        close_session(world.engine, secret)
        # Due within SESSION_CHECK_S and a round; the bound only stops a stream that
        # outlives its session from hanging the test (keep-alives come every 15 s).
        deadline = time.monotonic() + 40
        for line in lines:
            if line == "event: signed-out":
                break
            assert time.monotonic() < deadline, "the stream outlived its session"
