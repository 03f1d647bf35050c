"""Claims on running jobs: a lost claim commits nothing, poison entries, shutdown releases."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import cast

import redis.asyncio as aioredis

from smartqueue.config import FleetConfig, Settings, parse_fleet
from smartqueue.models import ErrorInfo, JobStatus
from smartqueue.queue import Lease, TakenJob
from smartqueue.store import Store
from smartqueue.store.keys import GROUP, Keys
from tests.engine.conftest import (
    dlq_entries,
    fleet_for,
    job_record,
    running_store,
    service,
    slow_chat,
    submit,
    wait_gpus_down,
    wait_status,
    wait_terminal,
)
from tests.support.sim import InProcessSim
from tests.support.waiting import wait_until

LEASE = Lease(lease_ms=200, aging_ms=30_000)


def unreachable_fleet() -> FleetConfig:
    """A one-GPU fleet for tests that never call a GPU (no consumers run)."""
    gpu = {"name": "a", "url": "http://127.0.0.1:9", "sidecar_url": "http://127.0.0.1:9",
           "engine": "vllm", "model": "m", "slots": 1, "vram_total_mb": 1}  # fmt: skip
    return parse_fleet({"gpus": [gpu], "routes": {"default": ["a"]}})


async def _steal(redis_client: aioredis.Redis, key_prefix: str, job: str, thief: str) -> None:
    """Take a running job's entry over, as a reclaiming consumer would."""
    keys = Keys(key_prefix)
    entry = cast(bytes, await redis_client.hget(keys.job(job), "entry"))  # its running entry
    claimed = await redis_client.xclaim(keys.running, GROUP, thief, 0, [entry], justid=True)
    assert claimed == [entry]


async def _take(store: Store, consumer: str) -> TakenJob | None:
    return await store.claims.take("a", slots=1, routes=["default"], consumer=consumer, lease=LEASE)


async def test_claim_taken_over_mid_call_rejects_the_late_commit_and_the_job_runs_once_more(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    gpus = sims(a={"slots": 1, "speed": 1.0})  # the call takes about 0.8 s
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    settings = engine_settings(heartbeat_interval_s=0.05, claim_idle_s=2.0)
    async with service(settings, fleet) as client:
        job_id = await submit(client, slow_chat(24))
        await wait_status(client, job_id, {"processing"})
        await _steal(redis_client, key_prefix, job_id, "thief")

        async def first_call_over() -> bool:  # answered (late commit) or aborted (renew failed)
            consumers = (await client.get("/consumers")).json()["consumers"]
            stats = gpus["a"].stats()
            return (stats["requests_by_job"].get(job_id) == 1 and stats["in_flight"] == 0
                    and all(c["current_job"] != job_id for c in consumers))  # fmt: skip

        await wait_until(first_call_over, timeout_s=10, what="the first call to end")
        after_late_commit = await job_record(client, job_id)
        answered = gpus["a"].stats()["completed_total"] == 1
        [record] = (await wait_terminal(client, [job_id])).values()

    print(f"claim lost mid-call ({'answer came, commit refused' if answered else 'call aborted'}"
          f"): status afterwards={after_late_commit['status']}, final={record['status']} after "
          f"{gpus['a'].stats()['requests_by_job'][job_id]} calls")  # fmt: skip
    assert after_late_commit["status"] == "processing", "the late commit was refused"
    assert after_late_commit["result"] is None
    assert record["status"] == "completed"
    assert record["attempts"] == 1
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 2}


