"""Helpers shared by the browser tests of the mirror page (tests/kiosk_ui, tests/mirror): the viewport,
screenshots into test-artifacts/ (not committed), and opening /mirror on a running KioskServer."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from kiosk_ui.server import KioskServer

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PORTRAIT = {"width": 720, "height": 1280}  # the mirror's 1080x1920 panel, scaled down
# Entrance animations settle before a screenshot; the attract screen's breathing loops never do.
FINITE_ANIMATIONS_DONE = """() => Promise.all(document.getAnimations()
    .filter(a => a.effect.getComputedTiming().iterations !== Infinity)
    .map(a => a.finished.catch(() => null)))"""


def save_screenshot(page: Page, name: str) -> None:
    """Write the page as test-artifacts/<name> once its finite animations have finished."""
    # Not page.screenshot(path=...): Playwright writes that file through its event loop's thread pool,
    # whose threads outlive the test and trip the leak check in tests/conftest.py.
    page.evaluate(FINITE_ANIMATIONS_DONE)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_bytes(page.screenshot())


def open_mirror(page: Page, kiosk: KioskServer, timeout_ms: int) -> list[str]:
    """Open /mirror in portrait and wait for its event stream; return the list that collects every URL
    the page requests."""
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_viewport_size(PORTRAIT)
    page.goto(f"{kiosk.url}/mirror")
    expect(page.locator("body")).to_have_attribute("data-connected", "true", timeout=timeout_ms)
    return requests
