"""A hypothesis state machine over the store against a real redis-server.

Rules: enqueue, take, complete, fail (retry later), dead-letter, consumer crash, reclaim (by a
reaper that hands the job back), move due retries, DLQ retry, cancel. After every step:
- every accepted job is in exactly one place: a live one in one stream entry or the delayed
  set; a dead one in the DLQ (until retried); an ended one nowhere (a cancelled running job
  keeps its entry until its holder lets go);
- a job's status never moves backwards: once it ended it never changes;
- a job has at most one result (one `completed` event).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import ClassVar, TypeVar, cast

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from smartqueue.config import Settings
from smartqueue.models import PRIORITY_ORDER, JobStatus, Priority
from smartqueue.queue import Lease, NewJob, TakenJob
from smartqueue.store import Store
from smartqueue.store.codec import RawEntries
from smartqueue.store.scripts import Arg
from tests.support.figures import Figures, report
from tests.support.redis_server import RedisServer

T = TypeVar("T")
LEASE = Lease(lease_ms=60_000, aging_ms=60_000)
CONSUMERS = ("c1", "c2")
ROUTES = ["default"]


class QueueMachine(RuleBasedStateMachine):
    """The store's job lifecycle under random operations, checked after every step."""

    redis_url = ""
    totals: ClassVar[dict[str, int]] = {}  # over every example run: the figures line

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        prefix = f"h{uuid.uuid4().hex[:10]}"
        self.store = Store.connect(Settings(redis_url=self.redis_url, key_prefix=prefix),
                                   routes=ROUTES)  # fmt: skip
        self.run(self.store.ensure_groups())
        self.accepted: set[str] = set()
        self.held: dict[str, tuple[TakenJob, str]] = {}
        self.ended: dict[str, JobStatus] = {}
        self.issued = 0

    def next_id(self) -> str:
        """Job ids in order (random ones would make hypothesis's draws differ between runs)."""
        self.issued += 1
        return f"job-{self.issued:06d}"

    def run(self, step: Awaitable[T]) -> T:
        """Run one store call to completion."""
        return self.loop.run_until_complete(step)

    def teardown(self) -> None:
        """Add this run's jobs to the totals, close the store and the loop."""
        for job_id in self.accepted:
            record = self.run(self.store.jobs.get(job_id))
            status = record.status.value if record else "lost"
            self.totals[status] = self.totals.get(status, 0) + 1
            most = self.run(self._completions(job_id))
            self.totals["max_results"] = max(self.totals.get("max_results", 0), most)
        self.totals["accepted"] = self.totals.get("accepted", 0) + len(self.accepted)
        self.run(self.store.aclose())
        self.loop.close()

    @rule(priority=st.sampled_from(PRIORITY_ORDER))  # interactive priorities (batch: its own path)
    def enqueue(self, priority: Priority) -> None:
        """A new job."""
        job = NewJob(job_id=self.next_id(), route="default", priority=priority, payload=b"{}",
                     headers={}, created_at=time.time())  # fmt: skip
        admission = self.run(self.store.submissions.enqueue(job, ceiling=1000,
                                                            everywhere_ceiling=10_000))  # fmt: skip
        assert admission.accepted
        self.accepted.add(job.job_id)

    @rule(consumer=st.sampled_from(CONSUMERS))
    def take(self, consumer: str) -> None:
        """A consumer takes the next job, if any."""
        job = self.run(self.store.claims.take("gpu", slots=1000, routes=ROUTES,
                                              consumer=consumer, lease=LEASE))  # fmt: skip
        if job is not None:
            self.held[job.job_id] = (job, consumer)

    def _pick(self, data: st.DataObject) -> tuple[TakenJob, str]:
        job_id = data.draw(st.sampled_from(sorted(self.held)))
        return self.held.pop(job_id)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        """The GPU answered: commit it (refused if the claim was reclaimed)."""
        job, consumer = self._pick(data)
        updates: dict[str, Arg] = {"result": b"{}", "result_status": 200,
                                   "completed_at": time.time()}  # fmt: skip
        self.run(self.store.claims.finish(job, JobStatus.COMPLETED, consumer=consumer,
                                          updates=updates))  # fmt: skip

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        """The call failed: retry later."""
        job, consumer = self._pick(data)
        self.run(self.store.claims.retry_later(job, consumer=consumer, due_ms=0, updates={}))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def dead_letter(self, data: st.DataObject) -> None:
        """The call failed for good: to the DLQ."""
        job, consumer = self._pick(data)
        self.run(self.store.claims.dead_letter(job, consumer=consumer, reason="non_retryable",
                                               error=None, now=time.time()))  # fmt: skip

    @rule(consumer=st.sampled_from(CONSUMERS))
    def crash(self, consumer: str) -> None:
        """A consumer dies: what it held stays pending in Redis, nobody commits it."""
        self.held = {job_id: held for job_id, held in self.held.items() if held[1] != consumer}

    @rule()
    def reclaim(self) -> None:
        """A reaper takes over every pending entry and hands each job back (live holders lose)."""
        stale = self.run(self.store.claims.reclaim(consumer="reaper", min_idle_ms=0))
        for job, _ in stale:
            self.run(self.store.claims.retry_later(job, consumer="reaper", due_ms=0, updates={}))

    @rule()
    def move_due(self) -> None:
        """Retries whose backoff is over go back to their stream."""
        self.run(self.store.claims.move_due(now_ms=int(time.time() * 1000) + 1))

    @rule()
    def dlq_retry(self) -> None:
        """The admin re-runs the oldest dead job."""
        entries = self.run(self.store.dlq.entries(limit=1))
        if entries:
            new_id = self.next_id()
            if self.run(self.store.dlq.retry(entries[0].id, new_job_id=new_id, now=time.time())):
                self.accepted.add(new_id)

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """The owner cancels a job."""
        job_id = data.draw(st.sampled_from(sorted(self.accepted)))
        self.run(self.store.jobs.cancel(job_id, now=time.time()))

    @invariant()
    def every_job_in_exactly_one_place_status_forward_one_result(self) -> None:
        """The three invariants, over every accepted job."""
        places = self.run(self._places())
        for job_id in self.accepted:
            record = self.run(self.store.jobs.get(job_id))
            assert record is not None, f"accepted job {job_id} lost"
            where = places.get(job_id, [])
            self._check_place(record.status, where, retried=record.retried_as is not None)
            self._check_forward(job_id, record.status)
            assert self.run(self._completions(job_id)) <= 1, f"{job_id} has two results"

    def _check_place(self, status: JobStatus, where: list[str], *, retried: bool) -> None:
        if not status.is_terminal:
            assert len(where) == 1, (status, where)
        elif status is JobStatus.DEAD:
            assert where == ([] if retried else ["dlq"]), (status, where)
        elif status is JobStatus.CANCELLED:
            assert where in ([], ["stream"]), (status, where)  # a running job's entry, for now
        else:
            assert where == [], (status, where)

    def _check_forward(self, job_id: str, status: JobStatus) -> None:
        if job_id in self.ended:
            assert status is self.ended[job_id], f"{job_id} moved from {self.ended[job_id]}"
        elif status.is_terminal:
            self.ended[job_id] = status

    async def _places(self) -> dict[str, list[str]]:
        keys, redis = self.store.keys, self.store.redis
        places: dict[str, list[str]] = {}
        streams = [keys.stream(priority, "default") for priority in PRIORITY_ORDER]
        for stream in [*streams, keys.running]:  # waiting, or taken and not yet handled
            for _, fields in cast(RawEntries, await redis.xrange(stream)):
                places.setdefault(fields[b"job_id"].decode(), []).append("stream")
        for member in cast(list[bytes], await redis.zrange(keys.delayed, 0, -1)):
            places.setdefault(member.decode(), []).append("delayed")
        for _, fields in cast(RawEntries, await redis.xrange(keys.dlq)):
            places.setdefault(fields[b"job_id"].decode(), []).append("dlq")
        return places

    async def _completions(self, job_id: str) -> int:
        events = cast(RawEntries, await self.store.redis.xrange(self.store.keys.events(job_id)))
        return sum(1 for _, fields in events if fields.get(b"status") == b"completed")


@pytest.mark.timeout(300)
def test_state_machine_store_keeps_its_invariants(redis_server: RedisServer) -> None:
    QueueMachine.redis_url = redis_server.url
    QueueMachine.totals = {}
    run_state_machine_as_test(QueueMachine, settings=settings(
        max_examples=100, stateful_step_count=50, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))  # fmt: skip
    totals = QueueMachine.totals
    report("hypothesis state machine (100 runs x 50 steps)", Figures(
        submitted=totals["accepted"], accepted=totals["accepted"],
        completed=totals.get("completed", 0), dead=totals.get("dead", 0),
        lost=totals.get("lost", 0), duplicate_gpu_calls=0,
        max_results_per_job=totals.get("max_results", 0),
        recovery_s=None))  # fmt: skip
