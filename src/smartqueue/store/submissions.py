"""Submissions: admission and enqueue in one atomic step."""

from __future__ import annotations

import json

from smartqueue.models import PRIORITY_ORDER
from smartqueue.queue import DEFAULT_PATH, Admission, NewJob
from smartqueue.store import scripts
from smartqueue.store.codec import text
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.keys import GROUP


class Submissions:
    """Admitting new jobs."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def enqueue(self, job: NewJob, *, ceiling: int) -> Admission:
        """Admit and store a job in one atomic step; refused when depth >= `ceiling`."""
        keys, context = self.context.keys, self.context
        streams = keys.streams(context.routes)
        before = PRIORITY_ORDER[: PRIORITY_ORDER.index(job.priority) + 1]
        digest = job.idempotency_digest
        call = scripts.enqueue(
            streams=streams, target=streams.index(keys.stream(job.priority, job.route)) + 1,
            record=keys.job(job.job_id), wake=keys.wake,
            idempotency=keys.idempotency(digest) if digest else None, group=GROUP,
            ceiling=ceiling, job_id=job.job_id, payload=job.payload,
            headers=json.dumps(job.headers), route=job.route, priority=job.priority.value,
            created_at=job.created_at, idempotency_ttl_s=context.idempotency_ttl_s,
            path="" if job.path == DEFAULT_PATH else job.path,
            ahead=[streams.index(keys.stream(p, job.route)) + 1 for p in before],
        )  # fmt: skip
        code, job_id, depth, position = await context.scripts.run(call)
        return Admission(
            accepted=code != 0,
            depth=int(depth),
            job_id=text(job_id) or None,
            duplicate=code == 2,
            position=int(position) if int(position) >= 0 else None,
        )
