"""Redis itself crashes (kill -9) mid-load and comes back from its AOF: nothing accepted is lost."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from smartqueue.config import Settings
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import fleet_for, slow_chat, submit, wait_status, wait_terminal
from tests.support.redis_server import RedisServer
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until


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
        [replica] = replicas(chaos_settings(redis_url=redis.url), fleet, 1)
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
    finally:
        redis.stop()

    calls = gpus["a"].stats()["requests_by_job"]
    lost = sum(1 for job_id in job_ids if records[job_id]["status"] != "completed")
    duplicates = sum(count - 1 for count in calls.values())
    print(f"redis kill -9 mid-load (AOF, fsync always; the running calls ended while it was "
          f"down): lost={lost} duplicate_calls={duplicates} (re-runs of those calls) "
          f"dlq={dlq['total']}; all done {healed_s:.1f} s after the restart")  # fmt: skip
    assert health_while_down == 503
    assert lost == 0
    assert dlq["total"] == 0
    assert sorted(calls) == sorted(job_ids)
