"""Debian's Chromium driven by Playwright, for the dashboard's browser tests.

Playwright's own browser download is never used (it cannot be fetched here, and CI must
not depend on it): the Makefile installs the distribution's ``chromium`` when it is missing
(`make browser`), and the tests launch it by path. Without it they skip, saying why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ViewportSize, expect, sync_playwright

__all__ = ["SCREENSHOTS", "chromium", "chromium_path", "strict_context"]

# An assertion waits for its page as long as an action does: Playwright's default of 5 s is
# short for a loaded machine running the hub, the agent and Chromium on two cores. A page
# already right passes at once.
expect.set_options(timeout=15_000)

#: Where the test run leaves a picture of every page (the README shows them).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def chromium_path() -> str | None:
    """The distribution's Chromium (``PONTON_CHROMIUM`` overrides), or None."""
    for candidate in (os.environ.get("PONTON_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; the test skips when none is installed."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: `make browser` (apt-get install chromium) installs it")
    with sync_playwright() as playwright:
        # No sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=path, headless=True,
                                             args=["--no-sandbox", "--mute-audio",
                                                   "--autoplay-policy=no-user-gesture-required"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def strict_context(browser: Browser, viewport: ViewportSize, timeout_ms: int
                   ) -> Iterator[BrowserContext]:
    """A French browser context that fails its test on any Content Security Policy report:
    every asset is the hub's own, and nothing runs inline."""
    opened = browser.new_context(viewport=viewport, locale="fr-FR")
    opened.set_default_timeout(timeout_ms)
    problems: list[str] = []
    opened.on("console", lambda message: problems.append(message.text)
              if "Content Security Policy" in message.text else None)
    try:
        yield opened
    finally:
        opened.close()
    assert problems == [], "every asset is the hub's own, and nothing runs inline"
