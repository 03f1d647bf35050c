"""Batch work fills idle capacity: below every interactive priority, bounded, not counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from smartqueue.config import Settings
from smartqueue.store import Store
from tests.batch.conftest import chat_line, jsonl, openai_client, upload
from tests.engine.conftest import (
    fleet_for,
    running_store,
    service,
    slow_chat,
    submit,
    wait_terminal,
)
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until


async def started_batch(http: httpx.AsyncClient, lines: int, *, max_tokens: int = 8) -> str:
    """Create a batch of `lines` chat requests; its id."""
    client = openai_client(http)
    data = jsonl([chat_line(f"b{i}", max_tokens=max_tokens) for i in range(lines)])
    batch = await client.batches.create(
        input_file_id=await upload(client, data), endpoint="/v1/chat/completions",
        completion_window="24h",
    )  # fmt: skip
    return batch.id


async def batch_waiting(store: Store, *, at_least: int) -> None:
    """Wait until `at_least` batch requests wait on the default route."""

    async def enough() -> bool:
        return (await store.batches.waiting(["default"]))["default"] >= at_least

    await wait_until(enough, timeout_s=20, what=f"{at_least} batch requests waiting")


async def test_interactive_jobs_never_wait_behind_a_batch_request_even_when_aged(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "speed": 20.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    settings = batch_settings(priority_aging_s=0.2)  # batch entries wait far longer than this

    async with service(settings, fleet) as http, running_store(settings, fleet) as store:
        await started_batch(http, 40, max_tokens=64)  # long enough to keep a backlog waiting
        await batch_waiting(store, at_least=2)
        await asyncio.sleep(0.5)  # the waiting batch requests are now "aged"
        interactive = []
        for priority in ("low", "normal", "high", "low"):
            interactive.append(await submit(http, slow_chat(), x_syslog_priority=priority))
        records = await wait_terminal(http, interactive)
        batch_starts = await batch_started_times(store, settings.key_prefix)

    for record in records.values():
        overtaking = [t for t in batch_starts if record["created_at"] < t < record["started_at"]]
        assert overtaking == [], f"{record['priority']} waited behind {len(overtaking)} batch"


async def batch_started_times(store: Store, prefix: str) -> list[float]:
    """When each batch request of the test started (from the job records)."""
    starts = []
    async for key in store.redis.scan_iter(match=f"{{{prefix}}}:job:*"):
        priority, started = await store.redis.hmget(key, ["priority", "started_at"])
        if priority == b"batch" and started:
            starts.append(float(started))
    return starts


async def test_batch_waiting_requests_stay_bounded_by_twice_the_route_slots(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2, "speed": 40.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    settings = batch_settings()

    async with service(settings, fleet) as http, running_store(settings, fleet) as store:
        batch_id = await started_batch(http, 60, max_tokens=4)
        most = 0
        for _ in range(40):
            most = max(most, (await store.batches.waiting(["default"]))["default"])
            record = await store.batches.get(batch_id)
            assert record is not None
            assert record.fed - record.completed - record.failed <= 2 * 2 + 2  # waiting + running
            await asyncio.sleep(0.05)

    assert 0 < most <= 4


async def test_batch_requests_never_count_against_interactive_backpressure(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2, "speed": 5.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    settings = batch_settings(queue_warn_depth=1, queue_overload_depth=2, queue_open_depth=3,
                              ceiling_low=1, ceiling_normal=2, ceiling_high=3)  # fmt: skip

    async with service(settings, fleet) as http, running_store(settings, fleet) as store:
        await started_batch(http, 30)
        await batch_waiting(store, at_least=4)  # over every ceiling, were they counted
        response = await http.post(
            "/enqueue", json=slow_chat(), headers={"X-Syslog-Priority": "low"}
        )

    assert response.status_code == 202, response.text
    assert response.json()["queue_depth"] == 1


async def test_clients_cannot_ask_for_the_batch_priority(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})

    async with service(batch_settings(consumers=0), fleet) as http:
        response = await http.post("/enqueue", json=slow_chat(),
                                   headers={"X-Syslog-Priority": "batch"})  # fmt: skip

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_priority"
