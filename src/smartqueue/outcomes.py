"""Recording what became of a job the engine ran: completed, retried later, dead, released.

Each outcome is one atomic store step that also frees the job's slot (and, for a batch
request, keeps its output or error line with its batch); what the GPU did is told to its
shared circuit breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TypeVar

from smartqueue.batches import error_line, output_line
from smartqueue.breaker import Breaker, BreakerPolicy, BreakerState, on_failure, on_success
from smartqueue.config import Settings
from smartqueue.errors import StoreUnavailable
from smartqueue.gpu_client import GpuAnswer, GpuFailure
from smartqueue.logs import traced
from smartqueue.metrics import Metrics
from smartqueue.models import DeadReason, ErrorInfo, JobStatus, Priority
from smartqueue.openai_format import usage_tokens
from smartqueue.policy import (
    Failure,
    RetryLater,
    RetryPolicy,
    counts_against_gpu,
    decide_failure,
)
from smartqueue.queue import ExpiredJob, StoredResult, TakenJob
from smartqueue.store import Store
from smartqueue.store.scripts import Arg
from smartqueue.watch import JobWatch

log = logging.getLogger(__name__)

T = TypeVar("T")
COMMIT_RETRY_FIRST_S = 0.1
COMMIT_RETRY_MAX_S = 2.0

# A job that died on the GPU's own final answer keeps it as its result (the front door relays it).
GPU_ANSWER_KEPT = frozenset({DeadReason.NON_RETRYABLE, DeadReason.RESULT_TOO_LARGE})


@dataclass(frozen=True)
class Dispatch:
    """A taken job, whether it is its GPU's half-open probe, and the breaker seen at take."""

    job: TakenJob
    probe: bool
    breaker_seen: Breaker


def job_fields(job: TakenJob) -> dict[str, object]:
    """What every log line about a taken job carries: ids, route, GPU and the client's trace."""
    return traced({"job_id": job.job_id, "route": job.route, "priority": job.priority.value,
                   "gpu": job.gpu}, job.entry.headers)  # fmt: skip


class Aborted(Enum):
    """Why a GPU call ended without an outcome to record."""

    CANCELLED = "cancelled"  # the job was cancelled while it ran
    CLAIM_LOST = "claim_lost"  # another consumer took the job over


