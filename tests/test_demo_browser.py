"""`make demo` seen as a visitor sees it: the demo runs as a user runs it, its one-time link
signs Chromium in, and the marina is on screen: the pedestals in use with their kWh and m³,
a closed session, the gate's decisions, and each device's health on the Gateway page.

The pictures go to docs/screenshots/demo-*.png (the README shows them).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, ViewportSize, expect

from tests.helpers.browser import SCREENSHOTS, chromium, strict_context

DESK = ViewportSize(width=1280, height=800)
#: Long enough for every check below; the demo is stopped (Ctrl-C) as soon as they pass.
DURATION_S = 180
_LINK = re.compile(r"^dashboard: (\S+) - sign in once with (\S+)$")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """The demo running (plain output), with its dashboard address and sign-in link."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.demo", "--duration", str(DURATION_S), "--plain",
         "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "80"})
    assert process.stdout is not None
    try:
        found = None
        for line in process.stdout:
            found = _LINK.match(line.strip())
            if found is not None:
                break
        assert found is not None, "the demo printed no dashboard address and sign-in link"
        yield process, found.group(1), found.group(2)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")


def reload_until(page: Page, rows: Locator) -> None:
    """Reload a page that is not live until ``rows`` are on it: the demo taps on its own clock."""
    for _ in range(30):
        page.reload()
        if rows.count():
            break
        page.wait_for_timeout(2000)
    expect(rows.first).to_be_visible()


def test_the_demo_puts_the_marina_on_screen(
        demo: tuple[subprocess.Popen[str], str, str]) -> None:
    process, dashboard, link = demo
    with chromium() as browser, strict_context(browser, DESK, timeout_ms=60_000) as context:
        page = context.new_page()
        page.goto(link)
        expect(page).to_have_url(re.compile(r"/ui/$"))
        expect(page.locator("tr[data-gateway=demo-marina]")).to_contain_text("en ligne")

        page.goto(f"{dashboard}marina")
        number = r"\d+(,\d+)?"
        for berth in ("berth-a1", "berth-a2"):
            card = page.locator(f"[data-pedestal={berth}].card")
            expect(card.locator(".pill.warn")).to_have_text("occupée")
            expect(card.locator(".kwh")).to_have_text(re.compile(rf"^{number} kWh$"))
            expect(card.locator(".m3")).to_have_text(re.compile(rf"^{number} m³$"))
        # The sailor's first session at A2 closed at the second tap: it is in the history.
        reload_until(page, page.locator("table.sessions tr[data-pedestal=berth-a2]"))
        shoot(page, "demo-marina")

        page.goto(f"{dashboard}access")
        for reason in ("granted", "revoked"):
            reload_until(page, page.locator(f"tr[data-gate=gate-a][data-reason={reason}]"))

        page.goto(f"{dashboard}gateways/demo-marina")
        reload_until(page, page.locator("[data-device=berth-a5] dl.health dd.fault"))
        expect(page.locator("[data-device=berth-a1] dl.health")).to_contain_text("Interrogations")
        shoot(page, "demo-gateway")
    process.send_signal(signal.SIGINT)  # Ctrl-C: the demo stops its children, exit 0
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "stopped. outbox:" in output
