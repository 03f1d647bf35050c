"""The consumer engine, on the app's event loop: read -> plan -> take -> call -> record -> learn.

Each consumer task loops: read a window of waiting jobs (sizes, not payloads) and the fleet's
live state (shared slots with their jobs' predicted ends, breakers, probes, learned speeds),
plan which jobs start now on which GPU (smartqueue.planner: earliest predicted finish, see
docs/scheduling.md), take the first planned job in one atomic step with a slot on its GPU, call
the GPU while keeping the claim fresh, record the outcome (outcomes.py), and teach the GPU's
speed from a completed job. While an answer is committed, its consumer takes the job the last
plan put next on that GPU (a follow-on), so a busy GPU's slot is not idle for a whole re-plan.
Idle consumers block on a wake-up list that every enqueue pushes to.
The prober and the maintenance task (maintenance.py) run beside the consumers in one TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass

from smartqueue.batch_runner import BatchRunner
from smartqueue.breaker import Gate, start_probe
from smartqueue.chunks import ChunkBatcher
from smartqueue.config import FleetConfig, Settings
from smartqueue.errors import StoreUnavailable
from smartqueue.fleet import FleetProber
from smartqueue.fleet_state import LiveGpu, breaker_policy, live_gpus
from smartqueue.gpu_client import GpuAnswer, GpuClient, GpuFailure, GpuOutcome
from smartqueue.maintenance import Maintenance
from smartqueue.metrics import Metrics
from smartqueue.models import DISPATCH_ORDER, ConsumerInfo
from smartqueue.openai_format import usage_tokens
from smartqueue.outcomes import Aborted, Dispatch, OutcomeRecorder, cancel_probe, job_fields
from smartqueue.planner import (
    Plan,
    PlanPolicy,
    Sample,
    Speed,
    Start,
    WaitingJob,
    plan,
    predicted_duration_s,
    scaled_policy,
    typical_duration_s,
)
from smartqueue.policy import Failure
from smartqueue.queue import Lease, TakenJob, TakeRefused, WaitingEntry
from smartqueue.speed_book import SpeedBook
from smartqueue.stopping import wait_or_stop
from smartqueue.store import Store
from smartqueue.watch import JobWatch, LocalHold

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


class Dispatcher:
    """Runs the consumer tasks, the prober and the maintenance task of one replica."""

    def __init__(
        self, settings: Settings, fleet: FleetConfig, *, store: Store, gpu_client: GpuClient,
        prober: FleetProber, metrics: Metrics, watch: JobWatch,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.fleet = fleet
        self.store = store
        self.gpu_client = gpu_client
        self.prober = prober
        self.metrics = metrics
        self.watch = watch
        self.replica = replica_name()
        self.stopping = asyncio.Event()
        self.draining = False
        count = settings.consumers
        if count is None:
            count = sum(gpu.slots for gpu in fleet.gpus)
        self.consumers = [ConsumerState(f"{self.replica}-c{i}", self.replica) for i in range(count)]
        self.lease = Lease(lease_ms=int(settings.lease_s * 1000),
                           aging_ms=int(settings.priority_aging_s * 1000))  # fmt: skip
        self.plan_policy = PlanPolicy(window=settings.plan_window,
                                      aging_s=settings.priority_aging_s,
                                      max_hold_s=settings.plan_max_hold_s)  # fmt: skip
        self.speeds = SpeedBook(store, [gpu.name for gpu in fleet.gpus])
        self._planned_at = float("-inf")  # when a consumer of this replica last planned
        self._seen_at, self._seen_empty = float("-inf"), False  # the newest read of the queue
        self._reading = 0  # reads of the queue under way
        self._next_on: dict[str, tuple[WaitingEntry, LiveGpu, Start]] = {}  # of the newest plan
        self._next_on_at = float("-inf")  # when that plan read the queue (monotonic)
        self._next_on_until = float("-inf")  # and until when it is trusted
        self.breaker_policy = breaker_policy(settings)
        self.recorder = OutcomeRecorder(settings, store=store, metrics=metrics,
                                        breaker_policy=self.breaker_policy,
                                        watch=watch)  # fmt: skip
        batches = BatchRunner(settings, fleet, store=store, holder=self.replica)
        self.maintenance = Maintenance(settings, store=store, recorder=self.recorder,
                                       replica=self.replica, consumers=self.consumers,
                                       batches=batches)  # fmt: skip

    async def run(self) -> None:
        """Run until `stop()`: prober, maintenance and every consumer task."""
        await self._ensure_groups()
        while not self.stopping.is_set():
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self.prober.run(self.stopping))
                    tasks.create_task(self.maintenance.run(self.stopping))
                    tasks.create_task(self.speeds.run(self.stopping))
                    for consumer in self.consumers:
                        tasks.create_task(self._consume(consumer))
            except Exception:  # a bug must not silently stop dispatch on this replica
                log.exception("engine failed; restarting it")
                await wait_or_stop(self.stopping, 1.0)
        with contextlib.suppress(StoreUnavailable):  # the last jobs' samples, for the others
            await self.speeds.sync()

    def stop(self) -> None:
        """Stop taking jobs; running ones finish (the caller bounds the wait)."""
        self.stopping.set()

    def drain(self) -> None:
        """Take no new job (running ones finish) until `undrain()`: maintenance of a replica."""
        if not self.draining:
            log.warning("drain", extra={"replica": self.replica, "running": self.running()})
        self.draining = True
        self.metrics.draining.set(1)

    def undrain(self) -> None:
        """Take jobs again."""
        if self.draining:
            log.warning("undrain", extra={"replica": self.replica})
        self.draining = False
        self.metrics.draining.set(0)

    def running(self) -> int:
        """Jobs this replica's consumers are running now."""
        return sum(consumer.current_job is not None for consumer in self.consumers)

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
            if self.draining:
                consumer.state = "drained"
                await wait_or_stop(self.stopping, self.settings.idle_poll_s)
                continue
            consumer.state = "idle"
            try:
                dispatch = await self.next_job(consumer.id)
                if dispatch is None:
                    await self._idle()
                while dispatch is not None:  # then each job's follow-on, while there is one
                    dispatch = await self._run(dispatch, consumer)
                    if dispatch is None and self._queue_seen_empty():
                        await self._idle()  # nothing waited: any job since left a wake-up
            except StoreUnavailable as error:
                log.warning("store unavailable", extra={"consumer": consumer.id,
                                                        "error": error.message})  # fmt: skip
                await wait_or_stop(self.stopping, 1.0)
        with contextlib.suppress(StoreUnavailable):
            await self.store.consumers.forget(consumer.id)

    def _queue_seen_empty(self) -> bool:
        """Whether a consumer whose job ended may wait for a wake-up instead of reading the
        queue (see `_idle`)."""
        return self._seen_empty and not self._reading and self.maintenance.alone

    async def _idle(self) -> None:
        """Wait until a job may be ready: a wake-up (a job entered, a retry is due, a planned
        start is left), or `idle_poll_s` since this replica last planned (held jobs, slots that
        direct traffic freed). Idle consumers share that poll: one re-plan per interval per
        replica, not one per consumer.

        A consumer whose job ended also waits here, instead of reading the queue, when the
        replica's newest read found nothing waiting and no read is under way (one could find a
        job that its plan could not start while this consumer's slot was still held): every
        entry that joined a waiting stream since (enqueue, a due retry, a batch line, a DLQ
        retry) pushed a wake-up, so it reads the queue only when there is something to read.
        Only while no other replica has consumers: another replica's consumer may have taken
        that wake-up and found every slot busy, which this replica's reads cannot know.
        """
        poll_s = self.settings.idle_poll_s
        while not self.stopping.is_set():
            if await self.store.claims.wait_for_work(timeout_s=poll_s):
                return
            if time.monotonic() - self._planned_at >= poll_s:
                return

    # --- read, choose, claim -----------------------------------------------------------------

    async def next_job(self, consumer_id: str) -> Dispatch | None:
        """Plan the waiting jobs onto the fleet and take the first one planned to start now.

        One read (PEEK) brings the waiting window (no payloads) and the GPUs' leases and
        breakers. When the plan starts more than one job, another consumer is woken for the next.
        """
        planned_at = time.monotonic()
        self._planned_at = planned_at
        self._reading += 1
        self.metrics.queue_reads.inc()
        try:
            view = await self.store.claims.dispatch_view(
                list(self.fleet.routes), [gpu.name for gpu in self.fleet.gpus],
                window=self.plan_policy.window,
            )  # fmt: skip
        finally:
            self._reading -= 1
        if planned_at >= self._seen_at:
            self._seen_at, self._seen_empty = planned_at, not view.waiting
        if not view.waiting:
            return None
        now = time.time()
        live = {gpu.config.name: gpu for gpu in live_gpus(
            self.fleet, view.running, view.breakers, self.prober, policy=self.breaker_policy,
            now=now)}  # fmt: skip
        planned, typical_s = self._plan(view.waiting, live, await self.speeds.speeds(), now=now)
        if planned_at >= self._next_on_at:  # no later plan of this replica replaced it
            self._next_on_at, self._next_on_until = planned_at, planned_at + typical_s
            self._next_on = {gpu: (view.waiting[int(start.key)], live[gpu], start)
                             for gpu, start in planned.next_on.items()}  # fmt: skip
        starts, full = planned.starts, set[str]()
        for index, start in enumerate(starts):
            if start.gpu in full:
                continue
            taken = await self._take(view.waiting[int(start.key)], live[start.gpu], consumer_id,
                                     now=now, predicted_end=start.predicted_end)  # fmt: skip
            if taken is TakeRefused.GPU_FULL:
                full.add(start.gpu)
            elif isinstance(taken, Dispatch):
                if len(view.waiting) == 1 and planned_at >= self._seen_at:
                    self._seen_empty = True  # the one waiting job was this one
                if index + 1 < len(starts):
                    await self.store.claims.wake_one()
                return taken
        return None

    def _plan(
        self, waiting: list[WaitingEntry], live: dict[str, LiveGpu], speeds: dict[str, Speed],
        *, now: float,
    ) -> tuple[Plan, float]:  # fmt: skip
        """The planner's plan, each waiting job keyed by its index in `waiting`, and a typical
        job's time (an empty prompt, half the default output): it sets the plan's thresholds
        and stands in for direct traffic of unknown size.
        """
        tokens = self.plan_policy.default_output_tokens // 2
        gpus = [gpu.plan_gpu(speeds[name], now=now, max_age_s=self.prober.max_age_s,
                             mean_duration_s=predicted_duration_s(
                                 speeds[name], prompt_tokens=0, output_tokens=tokens))
                for name, gpu in live.items()]  # fmt: skip
        typical_s = typical_duration_s(list(speeds.values()), output_tokens=tokens)
        jobs = [WaitingJob(str(index), entry.route, DISPATCH_ORDER.index(entry.priority),
                           entry.enqueued_at, entry.prompt_tokens, entry.max_tokens)
                for index, entry in enumerate(waiting)]  # fmt: skip
        policy = scaled_policy(self.plan_policy, typical_s=typical_s)
        return plan(jobs, gpus, self.fleet.routes, now=now, policy=policy), typical_s

    async def _take(
        self, waiting: WaitingEntry, gpu: LiveGpu, consumer_id: str, *, now: float,
        predicted_end: float, replacing: TakenJob | None = None,
    ) -> Dispatch | TakeRefused:  # fmt: skip
        if self.draining:  # drained while this consumer read the fleet
            return TakeRefused.GPU_FULL
        probe = gpu.gate is Gate.PROBE
        if probe and not await self.store.breakers.compare_and_set(
            gpu.config.name, start_probe(gpu.breaker, now=now, policy=self.breaker_policy),
            version=gpu.breaker_version,
        ):  # fmt: skip
            return TakeRefused.GPU_FULL  # another consumer holds the probe
        taken = await self.store.claims.take_entry(
            waiting, gpu=gpu.config.name, slots=gpu.config.slots, consumer=consumer_id,
            lease=self.lease, probe=probe, predicted_end=predicted_end, replacing=replacing,
        )  # fmt: skip
        if isinstance(taken, TakenJob):
            return Dispatch(taken, probe, gpu.breaker)
        if probe:
            await self.recorder.change_breaker(gpu.config.name, cancel_probe)
        return taken

    # --- call, record ------------------------------------------------------------------------

    async def _follow_on(self, answered: TakenJob, consumer_id: str) -> Dispatch | None:
        """Take the job the last plan put next on the answered job's GPU, in that job's slot.

        Only from a plan younger than a typical job's time (about one turn of every slot), never
        for a half-open GPU's probe; refused (None) when the job is gone or a class above it now
        waits on its route: the consumer then plans again.
        """
        reserved = self._next_on.pop(answered.gpu, None)
        fresh = time.monotonic() <= self._next_on_until
        if reserved is None or not fresh or self.draining or self.stopping.is_set():
            return None
        waiting, gpu, start = reserved
        if gpu.gate is Gate.PROBE:
            return None
        now = time.time()
        end = now + start.predicted_end - start.planned_start  # its plan, started now
        taken = await self._take(waiting, gpu, consumer_id, now=now, predicted_end=end,
                                 replacing=answered)  # fmt: skip
        if not isinstance(taken, Dispatch):
            return None
        self.metrics.follow_on_takes.inc()
        return taken

    async def _record(
        self, dispatch: Dispatch, outcome: GpuOutcome | Aborted, consumer_id: str
    ) -> Dispatch | None:
        """Commit the outcome; for an answer, take its follow-on meanwhile (see `_follow_on`)."""
        if not isinstance(outcome, GpuAnswer):
            await self.recorder.record(dispatch, outcome, consumer_id)
            return None
        recorded, follow_on = await asyncio.gather(
            self.recorder.record(dispatch, outcome, consumer_id),
            self._follow_on(dispatch.job, consumer_id), return_exceptions=True,
        )  # fmt: skip
        if isinstance(follow_on, BaseException) and not isinstance(follow_on, StoreUnavailable):
            log.error("follow-on take failed", exc_info=follow_on)  # the consumer plans instead
        if isinstance(recorded, BaseException):
            if isinstance(follow_on, Dispatch):  # not run: back in line now, not at reclaim
                await self.recorder.release(follow_on.job, consumer_id, "its commit failed")
            raise recorded
        return follow_on if isinstance(follow_on, Dispatch) else None

    async def _run(self, dispatch: Dispatch, consumer: ConsumerState) -> Dispatch | None:
        """Run one job to its committed outcome; the follow-on job taken meanwhile, if any."""
        job = dispatch.job
        consumer.state, consumer.current_job = "running", job.job_id
        waited_s = max(0.0, time.time() - job.created_at)
        self.metrics.queue_wait.labels(job.route, job.priority.value).observe(waited_s)
        if log.isEnabledFor(logging.INFO):
            fields = {"attempt": job.attempts + 1, "waited_s": round(waited_s, 3),
                      "probe": dispatch.probe}  # fmt: skip
            log.info("dispatched", extra={**job_fields(job), **fields})
        hold = self.watch.local_hold(job.job_id)
        if hold is not None:  # a request held here for this job: hand over in-process
            hold.running, hold.ended = True, False
        follow_on = None
        try:
            started = time.monotonic()
            outcome, first_chunk_s = await self._call_keeping_claim(job, consumer.id, hold)
            duration_s = time.monotonic() - started
            label = "ok" if isinstance(outcome, GpuAnswer) else "failed"
            self.metrics.dispatch.labels(job.gpu, label).observe(duration_s)
            follow_on = await self._record(dispatch, outcome, consumer.id)
            if isinstance(outcome, GpuAnswer):  # in memory; shared by the speed book's sync
                try:
                    self._learn(job, outcome, duration_s=duration_s, first_chunk_s=first_chunk_s)
                except Exception:  # one sample less, never a lost follow-on
                    log.exception("learning a speed failed", extra=job_fields(job))
        except asyncio.CancelledError:
            await asyncio.shield(self.recorder.release(job, consumer.id, "the replica shut down"))
            raise
        finally:
            if hold is not None:
                hold.end()
            consumer.state, consumer.current_job = "idle", None
            consumer.jobs_done += 1
        return follow_on

    def _learn(
        self, job: TakenJob, answer: GpuAnswer, *, duration_s: float, first_chunk_s: float | None
    ) -> None:
        """Teach the GPU's speed from a completed job (its usage, else the estimated sizes)."""
        tokens = usage_tokens(answer.body, streamed="event-stream" in answer.content_type)
        prompt = tokens.get("prompt_tokens") or int(job.entry.fields.get("in") or 0)
        completion = tokens.get("completion_tokens") or int(job.entry.fields.get("out") or 0)
        if completion <= 0:
            return  # nothing to learn a speed from
        sample = Sample(prompt, completion, duration_s, first_chunk_s)
        self.speeds.learn(job.gpu, sample, now=time.time())

    async def _call_keeping_claim(
        self, job: TakenJob, consumer_id: str, hold: LocalHold | None = None
    ) -> tuple[GpuOutcome | Aborted, float | None]:
        """The GPU's outcome, unless the job was cancelled or taken over meanwhile, and the
        time to its first streamed chunk (None when it streamed none)."""
        gpu = self.fleet.gpu(job.gpu)
        chunks = ChunkBatcher(self.store, job.job_id, local=hold)
        started = time.monotonic()
        first: list[float] = []

        async def on_chunk(chunk: bytes) -> None:
            if not first:
                first.append(time.monotonic() - started)
            await chunks.add(chunk)

        with self.watch.watching(job.job_id) as ended:
            call = asyncio.create_task(self.gpu_client.call(
                gpu, job.entry, deadline_s=self.settings.job_timeout_s, on_chunk=on_chunk
            ))  # fmt: skip
            keeper = asyncio.create_task(self._keep_claim(job, consumer_id))
            cancelled = asyncio.create_task(ended.wait())
            try:
                await asyncio.wait({call, keeper, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (call, keeper, cancelled):
                    task.cancel()
                await asyncio.gather(call, keeper, cancelled, return_exceptions=True)
        outcome = _outcome(call, cancelled_by_user=ended.is_set())
        return await _with_chunks_written(outcome, chunks), (first[0] if first else None)

    async def _keep_claim(self, job: TakenJob, consumer_id: str) -> None:
        """Renew the claim and the slot until cancelled; returns when the claim is lost."""
        interval_s = self.settings.lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            try:
                if not await self.store.claims.renew(job, consumer=consumer_id, lease=self.lease):
                    log.warning("claim lost", extra=job_fields(job))
                    return
            except StoreUnavailable:
                continue


def _outcome(call: asyncio.Task[GpuOutcome], *, cancelled_by_user: bool) -> GpuOutcome | Aborted:
    """What a finished (or stopped) GPU call task amounts to."""
    if call.cancelled():
        return Aborted.CANCELLED if cancelled_by_user else Aborted.CLAIM_LOST
    error = call.exception()
    if error is not None:
        log.error("gpu call crashed", exc_info=error)
        return GpuFailure(Failure.PROTOCOL, f"{type(error).__name__}: {error}")
    return call.result()


async def _with_chunks_written(
    outcome: GpuOutcome | Aborted, chunks: ChunkBatcher
) -> GpuOutcome | Aborted:
    """The outcome once every streamed chunk is in Redis (a commit never overtakes a chunk)."""
    if isinstance(outcome, Aborted):
        await chunks.close()
        return outcome
    try:
        await chunks.flush()
    except StoreUnavailable as error:
        return GpuFailure(Failure.PROTOCOL, f"streamed chunks could not be kept: {error.message}")
    return outcome
