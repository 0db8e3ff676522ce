"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real hub
process, with a real agent pushing from a simulated meter (tests/helpers/ui_world.py).

Each page visited is saved into docs/screenshots/ (the README shows them), from the SQLite
run: the pictures then do not depend on which store ran last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.helpers.browser import SCREENSHOTS, chromium
from tests.helpers.hub import HubProcess
from tests.helpers.ui_world import PASSWORD, UiWorld, ui_world

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
    opened = browser.new_context(viewport=DESK, locale="fr-FR")
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        opened.close()


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
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    if phone:
        page.set_viewport_size(PHONE)
        page.screenshot(path=SCREENSHOTS / f"{name}-360.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], \
            "the page must not scroll sideways at 360 px (wide tables scroll in their box)"
        page.set_viewport_size(DESK)


def test_an_operator_signs_in_and_sees_the_gateway_online(
    world: UiWorld, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(f"{world.ui}/signin")
    screenshot(page, world.hub, "signin", phone=True)
    sign_in(page, world, "alice")
    row = page.locator("tr[data-gateway=ponton-a]")
    expect(row).to_contain_text("en ligne", timeout=30_000)  # live: no reload needed
    expect(page.locator("tr[data-gateway=toulon-gw]")).to_have_count(0)
    screenshot(page, world.hub, "overview", phone=True)


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
    cookie = next(c for c in context.cookies() if c["name"] == "ponton_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # plain HTTP here; under TLS the cookie is Secure
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url(re.compile(r"/ui/signin$"))
    page.goto(f"{world.ui}/")
    expect(page).to_have_url(re.compile(r"/ui/signin$"))
    context.add_cookies([{"name": cookie["name"], "value": cookie["value"],  # replayed
                          "url": world.ui + "/"}])
    again = page.request.get(f"{world.ui}/", max_redirects=0)
    assert again.status == 303
    assert again.headers["location"].endswith("/ui/signin")

