"""A commit run twice (its reply lost to a dropped connection) reports success and applies once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import pytest

from smartqueue.config import FleetConfig, Settings
from smartqueue.models import JobStatus, Priority, new_job_id
from smartqueue.queue import Lease, NewJob, TakenJob
from smartqueue.store import Store
from smartqueue.store.scripts import Arg
from tests.support.redis_server import RedisServer

LEASE = Lease(lease_ms=30_000, aging_ms=30_000)


@pytest.fixture
async def store(
    redis_server: RedisServer, key_prefix: str, local_fleet: FleetConfig
) -> AsyncIterator[Store]:
    """A store on the test server with its own prefix and groups."""
    store = Store.connect(Settings(redis_url=redis_server.url, key_prefix=key_prefix),
                          routes=local_fleet.route_names)  # fmt: skip
    await store.ensure_groups()
    yield store
    await store.aclose()


async def taken(store: Store) -> TakenJob:
    """A fresh job, taken by consumer c1 for GPU amdpve."""
    job = NewJob(job_id=new_job_id(), route="default", priority=Priority.NORMAL,
                 payload=b"{}", headers={}, created_at=time.time())  # fmt: skip
    await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=1000)
    took = await store.claims.take("amdpve", slots=4, routes=["default"], consumer="c1",
                                   lease=LEASE)  # fmt: skip
    assert took is not None
    return took


async def test_finish_run_again_by_its_consumer_reports_success_and_commits_once(
    store: Store,
) -> None:
    job = await taken(store)
    updates: dict[str, Arg] = {
        "result": b"{}",
        "result_status": 200,
        "result_content_type": "application/json",
    }

    first = await store.claims.finish(job, JobStatus.COMPLETED, consumer="c1", updates=updates)
    again = await store.claims.finish(job, JobStatus.COMPLETED, consumer="c1", updates=updates)
    events = cast(list[tuple[bytes, dict[bytes, bytes]]],
                  await store.redis.xrange(store.keys.events(job.job_id)))  # fmt: skip

    assert (first, again) == (True, True)
    assert [fields[b"status"] for _, fields in events].count(b"completed") == 1


async def test_finish_of_another_entry_after_the_job_completed_is_refused(store: Store) -> None:
    job = await taken(store)
    await store.claims.finish(job, JobStatus.COMPLETED, consumer="c1", updates={})
    other = replace(job, entry=replace(job.entry, entry_id="1-1"))

    late = await store.claims.finish(other, JobStatus.COMPLETED, consumer="c1", updates={})

    assert late is False


async def test_dead_letter_run_again_returns_the_same_entry_and_adds_no_second(
    store: Store,
) -> None:
    job = await taken(store)

    first = await store.claims.dead_letter(job, consumer="c1", reason="poison", error=None,
                                           now=time.time())  # fmt: skip
    again = await store.claims.dead_letter(job, consumer="c1", reason="poison", error=None,
                                           now=time.time())  # fmt: skip

    assert first is not None
    assert again == first
    assert await store.dlq.length() == 1


async def test_retry_later_run_again_reports_success_and_schedules_once(store: Store) -> None:
    job = await taken(store)
    due_ms = int(time.time() * 1000) + 60_000

    first = await store.claims.retry_later(job, consumer="c1", due_ms=due_ms, updates={})
    again = await store.claims.retry_later(job, consumer="c1", due_ms=due_ms, updates={})

    assert (first, again) == (True, True)
    assert await store.redis.zcard(store.keys.delayed) == 1


async def test_enqueue_run_again_with_the_same_job_id_stores_one_job(store: Store) -> None:
    job = NewJob(job_id=new_job_id(), route="default", priority=Priority.NORMAL,
                 payload=b"{}", headers={}, created_at=time.time())  # fmt: skip

    first = await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=1000)
    again = await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=1000)
    length = await store.redis.xlen(store.keys.stream(Priority.NORMAL, "default"))

    assert (first.duplicate, again.duplicate, again.job_id) == (False, True, job.job_id)
    assert length == 1
