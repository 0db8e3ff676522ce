"""The marina, access, badges and car-park pages in a real browser (Debian's Chromium through
Playwright) against a real hub process, with a real agent reading simulated badge readers,
a relay board, a berth meter and a car park's lane counter (tests/helpers/marina_field.py).

The scenario the desk cares about: a badge revoked in the dashboard is denied at the gate
once the gateway has pulled the next policy. Each page is saved into docs/screenshots/ at
desk and phone widths (from the SQLite run, like tests/test_ui_browser.py).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from simulators.readers import CardReaderSimulator
from tests.helpers.browser import chromium, strict_context
from tests.helpers.hub import HubProcess
from tests.helpers.marina_field import GATEWAY, MarinaField, marina_field
from tests.helpers.marina_world import BOATER, PASSWORD, SAILOR
from tests.test_ui_browser import DESK, screenshot


@pytest.fixture(scope="module")
def world(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarinaField]:
    with marina_field(hub, tmp_path_factory.mktemp("marina")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with strict_context(browser, DESK, timeout_ms=20_000) as opened:
        yield opened


def sign_in(context: BrowserContext, world: MarinaField, name: str) -> Page:
    page = context.new_page()
    page.goto(f"{world.ui}/signin")
    page.get_by_label("Nom").fill(name)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").first.click()
    expect(page).not_to_have_url(re.compile(r"/signin$"))  # staff land on the alarms
    return page


def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def present_until(world: MarinaField, reader: CardReaderSimulator, gate: str, card: str,
                  reason: str) -> list[dict[str, Any]]:
    """Show ``card`` once at a time, each time until the hub has its decision, until one is
    ``reason`` (the gateway pulls the policy a moment after a change); those decisions."""
    deadline = time.monotonic() + 30
    while True:
        before = len(world.decisions(gate))
        time.sleep(0.4)  # past the reader's duplicate window
        world.present(reader, card)
        until(functools.partial(decided_since, world, gate, before), timeout=10)
        found = [d for d in world.decisions(gate) if d["reason"] == reason]
        if found:
            return found
        assert time.monotonic() < deadline, f"no {reason} decision at {gate}"


def decided_since(world: MarinaField, gate: str, seen: int) -> bool:
    """Whether the hub holds more than ``seen`` decisions of ``gate``."""
    return len(world.decisions(gate)) > seen


def add_badge(page: Page, world: MarinaField, number: str, label: str) -> str:
    """Add a badge through the form; its pseudonym."""
    page.goto(f"{world.ui}/badges")
    form = page.locator("form[method=post][action$='/badges']")
    form.get_by_label("Numéro de carte").fill(number)
    form.get_by_label("Catégorie").select_option("boater")
    form.get_by_label("Libellé (poste").fill(label)
    form.get_by_role("button", name="Ajouter").click()
    expect(page.get_by_role("status")).to_contain_text("Ajoutés : 1,")
    row = page.locator("table.badges tr", has_text=label)
    pseudonym = row.get_attribute("data-pseudonym")
    assert pseudonym is not None
    return pseudonym


def test_a_badge_revoked_in_the_dashboard_is_denied_at_the_gate_after_the_next_pull(
    world: MarinaField, context: BrowserContext
) -> None:
    desk = sign_in(context, world, "sid")  # the marina desk: staff
    pseudonym = add_badge(desk, world, BOATER, "A-12")
    granted = present_until(world, world.gate, "gate-a", BOATER, "granted")
    opened = len(world.field.board.pulses(1))
    assert opened >= len(granted)

    desk.goto(f"{world.ui}/badges")
    desk.locator(f"tr[data-pseudonym='{pseudonym}']").get_by_role("button",
                                                                   name="Révoquer").click()
    expect(desk.get_by_role("status")).to_contain_text("révoqués : 1")
    expect(desk.locator(f"tr[data-pseudonym='{pseudonym}'] .pill.alarm")).to_have_text("révoqué")
    screenshot(desk, world.hub, "badges", phone=True)

    denied = present_until(world, world.gate, "gate-a", BOATER, "revoked")
    assert denied[0]["kind"] == "access.denied"
    assert denied[0]["policy_version"] > granted[-1]["policy_version"]
    pulses = len(world.field.board.pulses(1))
    time.sleep(0.4)  # past the reader's duplicate window
    world.present(world.gate, BOATER)
    until(lambda: len([d for d in world.decisions("gate-a") if d["reason"] == "revoked"])
          > len(denied))
    assert len(world.field.board.pulses(1)) == pulses  # the gate stayed shut

    operator = sign_in(context, world, "olga")
    operator.goto(f"{world.ui}/access?reason=revoked")
    expect(operator.locator("table.decisions tr[data-reason=revoked]").first).to_contain_text(
        "A-12")
    expect(operator.locator(f"table.holders tr[data-gateway={GATEWAY}] .pill.ok")).to_have_text(
        str(denied[0]["policy_version"]))
    operator.goto(f"{world.ui}/access")
    screenshot(operator, world.hub, "access", phone=True)


def test_a_pedestal_session_shows_live_and_is_billed(world: MarinaField,
                                                    context: BrowserContext) -> None:
    desk = sign_in(context, world, "sid")
    add_badge(desk, world, SAILOR, "B-03")
    desk.goto(f"{world.ui}/marina")
    card = desk.locator("[data-pedestal=berth-a12].card")
    present_until(world, world.pedestal, "berth-a12", SAILOR, "granted")
    expect(card.locator(".pill.warn")).to_be_visible(timeout=20_000)  # live: no reload
    expect(card).to_contain_text("B-03")
    expect(card.locator(".kwh")).to_have_text(re.compile(r"^\d+(,\d+)? kWh$"))  # its meter
    time.sleep(0.5)  # past the reader's duplicate window
    world.present(world.pedestal, SAILOR)
    expect(card.locator(".pill.ok")).to_be_visible(timeout=20_000)  # free again, live
    desk.reload()
    expect(desk.locator("table.sessions tr[data-pedestal=berth-a12]")).to_contain_text("B-03")
    csv = desk.request.get(f"{world.ui}/marina/consumption.csv?by=pedestal")
    assert csv.ok
    lines = csv.text().splitlines()
    assert lines[0] == "gateway,pedestal,sessions,kwh,m3"
    assert re.fullmatch(rf"{GATEWAY},berth-a12,1,\d+(\.\d+)?,0\.0", lines[1]), lines
    screenshot(desk, world.hub, "marina", phone=True)


def test_a_car_park_fills_live(world: MarinaField, context: BrowserContext) -> None:
    page = sign_in(context, world, "olga")
    page.goto(f"{world.ui}/car-parks")
    card = page.locator("[data-car-park=P-capitainerie]")
    world.field.cars(entered=7, left=2)
    expect(card.locator(".free")).to_have_text("35 places libres sur 40", timeout=40_000)
    expect(card.locator("svg[aria-label=P-capitainerie]")).to_have_count(1)  # the day's curve
    screenshot(page, world.hub, "car-parks", phone=True)


@pytest.mark.parametrize(("name", "menu"), [
    ("sid", ["Alarmes", "Port", "Accès", "Badges"]),
    ("olga", ["Vue d'ensemble", "Alarmes", "Parkings", "Port", "Accès", "Badges",
              "Données ouvertes"]),
])
def test_each_role_has_its_menu(world: MarinaField, context: BrowserContext, name: str,
                                menu: list[str]) -> None:
    page = sign_in(context, world, name)
    page.goto(f"{world.ui}/marina")
    expect(page.locator("header nav a")).to_have_text(menu)
    page.goto(f"{world.ui}/car-parks")
    expected = "Parkings" if "Parkings" in menu else "Accès refusé"
    expect(page.locator("h1")).to_have_text(expected)
