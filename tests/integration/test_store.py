"""The store against a real redis-server: groups, TTLs, dead letters, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from smartqueue.breaker import Breaker, BreakerState
from smartqueue.config import FleetConfig, Settings
from smartqueue.keys import GROUP
from smartqueue.models import ErrorInfo, JobStatus, Priority, new_job_id
from smartqueue.store import Lease, NewJob, Store, StreamEntry
from tests.support.entries import read_entry
from tests.support.redis_server import RedisServer


@pytest.fixture
async def store(
    redis_server: RedisServer, key_prefix: str, local_fleet: FleetConfig
) -> AsyncIterator[Store]:
    """A store on the test server with its own prefix (groups not created yet)."""
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, terminal_ttl_s=600)
    store = Store.connect(settings, routes=local_fleet.route_names)
    yield store
    await store.aclose()


def new_job(route: str = "default", priority: Priority = Priority.NORMAL) -> NewJob:
    """A job as the API would build it."""
    return NewJob(
        job_id=new_job_id(),
        route=route,
        priority=priority,
        payload=b'{"messages": []}',
        headers={"content-type": "application/json"},
        created_at=time.time(),
    )


async def take(store: Store, job: NewJob) -> StreamEntry:
    """Read the job's entry as a consumer would."""
    return await read_entry(store.redis, store.keys.stream(job.priority, job.route))


async def test_job_enqueued_before_the_group_exists_is_read_by_a_later_consumer(
    store: Store,
) -> None:
    job = new_job()
    assert (await store.enqueue(job, ceiling=40)).accepted

    await store.ensure_groups()
    entry = await take(store, job)

    assert entry.job_id == job.job_id
    assert entry.payload == job.payload


async def test_ensure_groups_twice_is_harmless(store: Store) -> None:
    await store.ensure_groups()
    await store.ensure_groups()

    groups = await store.redis.xinfo_groups(store.keys.stream(Priority.LOW, "light"))
    assert [group["name"] for group in groups] == [GROUP.encode()]


async def test_depth_counts_waiting_jobs_not_taken_ones(store: Store) -> None:
    await store.ensure_groups()
    jobs = [new_job(priority=Priority.HIGH), new_job(), new_job(route="light")]
    for job in jobs:
        await store.enqueue(job, ceiling=40)

    await take(store, jobs[1])

    assert await store.depths() == {Priority.HIGH: 1, Priority.NORMAL: 1, Priority.LOW: 0}
    assert await store.in_flight() == 1


async def test_queued_record_has_no_ttl_and_terminal_record_gets_its_own(
    store: Store, redis_client: aioredis.Redis
) -> None:
    await store.ensure_groups()
    done, waiting = new_job(), new_job()
    for job in (done, waiting):
        await store.enqueue(job, ceiling=40)
    await take(store, done)

    await store.transition(done.job_id, JobStatus.PROCESSING, started_at=time.time())
    assert await redis_client.ttl(store.keys.job(done.job_id)) == -1
    await store.transition(done.job_id, JobStatus.COMPLETED, completed_at=time.time())

    assert 590 <= await redis_client.ttl(store.keys.job(done.job_id)) <= 600
    assert await redis_client.ttl(store.keys.job(waiting.job_id)) == -1


async def test_transition_never_moves_backwards_or_out_of_a_terminal_status(store: Store) -> None:
    job = new_job()
    await store.enqueue(job, ceiling=40)

    assert await store.transition(job.job_id, JobStatus.PROCESSING) is JobStatus.QUEUED
    assert await store.transition(job.job_id, JobStatus.QUEUED) is None
    assert await store.transition(job.job_id, JobStatus.COMPLETED) is JobStatus.PROCESSING
    assert await store.transition(job.job_id, JobStatus.DEAD) is None
    assert (await store.get_job(job.job_id)).status is JobStatus.COMPLETED  # type: ignore[union-attr]


