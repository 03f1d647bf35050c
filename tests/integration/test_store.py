"""The store against a real redis-server: groups, TTLs, dead letters, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import cast

import pytest
import redis.asyncio as aioredis

from smartqueue.breaker import Breaker, BreakerState
from smartqueue.config import FleetConfig, Settings
from smartqueue.models import PRIORITY_ORDER, ErrorInfo, JobStatus, Priority, new_job_id
from smartqueue.owners import ANONYMOUS
from smartqueue.queue import Lease, NewJob, StreamEntry, TakenJob, TakeRefused, WaitingEntry
from smartqueue.store import Store, scripts
from smartqueue.store.codec import entry_from_raw
from smartqueue.store.keys import GROUP, Counter
from smartqueue.store.scripts import Change, Held, Scripts
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


LEASE = Lease(lease_ms=30_000, aging_ms=30_000)


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


async def claim(
    store: Store, *, routes: list[str], slots: int = 4, lease: Lease = LEASE, probe: bool = False
) -> TakenJob | None:
    """Take the next job for GPU `amdpve` as consumer c1 would."""
    return await store.claims.take("amdpve", slots=slots, routes=routes, consumer="c1",
                                   lease=lease, probe=probe)  # fmt: skip


async def test_job_enqueued_before_the_group_exists_is_taken_by_a_later_consumer(
    store: Store,
) -> None:
    job = new_job()
    assert (await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)).accepted

    taken = await claim(store, routes=["default"])

    assert taken is not None
    assert taken.entry.job_id == job.job_id
    assert taken.entry.payload == job.payload


async def test_ensure_groups_twice_is_harmless(store: Store) -> None:
    await store.ensure_groups()
    await store.ensure_groups()

    groups = await store.redis.xinfo_groups(store.keys.running)
    assert [group["name"] for group in groups] == [GROUP.encode()]


async def test_depth_counts_waiting_jobs_not_taken_ones(store: Store) -> None:
    await store.ensure_groups()
    jobs = [new_job(priority=Priority.HIGH), new_job(), new_job(route="light")]
    for job in jobs:
        await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)

    taken = await claim(store, routes=["default"])  # high first

    assert taken is not None
    assert taken.job_id == jobs[0].job_id
    assert await store.overview.depths() == {Priority.HIGH: 0, Priority.NORMAL: 2, Priority.LOW: 0}
    assert await store.overview.depths_by_route() == {
        "default": {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 0, Priority.BATCH: 0},
        "light": {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 0, Priority.BATCH: 0},
        **{route: dict.fromkeys(Priority, 0) for route in store.routes
           if route not in ("default", "light")},
    }  # fmt: skip
    assert await store.overview.in_flight() == 1


async def test_depth_counters_drifted_by_hand_are_reconciled_with_the_streams(
    store: Store, redis_client: aioredis.Redis
) -> None:
    await store.ensure_groups()
    for _ in range(3):
        await store.submissions.enqueue(new_job(), ceiling=40, everywhere_ceiling=10_000)
    await redis_client.delete(store.keys.counts)  # e.g. restored from an older file
    assert await store.overview.depths() == dict.fromkeys(PRIORITY_ORDER, 0)

    assert await store.claims.reconcile_counts() == 1

    assert await store.overview.depths() == {Priority.HIGH: 0, Priority.NORMAL: 3, Priority.LOW: 0}
    assert await store.claims.reconcile_counts() == 0


async def test_admission_is_per_route_so_a_full_route_blocks_no_other(store: Store) -> None:
    await store.ensure_groups()
    for _ in range(3):
        assert (await store.submissions.enqueue(new_job(route="heavy"), ceiling=3,
                                                everywhere_ceiling=10_000)).accepted  # fmt: skip

    full = await store.submissions.enqueue(new_job(route="heavy"), ceiling=3,
                                           everywhere_ceiling=10_000)  # fmt: skip
    other = await store.submissions.enqueue(new_job(route="light"), ceiling=3,
                                            everywhere_ceiling=10_000)  # fmt: skip
    everywhere = await store.submissions.enqueue(new_job(route="light"), ceiling=3,
                                                 everywhere_ceiling=4)  # fmt: skip

    assert (full.accepted, full.depth) == (False, 3)
    assert (other.accepted, other.depth, other.position) == (True, 0, 0)
    assert (everywhere.accepted, everywhere.everywhere_full) == (False, True)


async def test_position_of_a_queued_job_counts_the_jobs_of_its_route_before_it(
    store: Store,
) -> None:
    await store.ensure_groups()
    jobs = [new_job() for _ in range(4)] + [new_job(priority=Priority.HIGH)]
    for job in jobs:
        await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    await claim(store, routes=["default"])  # takes the high one
    await claim(store, routes=["default"])  # and the first normal one

    positions = [await store.jobs.position(await store.jobs.get(job.job_id))  # type: ignore[arg-type]
                 for job in jobs]  # fmt: skip

    assert positions == [None, 0, 1, 2, None]


async def test_queued_record_has_no_ttl_and_terminal_record_gets_its_own(
    store: Store, redis_client: aioredis.Redis
) -> None:
    await store.ensure_groups()
    done, waiting = new_job(), new_job()
    for job in (done, waiting):
        await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)

    taken = await claim(store, routes=["default"], slots=4, lease=LEASE)
    assert taken is not None
    assert taken.job_id == done.job_id
    assert await redis_client.ttl(store.keys.job(done.job_id)) == -1
    assert await store.claims.finish(taken, JobStatus.COMPLETED, consumer="c1",
                                     updates={"completed_at": time.time()})  # fmt: skip

    assert 590 <= await redis_client.ttl(store.keys.job(done.job_id)) <= 600
    assert await redis_client.ttl(store.keys.job(waiting.job_id)) == -1


async def test_lifecycle_guard_keeps_a_terminal_status_and_never_moves_backwards(
    store: Store,
) -> None:
    await store.ensure_groups()
    job = new_job()
    await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    taken = await claim(store, routes=["default"], slots=4, lease=LEASE)
    assert taken is not None
    assert (await store.jobs.get(job.job_id)).status is JobStatus.PROCESSING  # type: ignore[union-attr]

    assert await store.claims.finish(taken, JobStatus.COMPLETED, consumer="c1", updates={})
    assert await store.jobs.cancel(job.job_id, now=time.time()) is None
    call = scripts.finish(
        record=store.keys.job(job.job_id), slots_key=store.keys.slots("amdpve"),
        ends=store.keys.ends("amdpve"), events=store.keys.events(job.job_id),
        held=Held(taken.stream, GROUP, "c1", taken.entry.entry_id, job.job_id),
        channel=store.keys.done_channel, change=Change(JobStatus.DEAD, 600),
    )  # fmt: skip
    assert not await Scripts(store.redis).run(call)  # no longer held: refused
    assert (await store.jobs.get(job.job_id)).status is JobStatus.COMPLETED  # type: ignore[union-attr]


async def test_take_starts_only_a_queued_job_and_drops_a_stale_entry(
    store: Store, redis_client: aioredis.Redis
) -> None:
    """TAKE is the guard between a waiting entry and running it: a cancelled job never runs."""
    await store.ensure_groups()
    job = new_job()
    await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    (waiting,) = await store.claims.peek(["default"], window=8)
    await redis_client.hset(store.keys.job(job.job_id), "status", "cancelled")

    taken = await store.claims.take_entry(waiting, gpu="amdpve", slots=4, consumer="c1",
                                          lease=LEASE)  # fmt: skip

    assert taken is TakeRefused.GONE
    assert await store.overview.in_flight() == 0, "nothing runs"
    assert await redis_client.xlen(waiting.stream) == 0, "the stale entry is gone"
    assert (await store.overview.depths())[job.priority] == 0, "and counted out"
    assert (await store.jobs.get(job.job_id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_batch_entry_planned_before_interactive_work_arrived_is_not_taken_before_it(
    store: Store, redis_client: aioredis.Redis
) -> None:
    """Batch fills idle capacity only, even when an interactive job lands between PEEK and
    TAKE: the take is refused, the batch entry stays in line, and goes after the job."""
    await store.ensure_groups()
    batch_job = replace(new_job(), priority=Priority.BATCH)
    batch_stream, counter = (
        store.keys.stream(Priority.BATCH, "default"),
        Counter.of(Priority.BATCH, "default"),
    )
    await redis_client.xadd(batch_stream, {"job_id": batch_job.job_id, "payload": b"{}"})
    await redis_client.hset(store.keys.job(batch_job.job_id), mapping={"status": "queued"})
    for field in (counter.entered, Counter.everywhere().entered):
        await redis_client.hincrby(store.keys.counts, field, 1)
    (planned,) = await store.claims.peek(["default"], window=8)
    interactive = new_job(priority=Priority.LOW)
    await store.submissions.enqueue(interactive, ceiling=40, everywhere_ceiling=10_000)

    def take(waiting: WaitingEntry) -> Awaitable[TakenJob | TakeRefused]:
        return store.claims.take_entry(waiting, gpu="amdpve", slots=4, consumer="c1",
                                       lease=LEASE)  # fmt: skip

    assert await take(planned) is TakeRefused.OUTRANKED
    assert await redis_client.xlen(batch_stream) == 1, "the batch entry stays in line"
    (low,) = [
        w for w in await store.claims.peek(["default"], window=8) if w.priority is Priority.LOW
    ]
    assert isinstance(await take(low), TakenJob)
    assert isinstance(await take(planned), TakenJob), "with nothing interactive waiting, it goes"


@pytest.mark.parametrize(
    ("taker", "also_waiting", "expected"),
    [
        ("c1", None, "taken"),  # the holder: its answered job's slot goes to the follow-on
        ("c2", None, TakeRefused.GPU_FULL),  # not the holder: that slot is not its to give
        ("c1", Priority.HIGH, TakeRefused.OUTRANKED),  # arrived after the plan: plan again
        ("c1", Priority.LOW, "taken"),
    ],
)
async def test_a_follow_on_takes_the_answered_jobs_slot_only_for_its_holder_and_class(
    store: Store, redis_client: aioredis.Redis, taker: str, also_waiting: Priority | None,
    expected: TakeRefused | str,
) -> None:  # fmt: skip
    await store.ensure_groups()
    for job in (new_job(), new_job()):
        await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    answered = await claim(store, routes=["default"], slots=1)  # c1 holds the only slot
    assert answered is not None
    (planned,) = await store.claims.peek(["default"], window=8)
    if also_waiting is not None:
        await store.submissions.enqueue(new_job(priority=also_waiting), ceiling=40,
                                        everywhere_ceiling=10_000)  # fmt: skip

    taken = await store.claims.take_entry(planned, gpu="amdpve", slots=1, consumer=taker,
                                          lease=LEASE, replacing=answered)  # fmt: skip

    slot_holders = await redis_client.zrange(store.keys.slots("amdpve"), 0, -1)
    if expected == "taken":
        assert isinstance(taken, TakenJob)
        assert slot_holders == [planned.job_id.encode()], "the slot changed hands"
    else:
        assert taken is expected
        assert slot_holders == [answered.job_id.encode()], "the answered job keeps its slot"


async def test_cancel_queued_removes_the_entry_so_it_never_runs(store: Store) -> None:
    await store.ensure_groups()
    job = new_job()
    await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)

    assert await store.jobs.cancel(job.job_id, now=time.time()) is JobStatus.QUEUED
    assert await store.jobs.cancel(job.job_id, now=time.time()) is None

    assert await store.redis.xlen(store.keys.stream(job.priority, job.route)) == 0
    assert await claim(store, routes=["default"]) is None
    assert (await store.jobs.get(job.job_id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def dead_letter(store: Store, job: NewJob) -> str:
    """Run `job` to a dead end as the engine would."""
    taken = await claim(store, routes=[job.route], slots=4, lease=LEASE)
    assert taken is not None
    assert taken.job_id == job.job_id
    dlq_id = await store.claims.dead_letter(
        replace(taken, attempts=4), consumer="c1", reason="retries_exhausted", now=time.time(),
        error=ErrorInfo(message="GPU said no", type="gpu_error", gpu_status=500),
    )  # fmt: skip
    assert dlq_id is not None
    return dlq_id


async def test_dead_letter_records_reason_and_deletes_the_handled_entry(store: Store) -> None:
    await store.ensure_groups()
    job = new_job(route="light")
    await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)

    await dead_letter(store, job)

    [entry] = await store.dlq.entries(limit=10)
    assert (entry.job_id, entry.reason, entry.attempts) == (job.job_id, "retries_exhausted", 4)
    assert entry.last_error is not None
    assert entry.last_error.gpu_status == 500
    record = await store.jobs.get(job.job_id)
    assert record is not None
    assert (record.status, record.reason) == (JobStatus.DEAD, "retries_exhausted")
    assert await store.redis.xlen(store.keys.stream(job.priority, job.route)) == 0
    assert await store.overview.in_flight() == 0


async def test_dlq_retry_called_twice_at_once_requeues_exactly_once(store: Store) -> None:
    await store.ensure_groups()
    job = new_job(route="heavy")
    await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    dlq_id = await dead_letter(store, job)

    results = await asyncio.gather(
        *(store.dlq.retry(dlq_id, new_job_id=new_job_id(), now=time.time()) for _ in range(10))
    )

    assert [result for result in results if result] == [job.job_id]
    assert await store.overview.depths() == {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 0}
    assert await store.dlq.length() == 0
    old = await store.jobs.get(job.job_id)
    assert old is not None
    assert old.retried_as is not None
    new = await store.jobs.get(old.retried_as)
    assert new is not None
    assert (new.status, new.retry_of, new.route) == (JobStatus.QUEUED, job.job_id, "heavy")


async def test_dlq_move_costs_the_same_with_a_long_queue(store: Store) -> None:
    """The DLQ move is one XADD: it reads nothing proportional to the queue."""
    await store.ensure_groups()
    target = new_job()
    await store.submissions.enqueue(target, ceiling=40, everywhere_ceiling=10_000)
    pipe = store.redis.pipeline(transaction=False)
    for _ in range(10_000):
        pipe.xadd(store.keys.stream(Priority.NORMAL, "default"), {"job_id": "filler"})
    await pipe.execute()
    taken = await claim(store, routes=["default"], slots=4, lease=LEASE)
    assert taken is not None
    await store.redis.config_resetstat()

    await store.claims.dead_letter(
        taken, consumer="c1", reason="poison", error=None, now=time.time()
    )

    stats = await store.redis.info("commandstats")
    assert not {"cmdstat_xrange", "cmdstat_xrevrange", "cmdstat_xread", "cmdstat_scan"} & set(stats)
    assert stats["cmdstat_xadd"]["calls"] == 2  # the DLQ entry and the job's "dead" event


async def test_dlq_unknown_or_malformed_entry_is_not_found(store: Store) -> None:
    assert await store.dlq.retry("1-1", new_job_id=new_job_id(), now=0) is None
    assert await store.dlq.retry("not-an-id", new_job_id=new_job_id(), now=0) is None
    assert not await store.dlq.discard("zzz")


async def test_dispatched_total_counts_entries_delivered_to_consumers(store: Store) -> None:
    await store.ensure_groups()
    for route in ("default", "light", "default"):
        await store.submissions.enqueue(new_job(route=route), ceiling=40, everywhere_ceiling=10_000)

    before = await store.overview.dispatched_total()
    await claim(store, routes=["default", "light"], slots=4, lease=LEASE)
    await claim(store, routes=["default", "light"], slots=4, lease=LEASE)

    assert (before, await store.overview.dispatched_total()) == (0, 2)


@pytest.mark.parametrize(
    ("state", "probe", "takes"),
    [("closed", False, True), ("open", False, False), ("open", True, False),
     ("half_open", False, False), ("half_open", True, True)],
)  # fmt: skip
async def test_take_rereads_the_breaker_so_an_open_gpu_gets_nothing(
    store: Store, state: str, probe: bool, takes: bool
) -> None:
    await store.ensure_groups()
    await store.submissions.enqueue(new_job(), ceiling=40, everywhere_ceiling=10_000)
    breaker = Breaker(BreakerState(state), failures=3, opened_at=time.time(),
                      probe_deadline=time.time() + 60)  # fmt: skip
    assert await store.breakers.compare_and_set("amdpve", breaker, version="0")

    taken = await claim(store, routes=["default"], slots=4, lease=LEASE, probe=probe)

    assert (taken is not None) is takes


async def test_take_recreates_lost_consumer_groups(store: Store) -> None:
    await store.ensure_groups()
    job = new_job()
    await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    await store.redis.xgroup_destroy(store.keys.running, GROUP)

    taken = await claim(store, routes=["default"], slots=4, lease=LEASE)

    assert taken is not None
    assert taken.job_id == job.job_id


async def test_renew_restores_a_slot_lease_that_expired_meanwhile(store: Store) -> None:
    await store.ensure_groups()
    await store.submissions.enqueue(new_job(), ceiling=40, everywhere_ceiling=10_000)
    short = Lease(lease_ms=50, aging_ms=30_000)
    taken = await claim(store, routes=["default"], slots=1, lease=short)
    assert taken is not None
    await asyncio.sleep(0.1)
    await store.redis.zremrangebyscore(store.keys.slots("amdpve"), "-inf", "+inf")  # as TAKE would

    assert await store.claims.renew(taken, consumer="c1", lease=LEASE)
    assert await store.claims.slots_in_use(["amdpve"], now=time.time()) == {"amdpve": 1}


async def test_cancel_after_a_retry_removes_the_current_entry(store: Store) -> None:
    await store.ensure_groups()
    job = new_job()
    await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    taken = await claim(store, routes=["default"], slots=4, lease=LEASE)
    assert taken is not None
    await store.claims.retry_later(taken, consumer="c1", due_ms=0, updates={"attempts": 1})
    await store.claims.move_due(now_ms=int(time.time() * 1000))

    assert await store.jobs.cancel(job.job_id, now=time.time()) is JobStatus.QUEUED
    assert await store.overview.depths() == {Priority.HIGH: 0, Priority.NORMAL: 0, Priority.LOW: 0}


async def test_take_never_ages_a_batch_request_above_interactive_work(store: Store) -> None:
    old_batch = new_job_id()  # fed as the batch runner feeds a request, before the low job
    await store.redis.xadd(store.keys.stream(Priority.BATCH, "default"), {"job_id": old_batch})
    await store.redis.hset(store.keys.job(old_batch), mapping={"status": "queued"})
    new_low = new_job(priority=Priority.LOW)
    await store.submissions.enqueue(new_low, ceiling=40, everywhere_ceiling=10_000)

    taken = await store.claims.take("amdpve", slots=4, routes=["default"], consumer="c",
                                    lease=Lease(lease_ms=1000, aging_ms=0))  # fmt: skip

    assert taken is not None
    assert taken.job_id == new_low.job_id, "the low job, though the batch request aged"


async def test_enqueue_stores_defaults_by_leaving_them_out(store: Store) -> None:
    job = new_job()
    await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=100)
    record = cast(dict[bytes, bytes], await store.redis.hgetall(store.keys.job(job.job_id)))
    entry = await stored_entry(store, job)
    assert set(entry.fields) == {"job_id"}  # default headers and path: no field (nor payload)
    assert b"attempts" not in record
    assert b"owner" not in record, "the anonymous owner is the default"
    assert b"priority" not in record, "so is normal priority"
    assert record[b"created_ms"].isdigit()  # whole milliseconds, kept as an integer
    stored = await store.jobs.get(job.job_id)
    assert stored is not None
    assert stored.attempts == 0
    assert stored.owner == ANONYMOUS
    assert stored.priority is Priority.NORMAL
    assert stored.created_at == pytest.approx(job.created_at, abs=0.001)
    assert (await stored_entry(store, job)).headers == {}


async def test_enqueue_stores_a_callers_owner(store: Store) -> None:
    job = replace(new_job(), owner="f" * 64)
    await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=100)

    stored = await store.jobs.get(job.job_id)

    assert stored is not None
    assert stored.owner == "f" * 64


async def test_enqueue_keeps_headers_other_than_the_defaults(store: Store) -> None:
    headers = {
        "content-type": "text/plain",
        "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    }
    job = replace(new_job(), headers=headers, path="/v1/completions")
    await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=100)
    entry = await stored_entry(store, job)
    assert (entry.headers, entry.path) == (headers, "/v1/completions")


async def test_records_and_entries_of_the_older_format_still_read(store: Store) -> None:
    job = new_job()
    stream, record = store.keys.stream(job.priority, job.route), store.keys.job(job.job_id)
    headers = '{"content-type": "application/json"}'
    fields = {"job_id": job.job_id, "payload": job.payload, "headers": headers}
    entry_id = await store.redis.xadd(stream, fields)  # type: ignore[arg-type]
    await store.redis.hset(record, mapping={
        "status": "queued", "route": job.route, "priority": job.priority.value, "attempts": 0,
        "created_at": "1796196991.7318034", "entry": entry_id, "seq": 1, "owner": "anonymous",
    })  # fmt: skip
    stored = await store.jobs.get(job.job_id)
    assert stored is not None
    assert (stored.attempts, stored.created_at, stored.owner) == (0, 1796196991.7318034,
                                                                  "anonymous")  # fmt: skip
    assert (await stored_entry(store, job)).headers == {"content-type": "application/json"}


async def stored_entry(store: Store, job: NewJob) -> StreamEntry:
    """The job's stream entry as the store decodes it (the only entry of its stream here)."""
    stream = store.keys.stream(job.priority, job.route)
    [(entry_id, raw)] = cast(
        list[tuple[bytes, dict[bytes, bytes]]], await store.redis.xrange(stream)
    )
    return entry_from_raw(entry_id, raw)


async def test_dispatch_view_reads_the_window_leases_with_their_ends_and_breakers(
    store: Store,
) -> None:
    first, second = new_job(), new_job()
    for job in (first, second):
        await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=10_000)
    (waiting, _) = (await store.claims.dispatch_view(["default"], [], window=8)).waiting
    taken = await store.claims.take_entry(waiting, gpu="amdpve", slots=4, consumer="c1",
                                          lease=LEASE, predicted_end=12_345.678)  # fmt: skip
    assert isinstance(taken, TakenJob)
    breaker = Breaker(state=BreakerState.OPEN, failures=3, opened_at=time.time(), reason="x")
    assert await store.breakers.compare_and_set("llmgpu", breaker, version="0")

    view = await store.claims.dispatch_view(["default"], ["amdpve", "llmgpu"], window=8)

    assert [entry.job_id for entry in view.waiting] == [second.job_id]
    assert view.running == {"amdpve": [12_345.678], "llmgpu": []}
    assert view.breakers["llmgpu"][0].state is BreakerState.OPEN
    assert view.breakers["amdpve"][0] == Breaker()
