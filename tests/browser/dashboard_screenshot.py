"""Render docs/dashboard.png: the dashboard of a small stack under load.

    .venv/bin/python -m tests.browser.dashboard_screenshot docs/dashboard.png

Three sim GPUs (one failing, so its breaker opens), a real redis-server and one replica;
a steady stream of jobs at every priority keeps the queue busy while chromium takes the shot.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from smartqueue.config import Settings
from tests.browser.conftest import ADMIN_TOKEN, CHROMIUM_ARGS, stack_settings
from tests.engine.conftest import fleet_for
from tests.support.redis_server import RedisServer
from tests.support.service import running_service
from tests.support.sim import running_sim

LOAD_S = 40.0
PRIORITIES = ("high", "normal", "normal", "low")


def submit_load(base_url: str, stop: threading.Event) -> None:
    """A few jobs a second at mixed priorities and lengths until `stop` is set."""
    with httpx.Client(base_url=base_url, timeout=5) as client:
        for n in itertools.count():
            if stop.is_set():
                return
            body = {"model": "any", "messages": [{"role": "user", "content": f"job {n}"}],
                    "max_tokens": 40 + 20 * (n % 5)}  # fmt: skip
            client.post("/enqueue", json=body,
                        headers={"X-Syslog-Priority": PRIORITIES[n % len(PRIORITIES)]})  # fmt: skip
            time.sleep(0.12)


def main(output: Path) -> None:
    """Start the stack, load it for a while, then save a full-page screenshot."""
    with tempfile.TemporaryDirectory(prefix="sq-shot-") as workdir, ExitStack() as stack:
        redis = RedisServer(Path(workdir))
        redis.start()
        stack.callback(redis.stop)
        sims = {name: stack.enter_context(running_sim(model=f"model-{name}", speed=1.0,
                                                      slots=slots, engine=engine))
                for name, slots, engine in (("gpu-a", 4, "vllm"), ("gpu-b", 2, "llamacpp"),
                                            ("gpu-c", 2, "vllm"))}  # fmt: skip
        sims["gpu-c"].set_faults("error")
        fleet = fleet_for(sims, {"default": list(sims)}, {"gpu-a": 4, "gpu-b": 2, "gpu-c": 2})
        settings = Settings(
            **stack_settings(redis, "shot") | {"max_retries": 1, "breaker_recovery_s": 30.0}
        )
        service = stack.enter_context(running_service(settings, fleet, workdir=Path(workdir)))
        stop = threading.Event()
        loader = threading.Thread(target=submit_load, args=(service.url, stop))
        loader.start()
        try:
            shoot(service.url, output)
        finally:
            stop.set()
            loader.join()


def shoot(base_url: str, output: Path) -> None:
    """Open the dashboard, let it gather LOAD_S seconds of history, save the page."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base_url}/dashboard")
        page.wait_for_timeout(LOAD_S * 1000)
        page.screenshot(path=str(output), full_page=True)
        browser.close()
    print(f"saved {output} (admin token of the run: {ADMIN_TOKEN})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png"))
