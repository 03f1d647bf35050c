"""The soak: steady submissions for SMARTQUEUE_SOAK_S seconds while faults come round in turn.

Two replicas share an AOF Redis and two sims. Every fault interval one fault: kill -9 of a
replica (restarted), Redis frozen for 3 s (SIGSTOP, then SIGCONT), kill -9 of redis-server
(restarted on its AOF). Every submission carries an Idempotency-Key and is retried until it is
accepted, as a careful client would. At the end every accepted job must have ended, each key
must be one job, and no job may have two results.
"""

from __future__ import annotations

import asyncio
import itertools
import os
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
from tests.support.service import ServiceHandle
from tests.support.sim import SimHandle

FAULT_EVERY_S = 20.0
SUBMIT_EVERY_S = 0.1


async def _submit_until_accepted(replicas: list[ServiceHandle], key: str) -> str:
    """POST with `key` to any live replica until it is accepted; the job id."""
    for attempt in itertools.count():
        replica = replicas[attempt % len(replicas)]
        try:
            async with client_of(replica) as client:
                answer = await client.post("/enqueue", json={**CHAT, "k": key},
                                           headers={"Idempotency-Key": key})  # fmt: skip
            if answer.status_code == 202:
                job_id: str = answer.json()["job_id"]
                return job_id
        except httpx.TransportError:
            pass
        await asyncio.sleep(min(2.0, 0.1 * (attempt + 1)))
    raise AssertionError("unreachable")


async def _fault(turn: int, redis: RedisServer, replicas: list[ServiceHandle],
                 restart: Callable[[int], None]) -> str:  # fmt: skip
    """Apply the fault of this turn; its name."""
    kind = turn % 3
    if kind == 0:
        replicas[turn % 2].kill9()
        restart(turn % 2)
        return "replica kill -9"
    if kind == 1:
        redis.freeze()
        await asyncio.sleep(3)
        redis.thaw()
        return "redis frozen 3 s"
    redis.kill()
    await asyncio.sleep(1)
    redis.start()
    return "redis kill -9"


async def test_soak_faults_in_turn_lose_nothing_and_run_nothing_twice(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
    tmp_path: Path,
) -> None:
    soak_s = float(os.environ["SMARTQUEUE_SOAK_S"])
    redis = RedisServer(tmp_path / "redis-aof", appendonly=True)
    redis.workdir.mkdir()
    redis.start()
    try:
        gpus = sims(a={"slots": 4, "speed": 8}, b={"slots": 4, "speed": 8})
        fleet = fleet_for(gpus, {"default": ["a", "b"]}, {"a": 4, "b": 4})
        settings = chaos_settings(redis_url=redis.url, consumers=4)
        live = replicas(settings, fleet, 2)

        def restart(index: int) -> None:
            live[index] = replicas(settings, fleet, 1)[0]

        submissions: list[asyncio.Task[str]] = []
        faults: list[str] = []
        started = time.monotonic()
        next_fault = started + FAULT_EVERY_S
        for n in itertools.count():
            now = time.monotonic()
            if now - started > soak_s:
                break
            if now >= next_fault:
                faults.append(await _fault(len(faults), redis, live, restart))
                next_fault = time.monotonic() + FAULT_EVERY_S
            submissions.append(asyncio.create_task(_submit_until_accepted(live, f"soak-{n}")))
            await asyncio.sleep(SUBMIT_EVERY_S)
        job_ids = await asyncio.gather(*submissions)
        last_fault = time.monotonic()
        async with client_of(live[0], {"Authorization": "Bearer t"}) as client:
            records = await wait_terminal(client, list(job_ids), timeout_s=180)
        recovery_s = time.monotonic() - last_fault
        raw = aioredis.Redis.from_url(redis.url)
        try:
            most = await max_results_per_job(raw, Keys(settings.key_prefix), job_ids)
        finally:
            await raw.aclose()
    finally:
        redis.stop()

    calls = [gpu.stats()["requests_by_job"] for gpu in gpus.values()]
    figures = report(f"soak {soak_s:g} s, faults: {', '.join(faults)}", tally(
        records, submitted=len(submissions), accepted=len(set(job_ids)),
        duplicate_gpu_calls=duplicate_calls(calls), max_results=most,
        recovery_s=recovery_s))  # fmt: skip
    assert len(set(job_ids)) == len(submissions)  # one job per key
    assert figures.lost == 0
    assert figures.max_results_per_job == 1
