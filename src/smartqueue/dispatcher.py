"""The consumer engine, on the app's event loop: read -> choose GPU -> claim slot -> call -> record.

Each consumer task loops: plan which GPU serves which routes (pure, from live probes, shared
slot counts and breakers), take the next job for the best GPU in one atomic step with a slot on
it, call the GPU while keeping the claim fresh, then commit the outcome (completed, retry later
with backoff, or dead). A maintenance task per replica moves due retries back to their streams,
expires jobs that waited too long, reclaims entries of consumers that died, and sends
heartbeats. Idle consumers block on a wake-up list that every enqueue pushes to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from smartqueue.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    Gate,
    gate,
    on_failure,
    on_success,
    start_probe,
)
from smartqueue.config import FleetConfig, Settings
from smartqueue.errors import StoreUnavailable
from smartqueue.fleet import FleetProber
from smartqueue.gpu_client import ChunkSink, GpuAnswer, GpuClient, GpuFailure, GpuOutcome
from smartqueue.metrics import Metrics
from smartqueue.models import ConsumerInfo, DeadReason, ErrorInfo, JobStatus
from smartqueue.policy import (
    Failure,
    RetryPolicy,
    counts_against_gpu,
    counts_as_attempt,
    is_retryable,
)
from smartqueue.scoring import GpuState, plan_dispatch
from smartqueue.stopping import wait_or_stop
from smartqueue.store import Arg, Lease, Store, TakenJob
from smartqueue.watch import JobWatch

log = logging.getLogger(__name__)


def replica_name() -> str:
    """This process's name among the replicas: host, pid and a random tag."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class ConsumerState:
    """What a local consumer is doing, for its heartbeats."""

    id: str
    replica: str
    state: str = "idle"
    current_job: str | None = None
    jobs_done: int = 0

    def info(self, now: float) -> ConsumerInfo:
        """The registry entry for this consumer."""
        return ConsumerInfo(id=self.id, replica=self.replica, state=self.state,
                            current_job=self.current_job, last_heartbeat=now,
                            jobs_done=self.jobs_done)  # fmt: skip


@dataclass(frozen=True)
class Dispatch:
    """A taken job, and whether it is its GPU's half-open probe."""

    job: TakenJob
    probe: bool
    breaker_seen: Breaker