async def test_claim_lost_store_refuses_finish_retry_and_dead_letter_from_the_old_holder(
    engine_settings: Callable[..., Settings], redis_client: aioredis.Redis, key_prefix: str
) -> None:
    fleet, settings = unreachable_fleet(), engine_settings(consumers=0)
    async with service(settings, fleet) as client, running_store(settings, fleet) as store:
        job_id = await submit(client)
        job = await _take(store, "first")
        assert job is not None
        await _steal(redis_client, key_prefix, job_id, "second")
        error = ErrorInfo(message="late", type="test")
        finished = await store.claims.finish(job, JobStatus.COMPLETED, consumer="first",
                                      updates={"result": b"late"})  # fmt: skip
        retried = await store.claims.retry_later(job, consumer="first", due_ms=0, updates={})
        dead = await store.claims.dead_letter(job, consumer="first", reason="x", error=error, now=0)
        after = await job_record(client, job_id)
        assert await store.claims.finish(job, JobStatus.COMPLETED, consumer="second",
                                  updates={"result": b"ok"})  # fmt: skip

    assert (finished, retried, dead) == (False, False, None)
    assert after["status"] == "processing"
    assert after["result"] is None


async def test_claim_poison_entry_reclaimed_more_than_max_reclaims_goes_to_dlq(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    gpus["a"].set_faults("refuse")  # the service's own consumers never take it
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    settings = engine_settings(max_reclaims=2, claim_idle_s=0.3)
    async with service(settings, fleet) as client, running_store(settings, fleet) as store:
        await wait_gpus_down(client, ["a"])
        job_id = await submit(client)
        for death in range(settings.max_reclaims + 1):  # a consumer takes it and dies, thrice
            doomed = functools.partial(_take, store, f"doomed{death}")
            await wait_until(doomed, timeout_s=10, what=f"take number {death + 1}")
            record = await wait_status(client, job_id, {"queued", "retrying", "dead"})
        dlq = await dlq_entries(client)

    assert record["status"] == "dead"
    assert record["reason"] == "poison"
    assert [(entry["job_id"], entry["reason"]) for entry in dlq] == [(job_id, "poison")]


async def test_shutdown_past_its_grace_releases_the_running_job_and_another_service_ends_it(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "speed": 1.0})  # the call takes about 2 s
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(shutdown_grace_s=0.3), fleet) as first:
        job_id = await submit(first, slow_chat(80))
        await wait_status(first, job_id, {"processing"})
    async with service(engine_settings(consumers=0), fleet) as api_only:
        released = await job_record(api_only, job_id)
    async with service(engine_settings(), fleet) as second:
        [record] = (await wait_terminal(second, [job_id])).values()

    print(f"shutdown mid-job: released as {released['status']} (attempts "
          f"{released['attempts']}), then {record['status']} by the next service")  # fmt: skip
    assert released["status"] in ("queued", "retrying")
    assert released["attempts"] == 0, "a release uses none of the job's tries"
    assert record["status"] == "completed"
    assert record["attempts"] == 1
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 2}


async def test_shutdown_within_its_grace_finishes_the_running_job_and_starts_no_other(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "speed": 1.0})  # each call takes about 0.6 s
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(shutdown_grace_s=10.0), fleet) as client:
        running = await submit(client, slow_chat(16))
        waiting = await submit(client, slow_chat(16))
        await wait_status(client, running, {"processing"})
    async with service(engine_settings(consumers=0), fleet) as api_only:
        finished = await job_record(api_only, running)
        left = await job_record(api_only, waiting)

    assert finished["status"] == "completed", "finished during the grace period"
    assert left["status"] == "queued", "no new job is taken once stopping"
    assert gpus["a"].stats()["requests_by_job"] == {running: 1}


async def test_store_call_cancelled_as_its_write_completes_still_raises_cancelled(
    engine_settings: Callable[..., Settings],
) -> None:
    fleet, settings = unreachable_fleet(), engine_settings()
    stop = asyncio.Event()
    async with running_store(settings, fleet) as store:

        async def ping_until_cancelled() -> None:
            while not stop.is_set():
                await store.ping()

        lost: list[asyncio.Task[None]] = []
        for attempt in range(200):
            task = asyncio.create_task(ping_until_cancelled())
            await asyncio.sleep(0.001 + (attempt % 7) * 0.0003)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=1.0)
            lost += [] if done else [task]
        stop.set()
        await asyncio.gather(*lost, return_exceptions=True)

    assert lost == [], f"{len(lost)} of 200 cancellations were swallowed"
