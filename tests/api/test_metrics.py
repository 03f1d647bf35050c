"""GET /metrics: true at every scrape, from Redis, whoever changed it (another replica's store)."""

from __future__ import annotations

import time

import httpx

from smartqueue.breaker import Breaker, BreakerState
from smartqueue.models import ConsumerInfo, Priority, new_job_id
from smartqueue.queue import NewJob
from smartqueue.store import Store
from tests.api.conftest import CHAT
from tests.support.binaries import require_binary
from tests.support.prometheus import promtool_check_metrics, samples


async def enqueue_elsewhere(store: Store, route: str, priority: Priority) -> str:
    """A job stored by another replica's store (this app never saw the submission)."""
    job = NewJob(new_job_id(), route, priority, b'{"messages": []}', {}, time.time())
    admission = await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=1000)
    assert admission.accepted
    return job.job_id


async def test_first_scrape_shows_the_depth_of_jobs_enqueued_by_another_store(
    client: httpx.AsyncClient, store: Store
) -> None:
    for _ in range(3):
        await enqueue_elsewhere(store, "light", Priority.LOW)
    await enqueue_elsewhere(store, "heavy", Priority.HIGH)

    found = samples((await client.get("/metrics")).text)

    assert found[("smartqueue_queue_depth", (("priority", "low"), ("route", "light")))] == 3
    assert found[("smartqueue_queue_depth", (("priority", "high"), ("route", "heavy")))] == 1
    assert found[("smartqueue_queue_depth", (("priority", "normal"), ("route", "default")))] == 0


async def test_a_breaker_opened_through_another_store_shows_as_its_state(
    client: httpx.AsyncClient, store: Store
) -> None:
    _, version = (await store.breakers.read(["llmgpu"]))["llmgpu"]
    opened = Breaker(BreakerState.OPEN, failures=3, opened_at=time.time(), reason="boom")
    assert await store.breakers.compare_and_set("llmgpu", opened, version=version)

    found = samples((await client.get("/metrics")).text)

    states = {state: found[("smartqueue_breaker_state", (("gpu", "llmgpu"), ("state", state)))]
              for state in ("closed", "open", "half_open")}  # fmt: skip
    assert states == {"closed": 0, "open": 1, "half_open": 0}
    assert found[("smartqueue_breaker_state", (("gpu", "amdpve"), ("state", "closed")))] == 1


async def test_scrape_reads_dlq_delayed_consumers_and_slots_from_redis(
    client: httpx.AsyncClient, store: Store
) -> None:
    now = time.time()
    await store.consumers.heartbeat(
        ConsumerInfo(id="elsewhere-c0", replica="elsewhere", state="idle", current_job=None,
                     last_heartbeat=now, jobs_done=0), ttl_s=30,
    )  # fmt: skip
    await store.redis.zadd(store.keys.delayed, {"some-job": (now + 60) * 1000})
    await store.redis.zadd(store.keys.slots("amdpve"), {"a": (now + 60) * 1000,
                                                        "b": (now - 60) * 1000})  # fmt: skip

    found = samples((await client.get("/metrics")).text)

    assert found[("smartqueue_consumers_live", ())] == 1
    assert found[("smartqueue_delayed_retries", ())] == 1
    assert found[("smartqueue_dlq_depth", ())] == 0
    assert found[("smartqueue_gpu_slots", (("gpu", "amdpve"),))] == 4
    assert found[("smartqueue_gpu_slots_in_use", (("gpu", "amdpve"),))] == 1  # live lease only
    assert found[("smartqueue_jobs_in_flight", (("gpu", "amdpve"),))] == 2  # lapsed one too


async def test_http_requests_are_labelled_by_route_template_never_by_job_id(
    client: httpx.AsyncClient,
) -> None:
    job_id = (await client.post("/enqueue", json=CHAT)).json()["job_id"]
    await client.get(f"/status/{job_id}")
    await client.get("/no/such/page")

    text = (await client.get("/metrics")).text
    found = samples(text)

    assert job_id not in text
    status_route = (("method", "GET"), ("route", "/status/{job_id}"), ("status", "200"))
    assert found[("smartqueue_http_requests_total", status_route)] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert found[("smartqueue_http_requests_total", unmatched)] == 1
    counted = (("method", "POST"), ("route", "/enqueue"))
    assert found[("smartqueue_http_request_duration_seconds_count", counted)] == 1
    accepted = (("outcome", "accepted"), ("priority", "normal"), ("route", "default"))
    assert found[("smartqueue_submissions_total", accepted)] == 1


async def test_no_gauge_is_set_as_a_side_effect_of_get_status(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    await client.get("/status")
    after = (await client.get("/metrics")).text

    def gauges(text: str) -> set[str]:
        return {name for name, _ in samples(text) if not name.startswith("smartqueue_http_")}

    assert gauges(after) == gauges(before)


async def test_the_exposition_passes_promtool_check_metrics(
    client: httpx.AsyncClient, store: Store
) -> None:
    require_binary("promtool")
    await enqueue_elsewhere(store, "default", Priority.NORMAL)
    await client.post("/enqueue", json=CHAT)

    exposition = (await client.get("/metrics")).text

    assert promtool_check_metrics(exposition) == ""
