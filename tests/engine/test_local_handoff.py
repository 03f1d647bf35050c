"""Held requests answered in-process when their job runs on the same replica, through Redis
otherwise; an answer reaches a held request only once its commit succeeded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from smartqueue.breaker import Breaker
from smartqueue.config import Settings
from smartqueue.fleet_state import breaker_policy
from smartqueue.gpu_client import GpuAnswer
from smartqueue.metrics import Metrics
from smartqueue.outcomes import Dispatch, OutcomeRecorder
from smartqueue.queue import StoredJob
from smartqueue.store.jobs import Jobs
from smartqueue.store.keys import Keys
from smartqueue.watch import JobWatch
from tests.engine.conftest import CHAT, fleet_for, job_record, running_store, service, submit
from tests.engine.test_claims import _steal, _take, unreachable_fleet
from tests.support.sim import InProcessSim


@pytest.fixture
def record_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The job ids whose record the store reads (Jobs.get), in order."""
    reads: list[str] = []
    original = Jobs.get

    async def counted(self: Jobs, job_id: str) -> StoredJob | None:
        reads.append(job_id)
        return await original(self, job_id)

    monkeypatch.setattr(Jobs, "get", counted)
    return reads


async def test_held_request_on_the_consumers_replica_gets_the_committed_answer_without_a_read(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    record_reads: list[str],
) -> None:
    fleet = fleet_for(sims(a={"slots": 2}), {"default": ["a"]}, {"a": 2})

    async with service(engine_settings(), fleet) as client:
        response = await client.post("/v1/chat/completions", json=CHAT)
        job_id = response.headers["X-Smartqueue-Job-Id"]
        reads_while_held = list(record_reads)
        stored = await job_record(client, job_id)

    assert response.status_code == 200
    assert job_id not in reads_while_held
    assert stored["status"] == "completed"
    assert response.json() == stored["result"]


async def test_held_stream_on_the_consumers_replica_relays_every_chunk_in_order(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    fleet = fleet_for(sims(a={"slots": 2}), {"default": ["a"]}, {"a": 2})

    async with service(engine_settings(), fleet) as client:
        async with client.stream("POST", "/v1/chat/completions",
                                 json={**CHAT, "stream": True}) as response:  # fmt: skip
            relayed = b"".join([part async for part in response.aiter_bytes()])
            job_id = response.headers["X-Smartqueue-Job-Id"]
        result = await redis_client.hget(Keys(key_prefix).job(job_id), "result")

    assert response.status_code == 200
    assert relayed.endswith(b"data: [DONE]\n\n")
    assert relayed == result  # what Redis kept is what the client got, chunk for chunk


@pytest.mark.parametrize("stream", [False, True])
async def test_held_request_on_another_replica_gets_the_answer_through_redis(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    stream: bool,
) -> None:
    fleet = fleet_for(sims(a={"slots": 2}), {"default": ["a"]}, {"a": 2})
    front, engine = engine_settings(consumers=0), engine_settings()

    async with service(front, fleet) as held, service(engine, fleet):
        response = await held.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        stored = await job_record(held, response.headers["X-Smartqueue-Job-Id"])

    assert response.status_code == 200
    assert stored["status"] == "completed"
    if stream:
        assert response.text.endswith("data: [DONE]\n\n")
        assert json.loads(response.text.split("data: ")[1])["object"] == "chat.completion.chunk"
    else:
        assert response.json() == stored["result"]


async def test_refused_commit_hands_no_answer_to_a_local_hold(
    engine_settings: Callable[..., Settings], redis_client: aioredis.Redis, key_prefix: str
) -> None:
    fleet, settings = unreachable_fleet(), engine_settings(consumers=0, commit_retry_s=0)
    async with service(settings, fleet) as client, running_store(settings, fleet) as store:
        job_id = await submit(client)
        job = await _take(store, "first")
        assert job is not None
        await _steal(redis_client, key_prefix, job_id, "second")
        watch = JobWatch(store)
        hold = watch.hold(job_id)
        policy = breaker_policy(settings)
        recorder = OutcomeRecorder(settings, store=store, metrics=Metrics(),
                                   breaker_policy=policy, watch=watch)  # fmt: skip
        answer = GpuAnswer(200, b'{"late": true}', "application/json")
        await recorder.complete(Dispatch(job, False, Breaker()), answer, "first")
        await asyncio.sleep(0)

    assert hold.answer is None
    assert not hold.woken.is_set()