class OutcomeRecorder:
    """Commits outcomes for the consumers and the maintenance task of one replica."""

    def __init__(
        self, settings: Settings, *, store: Store, metrics: Metrics, breaker_policy: BreakerPolicy,
        watch: JobWatch | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.watch = watch
        self.breaker_policy = breaker_policy
        self.retry_policy = RetryPolicy(settings.max_retries, settings.retry_base_s,
                                        settings.retry_cap_s)  # fmt: skip

    async def record(
        self, dispatch: Dispatch, outcome: GpuAnswer | GpuFailure | Aborted, consumer: str
    ) -> None:
        """Commit whatever the GPU call came to."""
        if isinstance(outcome, Aborted):
            await self.aborted(dispatch, outcome, consumer)
        elif isinstance(outcome, GpuAnswer):
            await self.complete(dispatch, outcome, consumer)
        else:
            await self.fail(dispatch, outcome, consumer)

    async def aborted(self, dispatch: Dispatch, why: Aborted, consumer: str) -> None:
        """A call stopped without an outcome: hand back what is ours, free a probe claim."""
        job = dispatch.job
        if why is Aborted.CANCELLED:  # the job is cancelled: only its entry and slot are left
            await self.store.claims.finish(job, JobStatus.CANCELLED, consumer=consumer,
                                           updates={})  # fmt: skip
        if dispatch.probe:  # the GPU was not judged: let the next probe go soon
            await self.change_breaker(job.gpu, cancel_probe)
        log.info("aborted", extra={**job_fields(job), "why": why.value})

    async def complete(self, dispatch: Dispatch, answer: GpuAnswer, consumer: str) -> None:
        """The GPU answered: completed with its answer; a probe's success closes the breaker."""
        job, completed_at = dispatch.job, time.time()
        updates: dict[str, Arg] = {"result": answer.body, "result_status": answer.status,
                   "result_content_type": answer.content_type, "completed_at": completed_at,
                   "attempts": job.attempts + 1}  # fmt: skip
        line = None
        if custom_id := batch_custom_id(job):  # the answer lives in the batch's line alone
            del updates["result"]
            line = ("completed", output_line(job_id=job.job_id, custom_id=custom_id,
                                             status=answer.status, body=answer.body))  # fmt: skip
        committed = await self.committing(lambda: self.store.claims.finish(
            job, JobStatus.COMPLETED, consumer=consumer, updates=updates, line=line))  # fmt: skip
        if committed:
            self._hand_over(job, answer)
            self._completed(job, answer, completed_at=completed_at)
        self._count(JobStatus.COMPLETED if committed else None, "ok")
        if dispatch.breaker_seen != Breaker() or dispatch.probe:
            await self.change_breaker(job.gpu, on_success)

    def _hand_over(self, job: TakenJob, answer: GpuAnswer) -> None:
        """A committed answer goes straight to a request held for it on this replica."""
        hold = self.watch.local_hold(job.job_id) if self.watch is not None else None
        if hold is not None:
            hold.complete(StoredResult(answer.status, answer.content_type, answer.body))

    def _completed(self, job: TakenJob, answer: GpuAnswer, *, completed_at: float) -> None:
        duration_s = max(0.0, completed_at - job.created_at)
        self.metrics.job_duration.labels(job.route, job.priority.value).observe(duration_s)
        if not log.isEnabledFor(logging.INFO):  # the token count parses the whole answer
            return
        tokens = usage_tokens(answer.body, streamed="event-stream" in answer.content_type)
        fields = {"duration_s": round(duration_s, 3), "status_code": answer.status,
                  "tokens": tokens or None}  # fmt: skip
        log.info("completed", extra={**job_fields(job), **fields})

    async def fail(self, dispatch: Dispatch, failure: GpuFailure, consumer: str) -> None:
        """The call failed: tell the breaker, then dead or retry later (policy.decide_failure)."""
        job = dispatch.job
        await self._judge_gpu(dispatch, failure)
        error = ErrorInfo(message=failure.message, type="gpu_error", code=failure.failure.value,
                          gpu_status=failure.status)  # fmt: skip
        log.warning("gpu call failed", extra={**job_fields(job), "error": failure.message})
        verdict = decide_failure(
            failure.failure, failure.status, attempts=job.attempts,
            waited_s=time.time() - job.created_at, max_wait_s=self.settings.max_wait_s,
            retry=self.retry_policy, retry_after_s=failure.retry_after_s, jitter=random.random(),
        )  # fmt: skip
        if isinstance(verdict, RetryLater):
            await self.retry(job, consumer, delay_s=verdict.delay_s, attempts=verdict.attempts,
                             error=error)  # fmt: skip
        elif verdict.reason is DeadReason.EXPIRED:
            error = error.model_copy(update={"type": "expired"})
            await self.dead(job, consumer, verdict.reason, error, attempts=verdict.attempts)
        else:
            kept = failure if verdict.reason in GPU_ANSWER_KEPT else None
            await self.dead(job, consumer, verdict.reason, error, attempts=verdict.attempts,
                            answer=kept)  # fmt: skip

    async def _judge_gpu(self, dispatch: Dispatch, failure: GpuFailure) -> None:
        """Tell the breaker: a failure that says the GPU is unwell, or a live GPU's answer."""
        gpu = dispatch.job.gpu
        if failure.failure is Failure.INVALID_REQUEST:  # nothing left: the GPU was not judged
            if dispatch.probe:
                await self.change_breaker(gpu, cancel_probe)
        elif counts_against_gpu(failure.failure, failure.status):
            now = time.time()
            await self.change_breaker(gpu, lambda breaker: on_failure(
                breaker, now=now, reason=failure.message, policy=self.breaker_policy
            ))  # fmt: skip
        elif dispatch.probe:
            await self.change_breaker(gpu, on_success)

    async def dead(
        self, job: TakenJob, consumer: str, reason: DeadReason, error: ErrorInfo, *,
        attempts: int, answer: GpuFailure | None = None,
    ) -> None:  # fmt: skip
        """Dead-letter the job (its GPU's own error kept as its result when there is one)."""
        kept = (answer.status, answer.body) if answer and answer.status and answer.body else None
        line = None
        if custom_id := batch_custom_id(job):  # failed for good: an error line, never a lost one
            line = ("failed", error_line(job_id=job.job_id, custom_id=custom_id,
                                         code=reason.value, message=error.message,
                                         answer=kept))  # fmt: skip
        now = time.time()
        dlq_id = await self.committing(lambda: self.store.claims.dead_letter(
            replace(job, attempts=attempts), consumer=consumer, reason=reason.value,
            error=error, now=now, answer=kept, line=line,
        ))  # fmt: skip
        self._count(JobStatus.DEAD if dlq_id else None, reason.value)
        if dlq_id:
            log.warning("dead", extra={**job_fields(job), "reason": reason.value,
                                       "attempts": attempts, "error": error.message})  # fmt: skip

    async def retry(
        self, job: TakenJob, consumer: str, *, delay_s: float, attempts: int, error: ErrorInfo
    ) -> None:
        """Put the job aside for `delay_s`, then it waits in its stream again."""
        due_ms = int((time.time() + delay_s) * 1000)
        updates: dict[str, Arg] = {"attempts": attempts, "error": error.model_dump_json()}
        await self.committing(lambda: self.store.claims.retry_later(
            job, consumer=consumer, due_ms=due_ms, updates=updates))  # fmt: skip
        log.info("retried", extra={**job_fields(job), "delay_s": round(delay_s, 3),
                                   "attempts": attempts, "error": error.message})  # fmt: skip

    async def release(self, job: TakenJob, consumer: str, why: str) -> None:
        """Hand a job back without using one of its tries (shutdown or reclaim)."""
        error = ErrorInfo(message=why, type="released")
        with contextlib.suppress(StoreUnavailable):
            await self.retry(job, consumer, delay_s=0, attempts=job.attempts, error=error)

    def expired(self, job: ExpiredJob) -> None:
        """A job waited past max_wait_s and went dead (the store already moved it)."""
        self._count(JobStatus.DEAD, DeadReason.EXPIRED.value)
        log.warning("expired", extra={"job_id": job.job_id, "route": job.route,
                                      "priority": job.priority.value,
                                      "reason": DeadReason.EXPIRED.value})  # fmt: skip

    async def committing(self, commit: Callable[[], Awaitable[T]]) -> T:
        """Run a commit, again and again while Redis is away, for up to `commit_retry_s`.

        Each commit step is safe to repeat (it finds its own mark), so a GPU's answer is not
        thrown away because a Redis restart dropped the connection mid-commit.
        """
        deadline = time.monotonic() + self.settings.commit_retry_s
        delay_s = COMMIT_RETRY_FIRST_S
        while True:
            try:
                return await commit()
            except StoreUnavailable:
                if time.monotonic() + delay_s > deadline:
                    raise
            log.warning("commit retried", extra={"delay_s": delay_s})
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, COMMIT_RETRY_MAX_S)

    def _count(self, status: JobStatus | None, reason: str) -> None:
        if status is not None:
            self.metrics.outcomes.labels(status.value, reason).inc()

    async def change_breaker(self, gpu: str, change: Callable[[Breaker], Breaker]) -> None:
        """Apply `change` to a GPU's shared breaker; log a change of state."""
        changed = await self.store.breakers.change(gpu, change)
        if changed is None:
            return
        before, after = changed
        if after.state != before.state:
            log.warning("breaker", extra={"gpu": gpu, "state": after.state,
                                          "reason": after.reason})  # fmt: skip


def batch_custom_id(job: TakenJob) -> str | None:
    """The custom_id of a batch request; None for any other job."""
    if job.priority is not Priority.BATCH:
        return None
    return job.entry.fields.get("custom_id") or None


def cancel_probe(breaker: Breaker) -> Breaker:
    """Give back an unused half-open claim: open again, ready for the next probe."""
    if breaker.state is not BreakerState.HALF_OPEN:
        return breaker
    return replace(breaker, state=BreakerState.OPEN, probe_deadline=None)
