"""Redis frozen (SIGSTOP) while clients submit, then thawed: no submission becomes two jobs.

A frozen Redis still receives the enqueue; it applies it after the thaw. So the answer during
the freeze is 503 `outcome_unknown` with the job's Location, and a client that retries with
its Idempotency-Key gets that one job back (or a first one, if the enqueue never landed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from smartqueue.config import Settings
from smartqueue.store.keys import Keys
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import CHAT, fleet_for, wait_terminal
from tests.support.figures import duplicate_calls, max_results_per_job, report, tally
from tests.support.redis_server import RedisServer
from tests.support.sim import SimHandle

SUBMISSIONS = 10
FROZEN_S = 3.0


async def _submit(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/enqueue", json={**CHAT, "n": key}, headers={"Idempotency-Key": key})


async def _resolve(client: httpx.AsyncClient, key: str) -> str:
    """Retry `key` until it is accepted (new or duplicate); the one job id."""
    while True:
        answer = await _submit(client, key)
        if answer.status_code == 202:
            job_id: str = answer.json()["job_id"]
            return job_id
        await asyncio.sleep(0.2)


async def test_redis_frozen_then_thawed_every_submission_is_one_job(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis-aof", appendonly=True)
    redis.workdir.mkdir()
    redis.start()
    try:
        gpus = sims(a={"slots": 2, "speed": 4.0})
        settings = chaos_settings(redis_url=redis.url)
        [replica] = replicas(settings, fleet_for(gpus, {"default": ["a"]}, {"a": 2}), 1)
        keys = [f"freeze-{i}" for i in range(SUBMISSIONS)]
        async with client_of(replica) as client:
            await client.get("/status")  # warm the pool: the freeze meets open connections
            redis.freeze()
            try:
                submitting = asyncio.gather(*(_submit(client, key) for key in keys))
                await asyncio.sleep(FROZEN_S)
            finally:
                redis.thaw()
            during = await submitting
            thawed = time.monotonic()
            job_ids = [await _resolve(client, key) for key in keys]
            records = await wait_terminal(client, job_ids, timeout_s=60)
            recovery_s = time.monotonic() - thawed
        raw = aioredis.Redis.from_url(redis.url)
        try:
            most = await max_results_per_job(raw, Keys(settings.key_prefix), job_ids)
            stored_jobs = len(await raw.keys(Keys(settings.key_prefix).job("*")))
        finally:
            await raw.aclose()
    finally:
        redis.stop()

    codes = [answer.json()["error"]["code"] for answer in during if answer.status_code == 503]
    located = [answer for answer in during if "Location" in answer.headers]
    figures = report("redis frozen (SIGSTOP) 3 s, thawed", tally(
        records, submitted=SUBMISSIONS, accepted=len(set(job_ids)),
        duplicate_gpu_calls=duplicate_calls([gpus["a"].stats()["requests_by_job"]]),
        max_results=most, recovery_s=recovery_s))  # fmt: skip
    print(
        f"  during the freeze: {len(codes)} x 503 {sorted(set(codes))}, "
        f"{len(located)} with Location; jobs stored={stored_jobs}"
    )
    assert codes
    assert set(codes) <= {"outcome_unknown", "store_unavailable"}
    assert all(answer.json()["error"]["code"] != "outcome_unknown" or "Location" in
               answer.headers for answer in during)  # fmt: skip
    assert len(set(job_ids)) == SUBMISSIONS == stored_jobs  # one job per key, no second one
    assert figures.lost == 0
    assert figures.duplicate_gpu_calls == 0
    assert figures.completed == SUBMISSIONS
    assert figures.max_results_per_job == 1
