"""The engine against real sim GPUs (processes) and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from smartqueue.api.app import create_app
from smartqueue.config import FleetConfig, Settings, parse_fleet
from tests.support.redis_server import RedisServer
from tests.support.sim import SimHandle, running_sim

CHAT = {"model": "any", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
TERMINAL = {"completed", "dead", "cancelled"}


def fleet_for(
    sims: dict[str, SimHandle], routes: dict[str, list[str]], slots: dict[str, int]
) -> FleetConfig:
    """A fleet file for running sims."""
    gpus = [
        {"name": name, "url": sim.url, "sidecar_url": sim.sidecar_url, "engine": "llamacpp",
         "model": f"model-{name}", "slots": slots[name], "vram_total_mb": 24576}
        for name, sim in sims.items()
    ]  # fmt: skip
    return parse_fleet({"gpus": gpus, "routes": routes})


@pytest.fixture
def engine_settings(redis_server: RedisServer, key_prefix: str) -> Callable[..., Settings]:
    """Settings tuned for tests: fast probes, short leases, quick retries."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_server.url, "key_prefix": key_prefix, "admin_token": "t",
            "probe_interval_s": 0.2, "probe_timeout_s": 0.5, "lease_s": 3.0,
            "claim_idle_s": 3.0, "retry_base_s": 0.05, "retry_cap_s": 0.5,
            "breaker_recovery_s": 1.0, "job_timeout_s": 10.0, "maintenance_interval_s": 0.05,
            "idle_poll_s": 0.2, "shutdown_grace_s": 5.0,
        }  # fmt: skip
        values.update(overrides)
        return Settings(**values)

    return make


@asynccontextmanager
async def service(settings: Settings, fleet: FleetConfig) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its engine running, reached in-process."""
    app = create_app(settings, fleet)
    async with LifespanManager(app, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sq") as client:
            yield client


@pytest.fixture
def sims() -> Iterator[Callable[..., dict[str, SimHandle]]]:
    """Start named sims: sims(a={"slots": 2}, b={...}) -> handles by name."""
    with ExitStack() as stack:

        def start(**specs: dict[str, Any]) -> dict[str, SimHandle]:
            defaults = {"speed": 50.0, "engine": "vllm"}
            return {
                name: stack.enter_context(
                    running_sim(**{**defaults, "model": f"model-{name}", **spec})
                )
                for name, spec in specs.items()
            }

        yield start


async def submit(client: httpx.AsyncClient, body: object = CHAT, **headers: str) -> str:
    """Enqueue a job; its id."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    response = await client.post("/enqueue", json=body, headers=sent)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def wait_terminal(
    client: httpx.AsyncClient, job_ids: list[str], *, timeout_s: float = 30
) -> dict[str, dict[str, Any]]:
    """Poll until every job ended; their records."""
    records: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job_id in job_ids:
            if job_id not in records:
                record = (await client.get(f"/status/{job_id}")).json()
                if record["status"] in TERMINAL:
                    records[job_id] = record
        if len(records) == len(job_ids):
            return records
        await asyncio.sleep(0.05)
    pending = {
        j: (await client.get(f"/status/{j}")).json()["status"] for j in job_ids if j not in records
    }
    raise AssertionError(f"jobs not finished after {timeout_s} s: {pending}")
