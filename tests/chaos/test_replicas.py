"""Several replicas (real processes) share one Redis: GPU slots hold across all of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio as aioredis

from smartqueue.config import Settings
from smartqueue.store.codec import RawEntries
from smartqueue.store.keys import GROUP, Keys
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import fleet_for, slow_chat, submit, wait_terminal
from tests.support.figures import max_results_per_job, report, tally
from tests.support.service import ServiceHandle
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until

JOBS = 24


async def test_replicas_two_processes_sharing_gpus_never_exceed_any_gpus_slots(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
) -> None:
    gpus = sims(a={"slots": 2, "speed": 2}, b={"slots": 1, "speed": 2})
    slots = {"a": 2, "b": 1}
    fleet = fleet_for(gpus, {"default": ["a", "b"]}, slots)
    first, second = replicas(chaos_settings(consumers=2), fleet, 2)  # 4 consumers, 3 slots

    async with client_of(first) as one, client_of(second) as two:
        job_ids = await asyncio.gather(
            *(submit(one if i % 2 else two, slow_chat()) for i in range(JOBS))
        )
        records = await wait_terminal(one, list(job_ids), timeout_s=60)
        consumers = (await one.get("/consumers")).json()["consumers"]

    assert {record["status"] for record in records.values()} == {"completed"}
    stats = {name: gpu.stats() for name, gpu in gpus.items()}
    calls: dict[str, int] = {}
    for gpu_stats in stats.values():
        for job_id, count in gpu_stats["requests_by_job"].items():
            calls[job_id] = calls.get(job_id, 0) + count
    duplicates = sum(count - 1 for count in calls.values())
    lost = len([job_id for job_id in job_ids if records[job_id]["status"] != "completed"])
    for name, gpu_stats in stats.items():
        print(f"gpu {name}: max_in_flight={gpu_stats['max_in_flight']}/{slots[name]} slots "
              f"max_processing={gpu_stats['max_processing']} "
              f"served={sum(gpu_stats['requests_by_job'].values())}")  # fmt: skip
    print(f"two replicas, {JOBS} jobs: lost={lost} duplicate_calls={duplicates}")
    for name, gpu_stats in stats.items():
        assert gpu_stats["max_in_flight"] <= slots[name], (name, gpu_stats)
    assert stats["a"]["max_in_flight"] == slots["a"], "the test never filled GPU a"
    assert sorted(calls) == sorted(job_ids)
    assert duplicates == 0
    assert lost == 0
    replicas_that_worked = {c["replica"] for c in consumers if c["jobs_done"] > 0}
    assert len(replicas_that_worked) == 2, consumers


async def _jobs_held_by(
    redis_client: aioredis.Redis, stream: str, replica: ServiceHandle
) -> list[str]:
    """Jobs whose entries consumers of `replica` hold right now (their names carry its pid)."""
    pending: list[dict[str, Any]] = await redis_client.xpending_range(
        stream, GROUP, min="-", max="+", count=1000
    )
    held = []
    for entry in pending:
        if f"-{replica.pid}-" in entry["consumer"].decode():
            entry_id = entry["message_id"]
            found = cast(RawEntries, await redis_client.xrange(stream, min=entry_id, max=entry_id))
            held += [fields[b"job_id"].decode() for _, fields in found]
    return held


async def test_replica_kill9_mid_job_loses_nothing_and_another_finishes_every_job(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    gpus = sims(a={"slots": 3, "speed": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 3})
    settings = chaos_settings(consumers=2)  # 4 consumers for 3 slots: both replicas get work
    victim, survivor = replicas(settings, fleet, 2)
    stream = Keys(key_prefix).running

    async with client_of(victim) as doomed, client_of(survivor) as client:
        job_ids = [await submit(doomed, slow_chat(16)) for _ in range(12)]
        held = await wait_until(lambda: _jobs_held_by(redis_client, stream, victim),
                                timeout_s=20, what="the victim to run a job")  # fmt: skip
        victim.kill9()
        killed_at = time.monotonic()

        async def victim_consumers_gone() -> bool:
            consumers = (await client.get("/consumers")).json()["consumers"]
            return not any(f"-{victim.pid}-" in c["replica"] for c in consumers)

        listed_after_kill = not await victim_consumers_gone()
        await wait_until(victim_consumers_gone, timeout_s=settings.consumer_ttl_s + 5,
                         what="the dead replica's consumers to expire")  # fmt: skip
        gone_s = time.monotonic() - killed_at
        records = await wait_terminal(client, job_ids, timeout_s=60)
        healed_s = time.monotonic() - killed_at
        dlq = (await client.get("/dlq")).json()

    calls = gpus["a"].stats()["requests_by_job"]
    lost = sum(1 for job_id in job_ids if records[job_id]["status"] != "completed")
    duplicates = sum(count - 1 for count in calls.values())
    most = await max_results_per_job(redis_client, Keys(key_prefix), job_ids)
    report("replica kill -9 under load (1 of 2)", tally(
        records, submitted=len(job_ids), accepted=len(job_ids), duplicate_gpu_calls=duplicates,
        max_results=most, recovery_s=healed_s))  # fmt: skip
    print(f"kill -9 with {len(held)} job(s) running on the victim: lost={lost} "
          f"duplicate_calls={duplicates} (re-run jobs the victim held) dlq={dlq['total']} "
          f"all done {healed_s:.1f} s after the kill; victim's consumers gone after "
          f"{gone_s:.1f} s (ttl {settings.consumer_ttl_s:g} s)")  # fmt: skip
    assert listed_after_kill, "a dead replica's consumers stay listed until their TTL"
    assert lost == 0
    assert all(records[job_id]["result"]["choices"] for job_id in job_ids)
    assert sorted(calls) == sorted(job_ids)
    assert all(count == 1 for job_id, count in calls.items() if job_id not in held), calls
    assert duplicates <= len(held)
    assert most == 1
    assert dlq["total"] == 0
    assert await redis_client.xlen(stream) == 0, "every handled entry is deleted"
