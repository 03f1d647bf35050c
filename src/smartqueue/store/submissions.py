"""Submissions: admission and enqueue in one atomic step."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from smartqueue.errors import OutcomeUnknown
from smartqueue.models import PRIORITY_ORDER
from smartqueue.queue import DEFAULT_PATH, Admission, NewJob, size_fields, stored_headers
from smartqueue.store import scripts
from smartqueue.store.codec import created_ms, stored_owner, stored_priority, text
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.keys import Counter

log = logging.getLogger(__name__)


def not_sent(error: BaseException) -> bool:
    """True when the command surely never reached Redis (the connection could not be made)."""
    if isinstance(error, ConnectionRefusedError):
        return True
    message = str(error)
    return isinstance(error, RedisConnectionError) and (
        "connecting to" in message or "No connection available" in message
    )


class Submissions:
    """Admitting new jobs."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def enqueue(self, job: NewJob, *, ceiling: int, everywhere_ceiling: int) -> Admission:
        """Admit and store a job in one atomic step (one round trip, O(1) in the routes).

        Refused when its route's depth is at `ceiling`, or all routes' at `everywhere_ceiling`.
        """
        keys, context = self.context.keys, self.context
        digest = job.idempotency_digest
        rank = PRIORITY_ORDER.index(job.priority)
        call = scripts.enqueue(
            stream=keys.stream(job.priority, job.route), record=keys.job(job.job_id),
            wake=keys.wake, counts=keys.counts,
            idempotency=keys.idempotency(digest) if digest else None, job_id=job.job_id,
            payload=job.payload, headers=stored_headers(job.headers), route=job.route,
            priority=stored_priority(job.priority), created_ms=created_ms(job.created_at),
            idempotency_ttl_s=context.idempotency_ttl_s,
            path="" if job.path == DEFAULT_PATH else job.path, ceiling=ceiling,
            everywhere_ceiling=everywhere_ceiling, counter=Counter.of(job.priority, job.route),
            route_counters=[(Counter.of(priority, job.route), index <= rank)
                            for index, priority in enumerate(PRIORITY_ORDER)],
            owner=stored_owner(job.owner), request_digest=job.request_digest,
            size=size_fields(job.prompt_tokens, job.max_tokens),
        )  # fmt: skip
        code, job_id, depth, position, refused_by = await self._run(call, job.job_id)
        return Admission(
            accepted=code in (1, 2),
            depth=int(depth),
            job_id=text(job_id) or None,
            duplicate=code == 2,
            position=int(position) if code == 1 else None,
            everywhere_full=text(refused_by) == "everywhere",
            key_reused=code == 3,
        )

    async def _run(self, call: scripts.ScriptCall, job_id: str) -> Any:
        """Run the enqueue step; a failure once the step may have reached Redis is unknown.

        Only a connection that could not be made proves nothing was applied; anything later
        (timeout, dropped connection) may have stored the job: OutcomeUnknown names its id.
        """
        try:
            return await self._applied(call, job_id)
        except (RedisError, OSError) as error:
            if not_sent(error):
                raise
            log.warning("enqueue outcome unknown", extra={"job_id": job_id,
                        "error": f"{type(error).__name__}: {error}"})  # fmt: skip
            raise OutcomeUnknown(
                f"the job store did not confirm job {job_id}; it may exist: retry with the "
                "same Idempotency-Key, or look at the Location",
                job_id=job_id,
            ) from None

    async def _applied(self, call: scripts.ScriptCall, job_id: str) -> Any:
        """The enqueue script's reply; with min replicas, only once WAIT confirms them.

        Short of them the job may or may not survive a failover: OutcomeUnknown (503 with
        Location), never an acceptance a failover can undo.
        """
        context = self.context
        if context.min_replicas == 0:
            return await context.scripts.run(call)
        done = await context.scripts.run_replicated(
            call, replicas=context.min_replicas, wait_ms=context.replica_wait_ms
        )
        written = int(done.reply[0]) in (1, 2)  # a refusal wrote nothing: nothing to confirm
        if written and (done.replicas < context.min_replicas or not done.trusted):
            held = text(done.reply[1]) or job_id
            raise OutcomeUnknown(
                f"the job was written, but {done.replicas} of {context.min_replicas} Redis "
                f"replicas confirmed it within {context.replica_wait_ms} ms: it may not survive "
                "a failover; look at Location or retry with the same Idempotency-Key",
                job_id=held,
            )
        return done.reply
