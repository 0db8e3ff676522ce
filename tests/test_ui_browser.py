"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real hub
process, with a real agent pushing from a simulated meter (tests/helpers/ui_world.py).

Each page visited is saved into docs/screenshots/ (the README shows them), from the SQLite
run: the pictures then do not depend on which store ran last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.helpers.browser import SCREENSHOTS, chromium, strict_context
from tests.helpers.hub import HubProcess
from tests.helpers.ui_world import (
    HISTORY_DEVICE,
    HISTORY_GATEWAY,
    METER,
    PASSWORD,
    UiWorld,
    ui_world,
)

#: Phone and desk: staff use phones on the pontoon.
PHONE = ViewportSize(width=360, height=740)
DESK = ViewportSize(width=1280, height=800)


@pytest.fixture(scope="module")
def world(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiWorld]:
    with ui_world(hub, tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with strict_context(browser, DESK, timeout_ms=15_000) as opened:
        yield opened


def sign_in(page: Page, world: UiWorld, name: str) -> None:
    page.goto(f"{world.ui}/")
    expect(page).to_have_url(re.compile(r"/ui/signin$"))
    page.get_by_label("Nom").fill(name)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").first.click()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()


def screenshot(page: Page, hub: HubProcess, name: str, *, phone: bool = False) -> None:
    """Save the page as docs/screenshots/NAME.png (and NAME-360.png at phone width)."""
    if hub.database_url.startswith("postgresql"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")
    if phone:
        page.set_viewport_size(PHONE)
        page.screenshot(path=SCREENSHOTS / f"{name}-360.png", full_page=True,
                        animations="disabled")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], \
            "the page must not scroll sideways at 360 px (wide tables scroll in their box)"
        page.set_viewport_size(DESK)


def test_an_operator_sees_the_gateway_online_and_a_value_pushed_moments_ago(
    world: UiWorld, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(f"{world.ui}/signin")
    screenshot(page, world.hub, "signin", phone=True)
    sign_in(page, world, "alice")
    row = page.locator("tr[data-gateway=ponton-a]")
    expect(row).to_contain_text("en ligne", timeout=30_000)  # live: no reload needed
    expect(page.locator("tr[data-gateway=toulon-gw]")).to_have_count(0)
    # The stream swaps the row alone as the agent pushes; the page words its age.
    seen = row.locator(".age")
    first = seen.get_attribute("data-ts")
    expect(seen).not_to_have_attribute("data-ts", first or "", timeout=30_000)
    expect(seen).to_have_text(re.compile(r"^\d+\ssecondes?$"))
    screenshot(page, world.hub, "overview", phone=True)

    row.get_by_role("link", name="ponton-a").click()
    voltage = page.locator(f"[data-device={METER}] tr[data-quantity=voltage]")
    expect(voltage.locator(".value")).to_have_text(re.compile(r"^2[0-9]{2}(,\d+)?$"),
                                                   timeout=30_000)
    # "moments ago": the age reads in seconds (or "0 seconde"), never minutes.
    expect(voltage.locator(".age")).to_have_text(re.compile(r"^\d+\ssecondes?$"))
    # The agent's device.health reports: counters and the last good poll, moments ago.
    health = page.locator(f"[data-device={METER}] dl.health")
    expect(health).to_contain_text("Interrogations", timeout=30_000)
    expect(health.locator(".last-poll")).to_have_text(re.compile(r"^\d+\ssecondes?$"))
    expect(health.locator("dd").nth(1)).to_have_text(re.compile(r"^[1-9]"))  # polls so far
    screenshot(page, world.hub, "gateway", phone=True)

    page.get_by_role("link", name=METER).click()
    chart = page.locator("section.chart[data-quantity=voltage] svg")
    expect(chart).to_be_visible()
    assert chart.locator("polyline, circle").count() >= 1
    page.get_by_role("link", name="semaine").click()
    expect(page.get_by_role("link", name="semaine")).to_have_attribute("aria-current", "page")
    with page.expect_download() as download:
        page.locator("section.chart[data-quantity=voltage]").get_by_role(
            "link", name="Télécharger le CSV").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "bucket_start_utc,avg,min,max,count"
    assert len(lines) >= 2
    start, avg, low, high, count = lines[-1].split(",")
    assert start.endswith("Z")
    assert float(low) <= float(avg) <= float(high)
    assert int(count) >= 1


def test_a_device_s_week_is_drawn_from_buckets(world: UiWorld, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, world, "alice")
    page.goto(f"{world.ui}/gateways/{HISTORY_GATEWAY}/devices/{HISTORY_DEVICE}?range=week")
    line = page.locator("section.chart[data-quantity=active_power] svg polyline")
    expect(line).to_have_count(1)  # a week without a gap: one unbroken line
    points = line.get_attribute("points") or ""
    # Seven days of 5-minute readings (2,016) drawn as 336 half-hour buckets at most.
    assert 300 <= len(points.split()) <= 337
    screenshot(page, world.hub, "device", phone=True)
    page.get_by_role("link", name="année").click()
    year = line.get_attribute("points") or ""
    assert len(year.split()) <= 10  # eight or nine days


def test_an_alarm_appears_without_reload_and_is_acknowledged(
    world: UiWorld, context: BrowserContext
) -> None:
    page = context.new_page()
    sign_in(page, world, "sam")  # staff: the marina desk starts at the alarms
    expect(page).to_have_url(re.compile(r"/ui/alarms$"))
    page.evaluate("window.sameDocument = true")
    before = page.locator("tr[data-alarm]").count()
    world.meter.set_voltage(262.0)
    try:
        row = page.locator("tr[data-alarm].new").first
        expect(row).to_contain_text("overvoltage", timeout=30_000)
        expect(page.locator("#live-cue")).to_be_visible()
        expect(page.locator("#live-cue")).to_contain_text("Nouvelle alarme")
        assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
        assert int(page.evaluate("document.body.dataset.cuePlayed || 0")) >= 1
        assert page.locator("tr[data-alarm]").count() == before + 1
        screenshot(page, world.hub, "alarms", phone=True)
        alarm_id = row.get_attribute("data-alarm")
        row.get_by_label("Commentaire").fill("disjoncteur vérifié")
        row.get_by_role("button", name="Acquitter").click()
        acked = page.locator(f"tr[data-alarm='{alarm_id}']")
        expect(acked).to_contain_text("sam")
        expect(acked).to_contain_text("disjoncteur vérifié")
        expect(acked.get_by_role("button", name="Acquitter")).to_have_count(0)
        assert page.evaluate("window.sameDocument") is True, "swapped in place by htmx"
    finally:
        world.meter.set_voltage(230.0)


def test_a_form_without_its_csrf_token_is_refused(
    world: UiWorld, context: BrowserContext
) -> None:
    page = context.new_page()
    sign_in(page, world, "alice")
    forged = page.request.post(f"{world.ui}/signout", form={"csrf": "forged"},
                               max_redirects=0)
    assert forged.status == 403
    assert "csrf" in forged.text()
    missing = page.request.post(f"{world.ui}/signout", form={}, max_redirects=0)
    assert missing.status == 403
    page.goto(f"{world.ui}/")
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()  # still in


def test_signing_out_ends_the_session_for_good(world: UiWorld, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, world, "alice")
    other_tab = context.new_page()
    other_tab.goto(f"{world.ui}/alarms")
    expect(other_tab.locator("h1")).to_have_text("Alarmes")
    cookie = next(c for c in context.cookies() if c["name"] == "ponton_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # plain HTTP here; under TLS the cookie is Secure
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url(re.compile(r"/ui/signin$"))
    # The other tab's live stream notices and sends it to the sign-in page too.
    expect(other_tab).to_have_url(re.compile(r"/ui/signin$"), timeout=15_000)
    page.goto(f"{world.ui}/")
    expect(page).to_have_url(re.compile(r"/ui/signin$"))
    context.add_cookies([{"name": cookie["name"], "value": cookie["value"],  # replayed
                          "url": world.ui + "/"}])
    again = page.request.get(f"{world.ui}/", max_redirects=0)
    assert again.status == 303
    assert again.headers["location"].endswith("/ui/signin")



def test_an_operator_of_one_territory_cannot_reach_another_s_pages_by_url(
    world: UiWorld, context: BrowserContext
) -> None:
    page = context.new_page()
    sign_in(page, world, "alice")
    missing = page.goto(f"{world.ui}/gateways/no-such-gw")
    assert missing is not None
    assert missing.status == 404
    nowhere = page.locator(".detail").inner_text()
    for path in ("/gateways/toulon-gw", "/gateways/toulon-gw/devices/barrier-1",
                 "/gateways/toulon-gw/live"):
        answer = page.goto(f"{world.ui}{path}")
        assert answer is not None
        assert answer.status == 404, path
        assert page.locator(".detail").inner_text() == nowhere, path
        screenshot(page, world.hub, "not-found")
    csv = page.request.get(f"{world.ui}/gateways/toulon-gw/devices/barrier-1/series.csv"
                           "?quantity=parking_occupancy")
    assert csv.status == 404
    assert f'data-code="not_found">{nowhere}</p>' in csv.text()

    other = context.browser.new_context(viewport=DESK, locale="fr-FR")  # type: ignore[union-attr]
    try:
        bob = other.new_page()
        sign_in(bob, world, "bob")
        expect(bob.locator("tr[data-gateway=toulon-gw]")).to_be_visible()
        expect(bob.locator("tr[data-gateway=ponton-a]")).to_have_count(0)
        answer = bob.goto(f"{world.ui}/gateways/ponton-a")
        assert answer is not None
        assert answer.status == 404
    finally:
        other.close()


def test_staff_see_alarms_but_not_the_gateways(world: UiWorld, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, world, "sam")
    expect(page.locator("header nav a")).to_have_text(["Alarmes", "Port", "Accès", "Badges"])
    answer = page.goto(f"{world.ui}/gateways/ponton-a")
    assert answer is not None
    assert answer.status == 403


def test_an_admin_chooses_a_territory_in_a_form_never_in_the_url(
    world: UiWorld, context: BrowserContext
) -> None:
    page = context.new_page()
    sign_in(page, world, "root")
    expect(page.locator("tr[data-gateway=ponton-a]")).to_be_visible()
    expect(page.locator("tr[data-gateway=toulon-gw]")).to_be_visible()
    answer = page.goto(f"{world.ui}/gateways/ponton-a")
    assert answer is not None
    assert answer.status == 400  # which territory's ponton-a? choose one first
    page.goto(f"{world.ui}/")
    page.get_by_label("Territoire affiché").select_option("dunkerque")
    page.get_by_role("button", name="Afficher").click()
    expect(page.locator("tr[data-gateway=toulon-gw]")).to_have_count(0)
    screenshot(page, world.hub, "overview-admin")
    page.get_by_role("link", name="ponton-a").click()
    expect(page.locator("h1")).to_contain_text("ponton-a")


def test_english_is_one_click_away(world: UiWorld, context: BrowserContext) -> None:
    page = context.new_page()
    sign_in(page, world, "alice")
    page.get_by_role("link", name="EN", exact=True).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("h1")).to_have_text("Overview")
    page.get_by_role("link", name="FR", exact=True).click()
    expect(page.locator("h1")).to_have_text("Vue d'ensemble")


def test_an_operator_publishes_a_dataset_on_the_open_data_page(
    world: UiWorld, context: BrowserContext
) -> None:
    page = context.new_page()
    sign_in(page, world, "alice")
    page.get_by_role("link", name="Données ouvertes").click()
    row = page.locator("tr[data-dataset=car-parks]")
    expect(row.locator(".pill")).to_have_text("non publié")
    row.get_by_role("button", name="Publier").click()
    expect(row.locator(".pill")).to_have_text("publié")
    link = row.get_by_role("link")
    expect(link).to_have_attribute("href", f"{world.hub.url}/v1/open/dunkerque/car-parks.csv")
    expect(page.locator(".catalog a")).to_have_attribute(
        "href", f"{world.hub.url}/v1/open/dunkerque/catalog.jsonld")
    screenshot(page, world.hub, "open-data", phone=True)
    row.get_by_role("button", name="Dépublier").click()
    expect(row.locator(".pill")).to_have_text("non publié")
