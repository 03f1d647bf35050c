"""Backpressure: 30/40/50 thresholds, per-priority ceilings, zero overshoot under concurrency."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from smartqueue.queue import Lease
from smartqueue.store import Store
from tests.api.conftest import CHAT


async def submit(client: httpx.AsyncClient, priority: str = "normal") -> httpx.Response:
    """POST one JSON job at `priority`."""
    headers = {"Content-Type": "application/json", "X-Syslog-Priority": priority}
    return await client.post("/enqueue", content=json.dumps(CHAT), headers=headers)


async def fill(client: httpx.AsyncClient, depth: int) -> None:
    """Queue `depth` high-priority jobs (high is refused only from 50)."""
    for _ in range(depth):
        assert (await submit(client, "high")).status_code == 202


async def test_backpressure_100_concurrent_submits_at_depth_39_accept_exactly_one(
    client: httpx.AsyncClient,
) -> None:
    await fill(client, 39)

    answers = await asyncio.gather(*(submit(client) for _ in range(100)))

    statuses = [answer.status_code for answer in answers]
    print(f"\n100 concurrent submits at depth 39: {statuses.count(202)} accepted, "
          f"{statuses.count(503)} refused")  # fmt: skip
    assert statuses.count(202) == 1
    assert statuses.count(503) == 99
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 503)
    assert (await client.get("/status")).json()["depth"]["total"] == 40


@pytest.mark.parametrize(("priority", "refused_from"), [("low", 30), ("normal", 40), ("high", 50)])
async def test_backpressure_each_priority_is_refused_from_its_ceiling(
    client: httpx.AsyncClient, priority: str, refused_from: int
) -> None:
    await fill(client, refused_from - 1)

    accepted = await submit(client, priority)
    refused = await submit(client, priority)

    assert accepted.status_code == 202
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "queue_full"
    assert int(refused.headers["Retry-After"]) >= 1


async def test_backpressure_at_open_depth_answers_retry_after_30(
    client: httpx.AsyncClient,
) -> None:
    await fill(client, 50)

    refused = await submit(client, "high")

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "30"


async def test_backpressure_between_30_and_39_accepts_with_warning_and_metric(
    client: httpx.AsyncClient,
) -> None:
    await fill(client, 29)

    quiet = (await submit(client)).json()
    warned = (await submit(client)).json()
    metrics = (await client.get("/metrics")).text

    assert quiet["warning"] is None  # arrived at depth 29
    assert warned["warning"] is not None
    assert "30" in warned["warning"]
    assert "smartqueue_backpressure_warnings_total 1.0" in metrics


async def test_backpressure_retry_after_follows_the_measured_drain_rate(
    client: httpx.AsyncClient, store: Store
) -> None:
    await fill(client, 50)
    first = await submit(client)  # depth 50: the queue is open, and the drain is sampled
    lease = Lease(lease_ms=60_000, aging_ms=60_000)
    for _ in range(5):  # five jobs leave the queue (as consumers take them)
        await store.claims.take("amdpve", slots=10, routes=["default"], consumer="c1", lease=lease)
    await asyncio.sleep(1.1)

    refused = await submit(client)  # depth 45: 6 over the ceiling at about 5 jobs/s

    assert first.headers["Retry-After"] == "30"
    assert refused.status_code == 503
    assert 1 <= int(refused.headers["Retry-After"]) <= 3  # the fixed formula would say 30
