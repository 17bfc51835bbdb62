"""A real fleet and a real browser for the dashboard's tests.

`dash_fleet` (one per run of this package, stopped at its end): gunicorn serving the API and the dashboard, and two worker processes (io;
io+cpu), on the test redis-server (own database), with API tokens configured — the
ops tests' LiveFleet, started the same way. `browser`: headless Chromium from the
system's package (/usr/bin/chromium, or PIXELFLEET_CHROMIUM) driven by Playwright for
Python; without either, these tests skip and say why (.ci/run installs chromium).

Screenshots go to the test's tmp folder, and also to docs/screenshots/ when
PIXELFLEET_SCREENSHOTS names that folder (`make screenshots`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.ops.conftest import LiveFleet, running_fleet

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dash-test-token"
FLEET_DB = 5
WORKERS = {"dash-io": "io", "dash-all": "io,cpu"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    explicit = os.environ.get("PIXELFLEET_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for this package (skips, saying why, when there is none).

    Package scope, not session: Playwright's sync API keeps an asyncio loop in the main
    thread while it runs, and later packages' in-process ASGI calls (async_to_sync)
    refuse to run beside one. Put Django test-client tests before the browser tests.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements.txt)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found: apt-get install chromium (.ci/run does), or set PIXELFLEET_CHROMIUM")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:   # noqa: BLE001 — a browser that cannot start is a skip, said plainly
            pytest.skip(f"Chromium at {executable} does not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def dash_fleet(redis_server, tmp_path_factory):
    """API (gunicorn) + two workers on the test redis-server; tokens required for actions."""
    with running_fleet(redis_server, FLEET_DB, tmp_path_factory.mktemp("dash-fleet-logs"), WORKERS,
                       token=TOKEN) as fleet:
        yield fleet


@pytest.fixture
def fleet_redis(dash_fleet):
    import redis as redis_lib

    return redis_lib.Redis.from_url(dash_fleet.redis_url)


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) at laptop width."""
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, fleet: LiveFleet, next_path: str = "/dashboard/") -> None:
    """Through the sign-in form, as a person does."""
    page.goto(f"{fleet.url}/dashboard/login/?next={next_path}")
    page.get_by_label("API token").fill(fleet.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{fleet.url}{next_path}")


UNLABELLED = """[...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.textContent.trim())
  .map(e => e.outerHTML.slice(0, 100))"""


def accessibility_basics(page) -> None:
    """Every control has a name, the first Tab reaches the skip link, one h1 (on a fresh page)."""
    assert page.evaluate(UNLABELLED) == [], "controls without a label"
    assert page.locator("h1").count() == 1
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.evaluate("document.activeElement.blur()")


@pytest.fixture
def shoot(tmp_path):
    """shoot(page, "overview"): a full-page PNG in tmp, and in PIXELFLEET_SCREENSHOTS if set."""
    target = os.environ.get("PIXELFLEET_SCREENSHOTS")

    def take(page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if target:
            folder = (ROOT / target) if not Path(target).is_absolute() else Path(target)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / f"{name}.png")
        return path
    return take
