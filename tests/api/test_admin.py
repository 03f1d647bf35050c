"""Dead-letter endpoints: listing for anyone, retry and discard for the admin only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from smartqueue.config import FleetConfig
from smartqueue.models import ErrorInfo
from smartqueue.queue import Lease
from smartqueue.store import Store
from tests.api.conftest import ADMIN_TOKEN, CHAT, SettingsFactory
from tests.support.app_client import app_client

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LEASE = Lease(lease_ms=30_000, aging_ms=30_000)


async def dead_job(client: httpx.AsyncClient, store: Store) -> tuple[str, str]:
    """Submit a job and dead-letter it as the engine would; (job id, DLQ entry id)."""
    job_id = (await client.post("/enqueue", json=CHAT)).json()["job_id"]
    job = await store.claims.take("amdpve", slots=4, routes=["default"], consumer="c1", lease=LEASE)
    assert job is not None
    dlq_id = await store.claims.dead_letter(
        job, consumer="c1", reason="non_retryable", now=time.time(),
        error=ErrorInfo(message="bad request", type="gpu_error", gpu_status=400),
    )  # fmt: skip
    assert dlq_id
    return job_id, dlq_id


async def test_dlq_lists_reason_attempts_and_last_error(
    client: httpx.AsyncClient, store: Store
) -> None:
    job_id, dlq_id = await dead_job(client, store)

    listing = (await client.get("/dlq", headers=ADMIN)).json()

    assert listing["total"] == 1
    [entry] = listing["entries"]
    assert (entry["id"], entry["job_id"], entry["reason"]) == (dlq_id, job_id, "non_retryable")
    assert entry["last_error"]["gpu_status"] == 400
    status = (await client.get(f"/status/{job_id}")).json()
    assert (status["status"], status["error"]["message"]) == ("dead", "bad request")


async def test_dlq_retry_twice_at_once_queues_one_new_job(
    client: httpx.AsyncClient, store: Store
) -> None:
    job_id, dlq_id = await dead_job(client, store)

    answers = await asyncio.gather(
        client.post(f"/dlq/{dlq_id}/retry", headers=ADMIN),
        client.post(f"/dlq/{dlq_id}/retry", headers=ADMIN),
    )

    assert sorted(answer.status_code for answer in answers) == [202, 404]
    retried = next(answer for answer in answers if answer.status_code == 202).json()
    assert retried["retry_of"] == job_id
    new = (await client.get(f"/status/{retried['job_id']}")).json()
    assert (new["status"], new["retry_of"]) == ("queued", job_id)
    assert (await client.get("/dlq")).json()["total"] == 0


async def test_dlq_discard_removes_the_entry_once(client: httpx.AsyncClient, store: Store) -> None:
    _, dlq_id = await dead_job(client, store)

    first = await client.delete(f"/dlq/{dlq_id}", headers=ADMIN)
    second = await client.delete(f"/dlq/{dlq_id}", headers=ADMIN)

    assert (first.status_code, second.status_code) == (204, 404)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}],
)
async def test_dlq_retry_without_the_admin_token_is_401(
    client: httpx.AsyncClient, store: Store, headers: dict[str, str]
) -> None:
    _, dlq_id = await dead_job(client, store)

    response = await client.post(f"/dlq/{dlq_id}/retry", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert (await client.get("/dlq")).json()["total"] == 1


@pytest.fixture
async def tokenless_client(
    make_settings: SettingsFactory, local_fleet: FleetConfig
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with no admin token configured."""
    async with app_client(make_settings(admin_token=None), local_fleet) as http:
        yield http


async def test_admin_operations_without_configured_token_are_refused(
    tokenless_client: httpx.AsyncClient,
) -> None:
    response = await tokenless_client.delete("/dlq/1-1", headers=ADMIN)

    assert response.status_code == 403
    assert "SMARTQUEUE_ADMIN_TOKEN" in response.json()["error"]["message"]


async def test_unknown_path_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")

    assert response.status_code == 404
    assert set(response.json()["error"]) >= {"message", "type", "code"}


async def test_consumers_and_gpus_list_the_configured_fleet(client: httpx.AsyncClient) -> None:
    gpus = (await client.get("/gpus")).json()["gpus"]
    consumers = (await client.get("/consumers")).json()

    assert [gpu["name"] for gpu in gpus] == ["amdpve", "llmgpu", "ocu_llm"]
    assert "light" in gpus[2]["routes"]
    assert consumers == {"consumers": []}


async def test_status_overview_shows_depth_thresholds_and_gpus(client: httpx.AsyncClient) -> None:
    await client.post("/enqueue", content=json.dumps(CHAT), headers={"X-Syslog-Priority": "low"})

    overview = (await client.get("/status")).json()

    by_route = overview["depth"].pop("by_route")
    assert overview["depth"] == {"high": 0, "normal": 0, "low": 1, "total": 1}
    assert by_route["default"] == {"high": 0, "normal": 0, "low": 1, "batch": 0}
    assert sum(sum(depths.values()) for depths in by_route.values()) == 1
    assert overview["thresholds"]["ceilings"] == {"high": 50, "normal": 40, "low": 30}
    assert (overview["in_flight"], overview["dlq_depth"]) == (0, 0)
    assert len(overview["gpus"]) == 3


async def test_admin_operations_with_an_empty_configured_token_are_refused(
    make_settings: SettingsFactory, local_fleet: FleetConfig
) -> None:
    async with app_client(make_settings(admin_token=""), local_fleet) as http:
        response = await http.delete("/dlq/1-1", headers={"Authorization": "Bearer "})

    assert response.status_code == 403