async def test_cancel_queued_removes_the_entry_so_it_never_runs(store: Store) -> None:
    await store.ensure_groups()
    job = new_job()
    await store.enqueue(job, ceiling=40)

    assert await store.cancel(job.job_id, now=time.time()) is JobStatus.QUEUED
    assert await store.cancel(job.job_id, now=time.time()) is None

    stream = store.keys.stream(job.priority, job.route)
    assert await store.redis.xreadgroup(GROUP, "c1", {stream: ">"}, count=1) == []
    assert (await store.get_job(job.job_id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


LEASE = Lease(lease_ms=30_000, aging_ms=30_000)


async def dead_letter(store: Store, job: NewJob) -> str:
    """Run `job` to a dead end as the engine would."""
    taken = await store.take("amdpve", slots=4, routes=[job.route], consumer="c1", lease=LEASE)
    assert taken is not None
    assert taken.job_id == job.job_id
    dlq_id = await store.dead_letter(
        replace(taken, attempts=4), consumer="c1", reason="retries_exhausted", now=time.time(),
        error=ErrorInfo(message="GPU said no", type="gpu_error", gpu_status=500),
    )  # fmt: skip
    assert dlq_id is not None
    return dlq_id


async def test_dead_letter_records_reason_and_deletes_the_handled_entry(store: Store) -> None:
    await store.ensure_groups()
    job = new_job(route="light")
    await store.enqueue(job, ceiling=40)

    await dead_letter(store, job)

    [entry] = await store.dlq_entries(limit=10)
    assert (entry.job_id, entry.reason, entry.attempts) == (job.job_id, "retries_exhausted", 4)
    assert entry.last_error is not None
    assert entry.last_error.gpu_status == 500
    record = await store.get_job(job.job_id)
    assert record is not None
    assert (record.status, record.reason) == (JobStatus.DEAD, "retries_exhausted")
    assert await store.redis.xlen(store.keys.stream(job.priority, job.route)) == 0
    assert await store.in_flight() == 0


async def test_dlq_retry_called_twice_at_once_requeues_exactly_once(store: Store) -> None:
    await store.ensure_groups()
    job = new_job(route="heavy")
    await store.enqueue(job, ceiling=40)
    dlq_id = await dead_letter(store, job)

    results = await asyncio.gather(
        *(store.dlq_retry(dlq_id, new_job_id=new_job_id(), now=time.time()) for _ in range(10))
    )

    assert [result for result in results if result] == [job.job_id]
    assert await store.depths() == {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 0}
    assert await store.dlq_length() == 0
    old = await store.get_job(job.job_id)
    assert old is not None
    assert old.retried_as is not None
    new = await store.get_job(old.retried_as)
    assert new is not None
    assert (new.status, new.retry_of, new.route) == (JobStatus.QUEUED, job.job_id, "heavy")


async def test_dlq_move_costs_the_same_with_a_long_queue(store: Store) -> None:
    """The DLQ move is one XADD: it reads nothing proportional to the queue."""
    await store.ensure_groups()
    target = new_job()
    await store.enqueue(target, ceiling=40)
    pipe = store.redis.pipeline(transaction=False)
    for _ in range(10_000):
        pipe.xadd(store.keys.stream(Priority.NORMAL, "default"), {"job_id": "filler"})
    await pipe.execute()
    taken = await store.take("amdpve", slots=4, routes=["default"], consumer="c1", lease=LEASE)
    assert taken is not None
    await store.redis.config_resetstat()

    await store.dead_letter(taken, consumer="c1", reason="poison", error=None, now=time.time())

    stats = await store.redis.info("commandstats")
    assert not {"cmdstat_xrange", "cmdstat_xrevrange", "cmdstat_xread", "cmdstat_scan"} & set(stats)
    assert stats["cmdstat_xadd"]["calls"] == 2  # the DLQ entry and the job's "dead" event


async def test_dlq_unknown_or_malformed_entry_is_not_found(store: Store) -> None:
    assert await store.dlq_retry("1-1", new_job_id=new_job_id(), now=0) is None
    assert await store.dlq_retry("not-an-id", new_job_id=new_job_id(), now=0) is None
    assert not await store.dlq_discard("zzz")


async def test_dispatched_total_counts_entries_delivered_to_consumers(store: Store) -> None:
    await store.ensure_groups()
    for route in ("default", "light", "default"):
        await store.enqueue(new_job(route=route), ceiling=40)

    before = await store.dispatched_total()
    await store.take("amdpve", slots=4, routes=["default", "light"], consumer="c1", lease=LEASE)
    await store.take("amdpve", slots=4, routes=["default", "light"], consumer="c1", lease=LEASE)

    assert (before, await store.dispatched_total()) == (0, 2)


@pytest.mark.parametrize(
    ("state", "probe", "takes"),
    [("closed", False, True), ("open", False, False), ("open", True, False),
     ("half_open", False, False), ("half_open", True, True)],
)  # fmt: skip
async def test_take_rereads_the_breaker_so_an_open_gpu_gets_nothing(
    store: Store, state: str, probe: bool, takes: bool
) -> None:
    await store.ensure_groups()
    await store.enqueue(new_job(), ceiling=40)
    breaker = Breaker(BreakerState(state), failures=3, opened_at=time.time(),
                      probe_deadline=time.time() + 60)  # fmt: skip
    assert await store.set_breaker("amdpve", breaker, version="0")

    taken = await store.take("amdpve", slots=4, routes=["default"], consumer="c1", lease=LEASE,
                             probe=probe)  # fmt: skip

    assert (taken is not None) is takes


async def test_take_recreates_lost_consumer_groups(store: Store) -> None:
    await store.ensure_groups()
    job = new_job()
    await store.enqueue(job, ceiling=40)
    for stream in store.keys.streams(store.routes):
        await store.redis.xgroup_destroy(stream, GROUP)

    taken = await store.take("amdpve", slots=4, routes=["default"], consumer="c1", lease=LEASE)

    assert taken is not None
    assert taken.job_id == job.job_id


async def test_renew_restores_a_slot_lease_that_expired_meanwhile(store: Store) -> None:
    await store.ensure_groups()
    await store.enqueue(new_job(), ceiling=40)
    short = Lease(lease_ms=50, aging_ms=30_000)
    taken = await store.take("amdpve", slots=1, routes=["default"], consumer="c1", lease=short)
    assert taken is not None
    await asyncio.sleep(0.1)
    await store.redis.zremrangebyscore(store.keys.slots("amdpve"), "-inf", "+inf")  # as TAKE would

    assert await store.renew(taken, consumer="c1", lease=LEASE)
    assert await store.slots_in_use(["amdpve"], now=time.time()) == {"amdpve": 1}


async def test_cancel_after_a_retry_removes_the_current_entry(store: Store) -> None:
    await store.ensure_groups()
    job = new_job()
    await store.enqueue(job, ceiling=40)
    taken = await store.take("amdpve", slots=4, routes=["default"], consumer="c1", lease=LEASE)
    assert taken is not None
    await store.retry_later(taken, consumer="c1", due_ms=0, updates={"attempts": 1})
    await store.move_due_retries(now_ms=int(time.time() * 1000))

    assert await store.cancel(job.job_id, now=time.time()) is JobStatus.QUEUED
    assert await store.depths() == {Priority.HIGH: 0, Priority.NORMAL: 0, Priority.LOW: 0}
