"""Dispatch: jobs reach a GPU of their route and complete with the GPU's answer."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as aioredis

from smartqueue.config import Settings
from smartqueue.sse import event_data, split_events
from smartqueue.store.codec import RawEntries
from smartqueue.store.keys import Keys
from tests.engine.conftest import fleet_for, gpu_views, service, slow_chat, submit, wait_terminal
from tests.support.sim import InProcessSim


async def test_engine_job_completes_with_the_gpus_answer_and_served_model(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})

    async with service(engine_settings(), fleet) as client:
        job_id = await submit(client)
        records = await wait_terminal(client, [job_id])

    record: dict[str, Any] = records[job_id]
    assert record["status"] == "completed", record
    assert record["gpu"] == "a"
    assert record["attempts"] == 1
    assert record["result_status"] == 200
    assert record["result"]["model"] == "model-a"
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 1}


async def test_engine_streamed_job_stores_its_chunks_and_an_assembled_completion(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(), fleet) as client:
        job_id = await submit(client, slow_chat(6, stream=True))
        [record] = (await wait_terminal(client, [job_id])).values()

    keys = Keys(key_prefix)
    events_stream = cast(RawEntries, await redis_client.xrange(keys.events(job_id)))
    stored = [fields[b"data"] for _, fields in events_stream if fields[b"type"] == b"chunk"]
    transcript = cast(bytes, await redis_client.hget(keys.job(job_id), "result"))
    events, _ = split_events(transcript)
    assert record["status"] == "completed"
    assert transcript.endswith(b"data: [DONE]\n\n")
    assert stored == events, "every SSE event was appended as it arrived"
    assert len(stored) >= 6 + 2, "role, one chunk per token, finish, [DONE]"
    assert json.loads(event_data(stored[1]))["model"] == "model-a"
    streamed_text = "".join(
        (json.loads(event_data(event)).get("choices") or [{}])[0].get("delta", {}).get("content")
        or "" for event in stored if event_data(event) != b"[DONE]"
    )  # fmt: skip
    assert record["result"]["object"] == "chat.completion"
    assert record["result"]["choices"][0]["message"]["content"] == streamed_text


async def test_engine_keyed_gpu_gets_its_key_on_probes_and_jobs_and_runs_them(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SQ_TEST_GPU_KEY", "k-123")
    gpus = sims(a={"api_key": "k-123"})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1}, key_envs={"a": "SQ_TEST_GPU_KEY"})
    async with service(engine_settings(), fleet) as client:
        [record] = (await wait_terminal(client, [await submit(client)])).values()
        health = (await gpu_views(client))["a"]["health"]

    assert record["status"] == "completed"
    assert health["state"] == "up"
    assert not health["probe_unauthorised"]


async def test_engine_follow_on_takes_the_next_planned_job_in_a_busy_gpus_freed_slot(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    """With a backlog on a one-slot GPU, an answered job's consumer takes the next job in its
    slot from the last plan: jobs still run one at a time, all of them, in arrival order."""
    gpus = sims(a={"slots": 1, "speed": 20.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})

    async with service(engine_settings(), fleet) as client:
        job_ids = [await submit(client, slow_chat(32)) for _ in range(6)]
        records = await wait_terminal(client, job_ids)
        metrics = (await client.get("/metrics")).text

    assert [records[job_id]["status"] for job_id in job_ids] == ["completed"] * 6
    starts = [records[job_id]["started_at"] for job_id in job_ids]
    assert starts == sorted(starts), "FIFO within a class"
    assert gpus["a"].stats()["max_in_flight"] == 1, "never more than the GPU's one slot"
    follow_ons = re.search(r"^smartqueue_follow_on_takes_total (\S+)$", metrics, re.MULTILINE)
    assert follow_ons is not None
    assert float(follow_ons.group(1)) >= 1, "no job was taken as a follow-on"


async def test_engine_reads_the_queue_once_per_job_when_nothing_else_waits(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    """One client, one job at a time: the job's wake-up brings one read of the queue that takes
    it; the consumer whose job ended does not read the queue again to find it empty."""
    gpus = sims(a={"slots": 2})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})

    async with service(engine_settings(idle_poll_s=30.0), fleet) as client:
        await wait_terminal(client, [await submit(client)])  # consumers settled, speeds read
        before = await queue_reads(client)
        for _ in range(10):
            await wait_terminal(client, [await submit(client)])
        reads = await queue_reads(client) - before

    assert 10 <= reads <= 12, f"{reads} reads of the queue for 10 jobs (was 2 a job)"


async def test_engine_reads_the_queue_after_every_job_while_another_replica_has_consumers(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    """Another replica's consumer may take a wake-up and find every slot busy; this replica
    cannot know, so its consumers read the queue whenever their job ends."""
    gpus = sims(a={"slots": 2})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    settings = engine_settings(idle_poll_s=30.0)
    redis = aioredis.Redis.from_url(settings.redis_url)
    await redis.zadd(Keys(settings.key_prefix).consumers, {"other-replica-c0": time.time() + 3600})

    async with service(settings, fleet) as client:
        await wait_terminal(client, [await submit(client)])
        before = await queue_reads(client)
        for _ in range(5):
            await wait_terminal(client, [await submit(client)])
        reads = await queue_reads(client) - before
    await redis.aclose()

    assert reads >= 10, f"{reads} reads of the queue for 5 jobs"


async def queue_reads(client: httpx.AsyncClient) -> float:
    """smartqueue_queue_reads_total from /metrics."""
    metrics = (await client.get("/metrics")).text
    found = re.search(r"^smartqueue_queue_reads_total (\S+)$", metrics, re.MULTILINE)
    assert found is not None, "smartqueue_queue_reads_total is exported"
    return float(found.group(1))