class Dispatcher:
    """Runs the consumer tasks and the maintenance task of one replica."""

    def __init__(
        self,
        settings: Settings,
        fleet: FleetConfig,
        *,
        store: Store,
        gpu_client: GpuClient,
        prober: FleetProber,
        metrics: Metrics,
        watch: JobWatch,
    ) -> None:
        self.settings = settings
        self.fleet = fleet
        self.store = store
        self.gpu_client = gpu_client
        self.prober = prober
        self.metrics = metrics
        self.watch = watch
        self.replica = replica_name()
        self.stopping = asyncio.Event()
        count = settings.consumers
        if count is None:
            count = sum(gpu.slots for gpu in fleet.gpus)
        self.consumers = [ConsumerState(f"{self.replica}-c{i}", self.replica) for i in range(count)]
        self.lease = Lease(
            lease_ms=int(settings.lease_s * 1000), aging_ms=int(settings.priority_aging_s * 1000)
        )
        self.retry = RetryPolicy(settings.max_retries, settings.retry_base_s, settings.retry_cap_s)
        self.breaker_policy = BreakerPolicy(
            settings.breaker_failure_threshold,
            settings.breaker_recovery_s,
            probe_timeout_s=settings.job_timeout_s + settings.lease_s,
        )

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()`: prober, maintenance and every consumer task."""
        await self._ensure_groups()
        while not self.stopping.is_set():
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self.prober.run(self.stopping))
                    tasks.create_task(self._maintain())
                    for consumer in self.consumers:
                        tasks.create_task(self._consume(consumer))
            except Exception:  # a bug must not silently stop dispatch on this replica
                log.exception("engine failed; restarting it")
                await wait_or_stop(self.stopping, 1.0)

    def stop(self) -> None:
        """Stop taking jobs; running ones finish (the caller bounds the wait)."""
        self.stopping.set()

    async def _ensure_groups(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.store.ensure_groups()
                return
            except StoreUnavailable as error:
                log.warning("waiting for Redis", extra={"error": error.message})
                await wait_or_stop(self.stopping, 1.0)

    async def _consume(self, consumer: ConsumerState) -> None:
        while not self.stopping.is_set():
            try:
                dispatch = await self._next_job(consumer.id)
                if dispatch is None:
                    await self.store.wait_for_work(timeout_s=self.settings.idle_poll_s)
                else:
                    await self._run(dispatch, consumer)
            except StoreUnavailable as error:
                log.warning("store unavailable", extra={"consumer": consumer.id,
                                                        "error": error.message})  # fmt: skip
                await wait_or_stop(self.stopping, 1.0)
        with contextlib.suppress(StoreUnavailable):
            await self.store.forget_consumer(consumer.id)

    # --- choosing and taking -----------------------------------------------------------------

    async def gpu_states(self, now: float) -> tuple[list[GpuState], dict[str, tuple[Breaker, str]]]:
        """Every GPU as the planner sees it, and the breakers read with their versions."""
        names = [gpu.name for gpu in self.fleet.gpus]
        in_use = await self.store.slots_in_use(names, now=now)
        breakers = await self.store.breakers(names)
        states = [
            GpuState(gpu.name, gpu.slots, in_use[gpu.name],
                     gate(breakers[gpu.name][0], now=now, policy=self.breaker_policy) != Gate.DENY,
                     self.prober.snapshots.get(gpu.name))
            for gpu in self.fleet.gpus
        ]  # fmt: skip
        return states, breakers

    async def _next_job(self, consumer_id: str) -> Dispatch | None:
        now = time.time()
        states, breakers = await self.gpu_states(now)
        plan = plan_dispatch(self.fleet.routes, states, now=now, max_age_s=self.prober.max_age_s)
        for assignment in plan:
            breaker, version = breakers[assignment.gpu]
            probe = gate(breaker, now=now, policy=self.breaker_policy) is Gate.PROBE
            if probe and not await self.store.set_breaker(
                assignment.gpu, start_probe(breaker, now=now, policy=self.breaker_policy),
                version=version,
            ):  # fmt: skip
                continue
            job = await self.store.take(
                assignment.gpu, slots=self.fleet.gpu(assignment.gpu).slots,
                routes=assignment.routes, consumer=consumer_id, lease=self.lease, probe=probe,
            )  # fmt: skip
            if job is not None:
                return Dispatch(job, probe, breaker)
            if probe:
                await self._change_breaker(assignment.gpu, _cancel_probe)
        return None

    # --- running one job ---------------------------------------------------------------------

    async def _run(self, dispatch: Dispatch, consumer: ConsumerState) -> None:
        job = dispatch.job
        consumer.state, consumer.current_job = "running", job.job_id
        self.metrics.queue_wait.labels(job.priority.value).observe(time.time() - job.created_at)
        log.info("dispatch", extra={"job_id": job.job_id, "gpu": job.gpu, "probe": dispatch.probe})
        try:
            started = time.monotonic()
            outcome = await self._call_keeping_claim(job, consumer.id)
            label = "ok" if isinstance(outcome, GpuAnswer) else "failed"
            self.metrics.dispatch.labels(job.gpu, label).observe(time.monotonic() - started)
            await self._record(dispatch, outcome, consumer.id)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job, consumer.id, "the replica shut down"))
            raise
        finally:
            consumer.state, consumer.current_job = "idle", None
            consumer.jobs_done += 1

    async def _call_keeping_claim(self, job: TakenJob, consumer_id: str) -> GpuOutcome | Aborted:
        """The GPU's outcome, unless the job was cancelled or taken over meanwhile."""
        gpu = self.fleet.gpu(job.gpu)
        sink = self._chunk_sink(job.job_id)
        with self.watch.watching(job.job_id) as ended:
            call = asyncio.create_task(self.gpu_client.call(
                gpu, job.entry, deadline_s=self.settings.job_timeout_s, on_chunk=sink
            ))  # fmt: skip
            keeper = asyncio.create_task(self._keep_claim(job, consumer_id))
            cancelled = asyncio.create_task(ended.wait())
            try:
                await asyncio.wait({call, keeper, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (call, keeper, cancelled):
                    task.cancel()
                await asyncio.gather(call, keeper, cancelled, return_exceptions=True)
        return _outcome(call, cancelled_by_user=ended.is_set())

    def _chunk_sink(self, job_id: str) -> ChunkSink:
        async def append(chunk: bytes) -> None:
            await self.store.append_chunk(job_id, chunk)

        return append

    async def _keep_claim(self, job: TakenJob, consumer_id: str) -> None:
        """Renew the claim and the slot until cancelled; returns when the claim is lost."""
        interval_s = self.settings.lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            try:
                if not await self.store.renew(job, consumer=consumer_id, lease=self.lease):
                    log.warning("claim lost", extra={"job_id": job.job_id, "gpu": job.gpu})
                    return
            except StoreUnavailable:
                continue

    # --- recording outcomes ------------------------------------------------------------------

    async def _record(
        self, dispatch: Dispatch, outcome: GpuOutcome | Aborted, consumer: str
    ) -> None:
        if isinstance(outcome, Aborted):
            await self._aborted(dispatch, outcome, consumer)
            return
        if isinstance(outcome, GpuAnswer):
            await self._complete(dispatch, outcome, consumer)
        else:
            await self._fail(dispatch, outcome, consumer)

    async def _aborted(self, dispatch: Dispatch, why: Aborted, consumer: str) -> None:
        """A call stopped without an outcome: hand back what is ours, free a probe claim."""
        job = dispatch.job
        if why is Aborted.CANCELLED:  # the job is cancelled: only its entry and slot are left
            await self.store.finish(job, JobStatus.CANCELLED, consumer=consumer, updates={})
        if dispatch.probe:  # the GPU was not judged: let the next probe go soon
            await self._change_breaker(job.gpu, _cancel_probe)
        log.info("aborted", extra={"job_id": job.job_id, "gpu": job.gpu, "why": why.value})

    async def _complete(self, dispatch: Dispatch, answer: GpuAnswer, consumer: str) -> None:
        job = dispatch.job
        updates: dict[str, Arg] = {"result": answer.body, "result_status": answer.status,
                   "result_content_type": answer.content_type, "completed_at": time.time(),
                   "attempts": job.attempts + 1}  # fmt: skip
        committed = await self.store.finish(job, JobStatus.COMPLETED, consumer=consumer,
                                            updates=updates)  # fmt: skip
        self._count_outcome(JobStatus.COMPLETED if committed else None, "ok")
        if dispatch.breaker_seen != Breaker() or dispatch.probe:
            await self._change_breaker(job.gpu, on_success)

    async def _fail(self, dispatch: Dispatch, failure: GpuFailure, consumer: str) -> None:
        job = dispatch.job
        attempts = job.attempts + (1 if counts_as_attempt(failure.failure) else 0)
        await self._judge_gpu(dispatch, failure)
        error = ErrorInfo(message=failure.message, type="gpu_error", code=failure.failure.value,
                          gpu_status=failure.status)  # fmt: skip
        log.warning("gpu call failed", extra={"job_id": job.job_id, "gpu": job.gpu,
                                              "error": failure.message})  # fmt: skip
        if not counts_as_attempt(failure.failure) and self._waited_too_long(job):
            error = error.model_copy(update={"type": "expired"})
            await self._dead(job, consumer, DeadReason.EXPIRED, error, attempts=attempts)
        elif not is_retryable(failure.failure, failure.status):
            reason = DeadReason.RESULT_TOO_LARGE if failure.failure is Failure.TOO_LARGE else (
                DeadReason.NON_RETRYABLE)  # fmt: skip
            await self._dead(job, consumer, reason, error, attempts=attempts, answer=failure)
        elif self.retry.exhausted(attempts):
            await self._dead(job, consumer, DeadReason.RETRIES_EXHAUSTED, error, attempts=attempts)
        else:
            delay_s = self.retry.backoff_s(
                attempts, retry_after_s=failure.retry_after_s, jitter=random.random()
            )
            await self._retry(job, consumer, delay_s=delay_s, attempts=attempts, error=error)

    def _waited_too_long(self, job: TakenJob) -> bool:
        """A job that never reached a GPU within max_wait_s of its submission."""
        return time.time() - job.created_at > self.settings.max_wait_s

    async def _judge_gpu(self, dispatch: Dispatch, failure: GpuFailure) -> None:
        """Tell the breaker: a failure that says the GPU is unwell, or a live GPU's answer."""
        gpu = dispatch.job.gpu
        if counts_against_gpu(failure.failure, failure.status):
            now = time.time()
            await self._change_breaker(gpu, lambda breaker: on_failure(
                breaker, now=now, reason=failure.message, policy=self.breaker_policy
            ))  # fmt: skip
        elif dispatch.probe:
            await self._change_breaker(gpu, on_success)

    async def _dead(
        self,
        job: TakenJob,
        consumer: str,
        reason: DeadReason,
        error: ErrorInfo,
        *,
        attempts: int,
        answer: GpuFailure | None = None,
    ) -> None:
        taken = replace(job, attempts=attempts)
        dlq_id = await self.store.dead_letter(
            taken, consumer=consumer, reason=reason.value, error=error, now=time.time(),
            answer=(answer.status, answer.body) if answer and answer.status and answer.body
            else None,
        )  # fmt: skip
        self._count_outcome(JobStatus.DEAD if dlq_id else None, reason.value)
        log.warning("job dead", extra={"job_id": job.job_id, "gpu": job.gpu, "reason": reason})

    async def _retry(
        self, job: TakenJob, consumer: str, *, delay_s: float, attempts: int, error: ErrorInfo
    ) -> None:
        due_ms = int((time.time() + delay_s) * 1000)
        updates: dict[str, Arg] = {"attempts": attempts, "error": error.model_dump_json()}
        await self.store.retry_later(job, consumer=consumer, due_ms=due_ms, updates=updates)
        log.info("retry later", extra={"job_id": job.job_id, "gpu": job.gpu,
                                       "delay_s": round(delay_s, 3)})  # fmt: skip

    async def _release(self, job: TakenJob, consumer: str, why: str) -> None:
        """Hand a job back without using one of its tries (shutdown or reclaim)."""
        error = ErrorInfo(message=why, type="released")
        with contextlib.suppress(StoreUnavailable):
            await self._retry(job, consumer, delay_s=0, attempts=job.attempts, error=error)

    def _count_outcome(self, status: JobStatus | None, reason: str) -> None:
        if status is not None:
            self.metrics.outcomes.labels(status.value, reason).inc()

    async def _change_breaker(self, gpu: str, change: Callable[[Breaker], Breaker]) -> None:
        """Apply `change` to a GPU's shared breaker (compare-and-set, a few tries)."""
        for _ in range(5):
            breaker, version = (await self.store.breakers([gpu]))[gpu]
            changed = change(breaker)
            if changed == breaker or await self.store.set_breaker(gpu, changed, version=version):
                if changed.state != breaker.state:
                    log.warning("breaker", extra={"gpu": gpu, "state": changed.state,
                                                  "reason": changed.reason})  # fmt: skip
                self.metrics.breaker_state.labels(gpu).set(changed.state != BreakerState.CLOSED)
                return

    # --- maintenance -------------------------------------------------------------------------

    async def _maintain(self) -> None:
        last_heartbeat = 0.0
        while not await wait_or_stop(self.stopping, self.settings.maintenance_interval_s):
            now = time.time()
            try:
                await self.store.move_due_retries(now_ms=int(now * 1000))
                await self.store.expire_waiting(now=now, max_wait_s=self.settings.max_wait_s)
                await self._reclaim()
                if now - last_heartbeat >= self.settings.heartbeat_interval_s:
                    await self._heartbeat(now)
                    last_heartbeat = now
            except StoreUnavailable as error:
                log.warning("maintenance: store unavailable", extra={"error": error.message})

    async def _heartbeat(self, now: float) -> None:
        for consumer in self.consumers:
            await self.store.heartbeat(consumer.info(now), ttl_s=self.settings.consumer_ttl_s)

    async def _reclaim(self) -> None:
        reclaimer = f"{self.replica}-reclaimer"
        stale = await self.store.reclaim_stale(
            consumer=reclaimer, min_idle_ms=int(self.settings.claim_idle_s * 1000)
        )
        for job, reclaims in stale:
            log.warning("reclaimed", extra={"job_id": job.job_id, "reclaims": reclaims})
            if reclaims > self.settings.max_reclaims:
                error = ErrorInfo(message=f"its consumer died {reclaims} times", type="poison")
                await self._dead(job, reclaimer, DeadReason.POISON, error, attempts=job.attempts)
            else:
                await self._release(job, reclaimer, "its consumer stopped answering")


class Aborted(Enum):
    """Why a GPU call ended without an outcome to record."""

    CANCELLED = "cancelled"  # the job was cancelled while it ran
    CLAIM_LOST = "claim_lost"  # another consumer took the job over


def _outcome(call: asyncio.Task[GpuOutcome], *, cancelled_by_user: bool) -> GpuOutcome | Aborted:
    """What a finished (or stopped) GPU call task amounts to."""
    if call.cancelled():
        return Aborted.CANCELLED if cancelled_by_user else Aborted.CLAIM_LOST
    error = call.exception()
    if error is not None:
        log.error("gpu call crashed", exc_info=error)
        return GpuFailure(Failure.PROTOCOL, f"{type(error).__name__}: {error}")
    return call.result()


def _cancel_probe(breaker: Breaker) -> Breaker:
    """Give back an unused half-open claim: open again, ready for the next probe."""
    if breaker.state is not BreakerState.HALF_OPEN:
        return breaker
    return replace(breaker, state=BreakerState.OPEN, probe_deadline=None)
