"""The DLQ in bulk: retry or discard by reason and/or route; entries past retention trimmed."""

from __future__ import annotations

import asyncio
import time

import httpx

from smartqueue.config import FleetConfig
from smartqueue.models import ErrorInfo
from smartqueue.queue import Lease
from smartqueue.store import Store
from tests.api.conftest import ADMIN_TOKEN, CHAT, SettingsFactory
from tests.support.app_client import app_client
from tests.support.prometheus import samples
from tests.support.waiting import wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LEASE = Lease(lease_ms=30_000, aging_ms=30_000)


async def dead_job(client: httpx.AsyncClient, store: Store, *, route: str, reason: str) -> str:
    """Submit a job on `route` and dead-letter it for `reason` as the engine would; its id."""
    headers = {"X-Syslog-Model": route}
    job_id: str = (await client.post("/enqueue", json=CHAT, headers=headers)).json()["job_id"]
    job = await store.claims.take("amdpve", slots=4, routes=[route], consumer="c1", lease=LEASE)
    assert job is not None
    error = ErrorInfo(message="failed", type="gpu_error")
    assert await store.claims.dead_letter(job, consumer="c1", reason=reason, now=time.time(),
                                          error=error)  # fmt: skip
    return job_id


async def fill_dlq(client: httpx.AsyncClient, store: Store) -> dict[tuple[str, str], str]:
    """One dead job per (route, reason) of default/heavy x non_retryable/expired."""
    pairs = [(route, reason) for route in ("default", "heavy")
             for reason in ("non_retryable", "expired")]  # fmt: skip
    return {(route, reason): await dead_job(client, store, route=route, reason=reason)
            for route, reason in pairs}  # fmt: skip


async def test_bulk_retry_by_reason_requeues_only_matching_entries_each_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    jobs = await fill_dlq(client, store)

    answers = await asyncio.gather(*(
        client.post("/dlq/retry", params={"reason": "expired"}, headers=ADMIN) for _ in range(2)
    ))  # fmt: skip

    retried = [job for answer in answers for job in answer.json()["retried"]]
    assert sorted(job["retry_of"] for job in retried) == sorted(
        [jobs[("default", "expired")], jobs[("heavy", "expired")]]
    )
    left = (await client.get("/dlq")).json()["entries"]
    assert {entry["reason"] for entry in left} == {"non_retryable"}
    for job in retried:
        assert (await client.get(f"/status/{job['job_id']}")).json()["status"] == "queued"


async def test_bulk_discard_by_reason_and_route_removes_only_that_entry(
    client: httpx.AsyncClient, store: Store
) -> None:
    jobs = await fill_dlq(client, store)

    both = {"reason": "non_retryable", "route": "heavy"}
    answer = await client.request("DELETE", "/dlq", params=both, headers=ADMIN)

    assert answer.json() == {"discarded": 1}
    listing = (await client.get("/dlq", headers=ADMIN)).json()  # job ids: admins only
    left = {entry["job_id"] for entry in listing["entries"]}
    assert left == set(jobs.values()) - {jobs[("heavy", "non_retryable")]}


async def test_bulk_operations_need_a_filter_and_the_admin_token(
    client: httpx.AsyncClient, store: Store
) -> None:
    await fill_dlq(client, store)

    unfiltered = await client.request("DELETE", "/dlq", headers=ADMIN)
    anonymous = await client.post("/dlq/retry", params={"route": "default"})

    assert unfiltered.status_code == 422
    assert anonymous.status_code in (401, 403)
    assert (await client.get("/dlq")).json()["total"] == 4


async def test_maintenance_trims_dead_letters_past_retention_and_counts_them(
    client: httpx.AsyncClient, make_settings: SettingsFactory, local_fleet: FleetConfig,
    store: Store,
) -> None:  # fmt: skip
    old_id = f"{int((time.time() - 7200) * 1000)}-0"
    await store.redis.xadd(store.keys.dlq, {"job_id": "old", "reason": "expired"}, id=old_id)
    await dead_job(client, store, route="default", reason="non_retryable")
    settings = make_settings(consumers=1, dlq_retention_s=3600, heartbeat_interval_s=0.05,
                             maintenance_interval_s=0.05)  # fmt: skip
    async with app_client(settings, local_fleet) as engine:

        async def trimmed() -> float | None:
            found = samples((await engine.get("/metrics")).text)
            return found.get(("smartqueue_dlq_trimmed_total", ()))

        assert await wait_until(trimmed, timeout_s=10, what="the old entry trimmed") == 1
        listing = (await engine.get("/dlq")).json()

    assert listing["total"] == 1
    assert listing["entries"][0]["reason"] == "non_retryable"
