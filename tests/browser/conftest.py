"""Browser tests: Debian's headless chromium driven by Playwright, against a real replica.

Each test gets a real `smartqueue serve` process on a real redis-server with sim GPUs behind
it. The page may only reach loopback: any other request is aborted and fails the test, so
the pages are proven to work with no internet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from smartqueue.config import Settings
from tests.engine.conftest import fleet_for
from tests.support.binaries import require_binary
from tests.support.redis_server import RedisServer
from tests.support.service import ServiceHandle, running_service
from tests.support.sim import SimHandle, running_sim

ADMIN_TOKEN = "browser-admin-token"
# No background traffic: this machine's network is closed, and a page must need none.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
UI_TIMEOUT_MS = 20_000  # two cores shared with other suites: the page may lag a few polls
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver, once per module: its sync API keeps an event loop running in this
    thread while it lives, so it must stop before the asyncio tests of other packages run."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's chromium (Playwright downloads no browser here)."""
    executable = require_binary("chromium")
    browser = playwright_driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class PageRecord:
    """What a page said on its console and which outside requests it tried."""

    errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, PageRecord]]:
    """A fresh page that records console errors and blocks every non-loopback request."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    record = PageRecord()
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            record.errors.append(message.text)

    def guard(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            record.outside_requests.append(route.request.url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: record.errors.append(str(error)))
    page.route("**/*", guard)
    yield page, record
    context.close()


@dataclass(frozen=True)
class Stack:
    """A running replica and the sims behind it."""

    service: ServiceHandle
    sims: dict[str, SimHandle]


StartStack = Callable[..., Stack]


@pytest.fixture
def start_stack(redis_server: RedisServer, key_prefix: str, tmp_path: Path) -> Iterator[StartStack]:
    """Start sims (name -> sim options) and one replica over them; all stop with the test."""
    with ExitStack() as stack:

        def start(sims: dict[str, dict[str, Any]], **overrides: Any) -> Stack:
            handles = {
                name: stack.enter_context(running_sim(model=f"model-{name}", **options))
                for name, options in sims.items()
            }
            fleet = fleet_for(handles, {"default": list(handles)}, {n: 2 for n in handles})
            settings = Settings(**(stack_settings(redis_server, key_prefix) | overrides))
            service = stack.enter_context(
                running_service(settings, fleet, workdir=tmp_path / "replica")
            )
            return Stack(service, handles)

        yield start


def stack_settings(redis_server: RedisServer, key_prefix: str) -> dict[str, Any]:
    """Quick probes and retries, so the page changes within a second or two."""
    return {
        "redis_url": redis_server.url, "key_prefix": key_prefix, "admin_token": ADMIN_TOKEN,
        "probe_interval_s": 0.2, "probe_timeout_s": 0.5, "retry_base_s": 0.05,
        "retry_cap_s": 0.5, "breaker_recovery_s": 1.0, "job_timeout_s": 20.0,
        "maintenance_interval_s": 0.05, "idle_poll_s": 0.2, "shutdown_grace_s": 2.0,
        "heartbeat_interval_s": 0.5,
    }  # fmt: skip


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Return once `condition()` holds; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
