"""The engine against real sim GPUs (processes) and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from smartqueue.config import FleetConfig, Settings, parse_fleet
from smartqueue.store import Store
from tests.support.app_client import app_client
from tests.support.redis_server import RedisServer
from tests.support.sim import InProcessSim, SimHandle, in_process_sim
from tests.support.waiting import wait_until

CHAT = {"model": "any", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
TERMINAL = {"completed", "dead", "cancelled"}


def fleet_for(
    sims: Mapping[str, SimHandle | InProcessSim],
    routes: dict[str, list[str]],
    slots: dict[str, int],
    key_envs: Mapping[str, str] | None = None,
) -> FleetConfig:
    """A fleet file for running sims (`key_envs`: GPU name -> env var holding its API key)."""
    gpus = [
        {"name": name, "url": sim.url, "sidecar_url": sim.sidecar_url, "engine": "vllm",
         "model": f"model-{name}", "slots": slots[name], "vram_total_mb": 24576,
         **({"api_key_env": key_envs[name]} if key_envs and name in key_envs else {})}
        for name, sim in sims.items()
    ]  # fmt: skip
    return parse_fleet({"gpus": gpus, "routes": routes})


@pytest.fixture
def engine_settings(redis_server: RedisServer, key_prefix: str) -> Callable[..., Settings]:
    """Settings tuned for tests: fast probes, short leases, quick retries."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_server.url, "key_prefix": key_prefix, "admin_token": "t",
            "owner_secret": "test-owner-secret",
            "probe_interval_s": 0.2, "probe_timeout_s": 0.5, "lease_s": 3.0,
            "claim_idle_s": 3.0, "retry_base_s": 0.05, "retry_cap_s": 0.5,
            "breaker_recovery_s": 1.0, "job_timeout_s": 10.0, "maintenance_interval_s": 0.05,
            "idle_poll_s": 0.2, "shutdown_grace_s": 5.0,
        }  # fmt: skip
        values.update(overrides)
        return Settings(**values)

    return make


_IN_PROCESS: dict[str, InProcessSim] = {}  # by URL: the sims a fleet file may name


def gpu_client(fleet: FleetConfig) -> httpx.AsyncClient:
    """An httpx client that reaches the fleet's in-process sims (and nothing else)."""
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    for gpu in fleet.gpus:
        if (sim := _IN_PROCESS.get(gpu.url)) is not None:
            mounts.update(sim.transports())
    timeout = httpx.Timeout(60.0, connect=3.0)
    return httpx.AsyncClient(mounts=mounts, timeout=timeout, follow_redirects=False)


def direct_client() -> httpx.AsyncClient:
    """A client that reaches every in-process sim, as Nginx's direct path would."""
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    for sim in _IN_PROCESS.values():
        mounts.update(sim.transports())
    return httpx.AsyncClient(mounts=mounts, timeout=60.0)


def service(
    settings: Settings, fleet: FleetConfig
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The app with its engine running, in-process, its GPUs the in-process sims."""
    return app_client(settings, fleet, gpus=gpu_client(fleet))


@pytest.fixture
def sims() -> Iterator[Callable[..., dict[str, InProcessSim]]]:
    """Simulated GPUs in-process (no process, no socket): sims(a={"slots": 2}, b={...}).

    A test that needs real sockets or processes (kills, replicas) lives in tests/chaos.
    """
    started: list[InProcessSim] = []

    def start(**specs: dict[str, Any]) -> dict[str, InProcessSim]:
        defaults = {"speed": 50.0, "engine": "vllm"}
        made = {name: in_process_sim(name, **{**defaults, "model": f"model-{name}", **spec})
                for name, spec in specs.items()}  # fmt: skip
        for sim in made.values():
            _IN_PROCESS[sim.url] = sim
            started.append(sim)
        return made

    yield start
    for sim in started:
        _IN_PROCESS.pop(sim.url, None)


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
                response = await client.get(f"/status/{job_id}")
                if response.status_code == 503:  # the store is down for a moment: ask again
                    continue
                record = response.json()
                if record["status"] in TERMINAL:
                    records[job_id] = record
        if len(records) == len(job_ids):
            return records
        await asyncio.sleep(0.05)
    pending = {
        j: (await client.get(f"/status/{j}")).json()["status"] for j in job_ids if j not in records
    }
    raise AssertionError(f"jobs not finished after {timeout_s} s: {pending}")


def slow_chat(max_tokens: int = 8, **fields: Any) -> dict[str, Any]:
    """A chat body; with a slow sim its generation time grows with `max_tokens`."""
    return {**CHAT, "max_tokens": max_tokens, **fields}


async def job_record(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """A job's record from GET /status/{id}."""
    response = await client.get(f"/status/{job_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def wait_status(
    client: httpx.AsyncClient, job_id: str, statuses: set[str], *, timeout_s: float = 20
) -> dict[str, Any]:
    """Poll until the job's status is one of `statuses`; its record."""

    async def reached() -> dict[str, Any] | None:
        record = await job_record(client, job_id)
        return record if record["status"] in statuses else None

    return await wait_until(reached, timeout_s=timeout_s, what=f"job {job_id} in {statuses}")


async def gpu_views(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """GET /gpus by GPU name."""
    response = await client.get("/gpus")
    assert response.status_code == 200, response.text
    return {gpu["name"]: gpu for gpu in response.json()["gpus"]}


async def wait_gpus_down(client: httpx.AsyncClient, names: list[str]) -> None:
    """Wait until the service's prober has seen every GPU in `names` down."""

    async def all_down() -> bool:
        views = await gpu_views(client)
        return all((views[name]["health"] or {}).get("down") for name in names)

    await wait_until(all_down, timeout_s=10, what=f"the prober to see {names} down")


async def dlq_entries(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every entry of the dead-letter queue (as the admin: job ids are for admins only)."""
    response = await client.get("/dlq", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


@asynccontextmanager
async def running_store(settings: Settings, fleet: FleetConfig) -> AsyncIterator[Store]:
    """A store on the same Redis and prefix as the service (to act as another consumer would)."""
    store = Store.connect(settings, routes=fleet.route_names)
    try:
        yield store
    finally:
        await store.aclose()
