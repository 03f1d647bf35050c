"""Redis itself crashes (kill -9) mid-load and comes back from its AOF: nothing accepted is lost."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

from smartqueue.config import Settings
from smartqueue.store.keys import Keys
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import fleet_for, slow_chat, submit, wait_status, wait_terminal
from tests.support.figures import max_results_per_job, report, tally
from tests.support.redis_server import RedisServer
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until


async def _most_results(redis: RedisServer, prefix: str, job_ids: list[str]) -> int:
    client = aioredis.Redis.from_url(redis.url)
    try:
        return await max_results_per_job(client, Keys(prefix), job_ids)
    finally:
        await client.aclose()


def _calls_over(gpu: SimHandle) -> Callable[[], Awaitable[bool]]:
    async def over() -> bool:
        return bool(gpu.stats()["in_flight"] == 0)

    return over


async def test_redis_kill9_mid_load_loses_no_accepted_job(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis-aof", appendonly=True)
    redis.workdir.mkdir()
    redis.start()
    try:
        gpus = sims(a={"slots": 2, "speed": 1.0})
        fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
        settings = chaos_settings(redis_url=redis.url)
        [replica] = replicas(settings, fleet, 1)
        async with client_of(replica) as client:
            job_ids = [await submit(client, slow_chat(16)) for _ in range(10)]
            await wait_status(client, job_ids[0], {"processing", "completed"})
            redis.kill()
            health_while_down = (await client.get("/health")).status_code
            await wait_until(_calls_over(gpus["a"]), timeout_s=10,
                             what="the running calls to end while Redis is down")  # fmt: skip
            redis.start()
            restarted = time.monotonic()
            records = await wait_terminal(client, job_ids, timeout_s=60)
            healed_s = time.monotonic() - restarted
            dlq = (await client.get("/dlq")).json()
        most = await _most_results(redis, settings.key_prefix, job_ids)
    finally:
        redis.stop()

    calls = gpus["a"].stats()["requests_by_job"]
    lost = sum(1 for job_id in job_ids if records[job_id]["status"] != "completed")
    duplicates = sum(count - 1 for count in calls.values())
    report("redis kill -9 mid-load, restarted on its AOF", tally(
        records, submitted=len(job_ids), accepted=len(job_ids), duplicate_gpu_calls=duplicates,
        max_results=most, recovery_s=healed_s))  # fmt: skip
    assert most == 1
    assert duplicates == 0  # each finished call's commit is retried until Redis is back
    print(f"redis kill -9 mid-load (AOF, fsync always; the running calls ended while it was "
          f"down): lost={lost} duplicate_calls={duplicates} (re-runs of those calls) "
          f"dlq={dlq['total']}; all done {healed_s:.1f} s after the restart")  # fmt: skip
    assert health_while_down == 503
    assert lost == 0
    assert dlq["total"] == 0
    assert sorted(calls) == sorted(job_ids)
