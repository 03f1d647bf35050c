"""Job records: reading a job, its result and its place in line; cancelling it."""

from __future__ import annotations

from typing import cast

from smartqueue.models import DISPATCH_ORDER, JobStatus, Priority
from smartqueue.queue import StoredJob, StoredResult
from smartqueue.store import scripts
from smartqueue.store.codec import priority_of, stored_job, stored_result, text
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.keys import Counter


class Jobs:
    """One job at a time, by id."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def get(self, job_id: str) -> StoredJob | None:
        """A job's record; None when unknown or expired."""
        reply = await self.context.redis.hgetall(self.context.keys.job(job_id))
        raw = cast(dict[bytes, bytes], reply)
        if not raw or b"status" not in raw:
            return None
        return stored_job(job_id, raw)

    @translate_errors
    async def result(self, job_id: str) -> StoredResult | None:
        """The GPU's answer exactly as stored; None if there is none."""
        names = ["result_status", "result_content_type", "result"]
        raw = await self.context.redis.hmget(self.context.keys.job(job_id), names)
        status, content_type, body = cast(list[bytes | None], raw)
        fields = {"result_status": text(status) or "", "result_content_type": text(content_type)}
        return stored_result({k: v for k, v in fields.items() if v}, body)

    @translate_errors
    async def position(self, job: StoredJob) -> int | None:
        """Jobs of its route that run before a queued job, in O(1); None unless queued.

        Within its own stream: the entries that entered before it minus all that left (exact
        while jobs leave in order; a job that left from behind it makes it an underestimate).
        """
        if job.status is not JobStatus.QUEUED or job.seq is None:
            return None
        rank = DISPATCH_ORDER.index(job.priority)
        counters = [Counter.of(priority, job.route) for priority in DISPATCH_ORDER[: rank + 1]]
        fields = [name for counter in counters for name in (counter.entered, counter.left)]
        raw = await self.context.redis.hmget(self.context.keys.counts, fields)
        values = [int(value or 0) for value in cast(list[bytes | None], raw)]
        higher = sum(values[i] - values[i + 1] for i in range(0, len(values) - 2, 2))
        own_depth = values[-2] - values[-1]
        own = min(max(job.seq - 1 - values[-1], 0), max(own_depth - 1, 0))
        return higher + own

    @translate_errors
    async def cancel(self, job_id: str, *, now: float) -> JobStatus | None:
        """Cancel a job that has not ended; its status before, or None if it had ended.

        A batch request is cancelled only with its batch (its line must not go missing).
        """
        keys = self.context.keys
        raw = await self.context.redis.hmget(keys.job(job_id), ["priority", "route"])
        priority, route = (text(value) for value in cast(list[bytes | None], raw))
        if route is None or priority == Priority.BATCH.value:  # unknown, or a batch request
            return None
        stream_priority = priority_of(priority)
        change = self.context.change(
            JobStatus.CANCELLED, {"completed_at": now, "reason": "cancelled"}
        )
        call = scripts.cancel(
            record=keys.job(job_id), stream=keys.stream(stream_priority, route),
            delayed=keys.delayed, events=keys.events(job_id), counts=keys.counts,
            counter=Counter.of(stream_priority, route), job_id=job_id,
            channel=keys.done_channel, change=change,
        )  # fmt: skip
        previous = await self.context.scripts.run(call)
        return JobStatus(text(previous) or "") if previous else None
