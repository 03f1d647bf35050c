"""Claims: taking a job for a GPU with a slot, keeping it, committing its outcome, and the
maintenance steps that put waiting, retrying and abandoned jobs where they belong."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from redis.exceptions import ResponseError

from smartqueue.breaker import Breaker
from smartqueue.models import DISPATCH_ORDER, ErrorInfo, JobStatus, Priority
from smartqueue.queue import ExpiredJob, Lease, StreamEntry, TakenJob, TakeRefused, WaitingEntry
from smartqueue.store import scripts
from smartqueue.store.codec import (
    breaker_from_hash,
    created_s,
    entry_from_raw,
    pairs,
    priority_of,
    text,
)
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.keys import GROUP, Counter, Keys
from smartqueue.store.scripts import Arg, BatchLine, DueJob, ExpiredEntry, Held

Candidate = tuple[str, Priority, str]  # stream, priority, route


@dataclass(frozen=True)
class DispatchView:
    """What the dispatcher plans with, read in one step."""

    waiting: list[WaitingEntry]
    running: dict[str, list[float | None]]  # per GPU: each live lease's predicted end, if any
    breakers: dict[str, tuple[Breaker, str]]  # per GPU: its breaker and version


class Claims:
    """Jobs between their stream and their end: take, renew, commit, retry, reclaim."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    def gpu_streams(self, routes: list[str]) -> list[Candidate]:
        """(stream, priority, route) for every priority of `routes`, high first, batch last."""
        keys = self.context.keys
        return [(keys.stream(p, route), p, route) for p in DISPATCH_ORDER for route in routes]

    @translate_errors
    async def ensure_groups(self) -> None:
        """Create the consumer group on the running stream (at id 0: no taken job is missed)."""
        try:
            await self.context.redis.xgroup_create(self.context.keys.running, GROUP, id="0",
                                                   mkstream=True)  # fmt: skip
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _held(self, job: TakenJob, consumer: str) -> Held:
        return Held(job.stream, GROUP, consumer, job.entry.entry_id, job.job_id)

    def _line(self, job: TakenJob, line: tuple[str, bytes] | None) -> BatchLine | None:
        """A batch request's (outcome, line) with the keys it is kept under; None otherwise."""
        batch_id, custom_id = job.entry.fields.get("batch"), job.entry.fields.get("custom_id")
        if line is None or not batch_id or not custom_id:
            return None
        keys = self.context.keys
        return BatchLine(keys.batch_lines(batch_id), keys.batch(batch_id), custom_id, *line)

    # --- taking ------------------------------------------------------------------------------

    @translate_errors
    async def peek(self, routes: list[str], *, window: int) -> list[WaitingEntry]:
        """The first `window` waiting jobs of each (priority, route) stream of `routes`."""
        view = await self.dispatch_view(routes, [], window=window)
        return view.waiting

    @translate_errors
    async def dispatch_view(
        self, routes: list[str], gpus: list[str], *, window: int
    ) -> DispatchView:
        """In one round trip: the first `window` waiting jobs of each stream of `routes`, and
        per GPU its live slot leases (each with its job's predicted end) and its breaker."""
        candidates = self.gpu_streams(routes)
        keys = self.context.keys
        call = scripts.peek(
            counts=keys.counts, streams=[stream for stream, _, _ in candidates], window=window,
            gpus=[scripts.GpuKeys(keys.slots(gpu), keys.ends(gpu), keys.breaker(gpu))
                  for gpu in gpus],
        )  # fmt: skip
        found, per_gpu = cast(list[Any], await self.context.scripts.run(call))
        waiting = []
        for at in range(0, len(found), 5):
            index, entry_id, job_id, prompt_tokens, max_tokens = found[at : at + 5]
            stream, priority, route = candidates[int(index) - 1]
            waiting.append(WaitingEntry(stream, priority, route, text(entry_id) or "",
                                        text(job_id) or "", int(prompt_tokens or 0),
                                        int(max_tokens) if max_tokens else None))  # fmt: skip
        running: dict[str, list[float | None]] = {}
        breakers: dict[str, tuple[Breaker, str]] = {}
        for gpu, (holders, breaker) in zip(gpus, per_gpu, strict=True):
            ends = holders[1::2]
            running[gpu] = [int(end) / 1000 if end else None for end in ends]
            breakers[gpu] = breaker_from_hash(pairs(breaker))
        return DispatchView(waiting, running, breakers)

    @translate_errors
    async def take_entry(
        self, waiting: WaitingEntry, *, gpu: str, slots: int, consumer: str, lease: Lease,
        probe: bool = False, predicted_end: float | None = None,
        replacing: TakenJob | None = None,
    ) -> TakenJob | TakeRefused:  # fmt: skip
        """Take `waiting` for `gpu` with a slot on it and start it (queued -> processing).

        Refused while the GPU is full or its breaker is open (half-open unless `probe`: the
        caller holds the half-open claim), when another consumer took the entry first, and for
        a batch entry while interactive work of its route waits (it may have arrived since the
        caller's PEEK).

        `replacing` is the caller's own job on `gpu`, answered but not yet committed: its slot
        goes to this take (only while the caller still holds that job), and the take is refused
        while any class above the entry's waits on its route, as the plan that chose the entry
        may be older than those arrivals.
        """
        keys = self.context.keys
        above = DISPATCH_ORDER[: DISPATCH_ORDER.index(waiting.priority)]
        if replacing is None and waiting.priority is not Priority.BATCH:
            above = ()
        target = scripts.TakeTarget(
            waiting.stream, Counter.of(waiting.priority, waiting.route), waiting.entry_id,
            waiting.job_id, keys.job(waiting.job_id), keys.events(waiting.job_id),
            tuple(Counter.of(priority, waiting.route) for priority in above),
            None if replacing is None else (replacing.job_id, replacing.entry.entry_id),
        )  # fmt: skip
        call = scripts.take(
            slots_key=keys.slots(gpu), breaker=keys.breaker(gpu), counts=keys.counts,
            ends=keys.ends(gpu), running=keys.running, target=target, group=GROUP,
            consumer=consumer, slots=slots, lease_ms=lease.lease_ms, probe=probe, gpu=gpu,
            started_at=time.time(), channel=keys.done_channel,
            predicted_end_ms=None if predicted_end is None else int(predicted_end * 1000),
        )  # fmt: skip
        reply = await self.context.scripts.run(call)
        if int(reply[0]) == 0:
            return TakeRefused.GPU_FULL
        if int(reply[0]) == -2:
            return TakeRefused.OUTRANKED
        if int(reply[0]) < 0:
            return TakeRefused.GONE
        _, entry_id, raw_fields, deliveries, attempts, created_in_ms, created_in_s = reply
        entry = entry_from_raw(entry_id, pairs(raw_fields))
        return TakenJob(entry, keys.running, waiting.priority, waiting.route, gpu,
                        int(deliveries), int(attempts),
                        created_s(created_in_ms, created_in_s))  # fmt: skip

    async def take(
        self, gpu: str, *, slots: int, routes: list[str], consumer: str, lease: Lease,
        probe: bool = False,
    ) -> TakenJob | None:  # fmt: skip
        """The oldest job of the best class among `routes` for `gpu` (a job waiting `aging_ms`
        ranks as high, batch never), with a slot on it; None when none can be taken.

        The strict-FIFO take, for tools and tests; the dispatcher takes what its planner chose.
        """
        while True:
            heads = await self.peek(routes, window=1)
            if not heads:
                return None
            now = time.time()
            head = min(heads, key=lambda entry: (_rank(entry, now=now, lease=lease),
                                                 entry.enqueued_at))  # fmt: skip
            taken = await self.take_entry(head, gpu=gpu, slots=slots, consumer=consumer,
                                          lease=lease, probe=probe)  # fmt: skip
            if taken is TakeRefused.GPU_FULL:
                return None
            if isinstance(taken, TakenJob):
                return taken

    @translate_errors
    async def renew(self, job: TakenJob, *, consumer: str, lease: Lease) -> bool:
        """Refresh the claim on a running job and its slot; False once the claim was lost."""
        slots_key = self.context.keys.slots(job.gpu)
        call = scripts.renew(held=self._held(job, consumer), slots_key=slots_key,
                             lease_ms=lease.lease_ms)  # fmt: skip
        return bool(await self.context.scripts.run(call))

    # --- committing --------------------------------------------------------------------------

    @translate_errors
    async def finish(
        self, job: TakenJob, target: JobStatus, *, consumer: str, updates: Mapping[str, Arg],
        line: tuple[str, bytes] | None = None,
    ) -> bool:  # fmt: skip
        """Commit a terminal outcome while still holding the job; False when refused.

        `line`: a batch request's (outcome, output line), kept with its batch in the same step.
        """
        keys = self.context.keys
        call = scripts.finish(
            record=keys.job(job.job_id), slots_key=keys.slots(job.gpu), ends=keys.ends(job.gpu),
            events=keys.events(job.job_id), held=self._held(job, consumer),
            channel=keys.done_channel,
            change=self.context.change(target, updates), line=self._line(job, line),
        )  # fmt: skip
        return bool(await self.context.scripts.run(call))

    @translate_errors
    async def retry_later(
        self, job: TakenJob, *, consumer: str, due_ms: int, updates: Mapping[str, Arg]
    ) -> bool:
        """Put the job aside until `due_ms` (processing -> retrying); False when refused."""
        keys = self.context.keys
        call = scripts.retry_later(
            record=keys.job(job.job_id), slots_key=keys.slots(job.gpu), ends=keys.ends(job.gpu),
            delayed=keys.delayed, events=keys.events(job.job_id), held=self._held(job, consumer),
            channel=keys.done_channel, due_ms=due_ms,
            change=self.context.change(JobStatus.RETRYING, updates),
        )  # fmt: skip
        return bool(await self.context.scripts.run(call))

    @translate_errors
    async def dead_letter(
        self, job: TakenJob, *, consumer: str, reason: str, error: ErrorInfo | None,
        now: float, answer: tuple[int, bytes] | None = None,
        line: tuple[str, bytes] | None = None,
    ) -> str | None:  # fmt: skip
        """Move a taken job to the DLQ (O(1)) and free its slot; None when the claim was lost.

        `answer` is the GPU's own error (status, body), kept as the job's result; `line` a
        batch request's (outcome, error line), kept with its batch in the same step.
        """
        error_json = error.model_dump_json() if error else ""
        dlq_fields: list[Arg] = [
            "route", job.route, "priority", job.priority.value, "reason", reason,
            "attempts", str(job.attempts), "error", error_json, "dead_at", repr(now),
            *job.entry.job_fields(),
        ]  # fmt: skip
        updates: dict[str, Arg] = {"reason": reason, "error": error_json, "completed_at": now,
                                   "attempts": job.attempts}  # fmt: skip
        if answer is not None:
            updates |= {"result_status": answer[0], "result": answer[1],
                        "result_content_type": "application/json"}  # fmt: skip
        keys = self.context.keys
        call = scripts.dead_letter(
            record=keys.job(job.job_id), dlq=keys.dlq, slots_key=keys.slots(job.gpu),
            ends=keys.ends(job.gpu), events=keys.events(job.job_id), held=self._held(job, consumer),
            channel=keys.done_channel, dlq_fields=dlq_fields,
            change=self.context.change(JobStatus.DEAD, updates), line=self._line(job, line),
        )  # fmt: skip
        dlq_id = await self.context.scripts.run(call)
        return text(dlq_id) if dlq_id else None

    # --- maintenance -------------------------------------------------------------------------

    @translate_errors
    async def move_due(self, *, now_ms: int, limit: int = 100) -> int:
        """Send jobs whose backoff is over back to their stream; how many moved."""
        redis, keys = self.context.redis, self.context.keys
        raw = await redis.zrangebyscore(keys.delayed, "-inf", now_ms, start=0, num=limit)
        job_ids = [member.decode() for member in cast(list[bytes], raw)]
        if not job_ids:
            return 0
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(keys.job(job_id), ["priority", "route"])
            places = await pipe.execute()
        due = [_due(keys, job_id, priority_of(text(priority)), text(route) or "")
               for job_id, (priority, route) in zip(job_ids, places, strict=True)]  # fmt: skip
        call = scripts.move_due(delayed=keys.delayed, wake=keys.wake, counts=keys.counts,
                                channel=keys.done_channel, jobs=due)  # fmt: skip
        return int(await self.context.scripts.run(call))

    @translate_errors
    async def expire_waiting(
        self, *, now: float, max_wait_s: float, limit: int = 100
    ) -> list[ExpiredJob]:
        """Dead-letter (reason `expired`) jobs that waited for dispatch past `max_wait_s`.

        Batch requests are left alone: their batch's completion window bounds them instead.
        """
        candidates = [candidate for candidate in self.gpu_streams(self.context.routes)
                      if candidate[1] is not Priority.BATCH]  # fmt: skip
        call = scripts.expiring(counts=self.context.keys.counts,
                                streams=[stream for stream, _, _ in candidates],
                                cutoff_ms=int((now - max_wait_s) * 1000), limit=limit)  # fmt: skip
        found = cast(list[Any], await self.context.scripts.run(call))
        by_stream: dict[int, list[ExpiredEntry]] = {}
        keys = self.context.keys
        for index, entry_id, job_id in zip(found[::3], found[1::3], found[2::3], strict=True):
            job = text(job_id) or ""
            by_stream.setdefault(int(index) - 1, []).append(
                ExpiredEntry(text(entry_id) or "", job, keys.job(job), keys.events(job))
            )
        error = ErrorInfo(message=f"no GPU could take the job within {max_wait_s:g} s",
                          type="expired").model_dump_json()  # fmt: skip
        expired: list[ExpiredJob] = []
        for index, entries in by_stream.items():
            stream, priority, route = candidates[index]
            call = scripts.expire(
                stream=stream, dlq=keys.dlq, counts=keys.counts,
                counter=Counter.of(priority, route), channel=keys.done_channel,
                ttl_s=self.context.terminal_ttl_s, now=now, error=error,
                priority=priority.value, route=route, entries=entries,
                events_ttl_s=self.context.events_ttl_s,
            )  # fmt: skip
            ids = cast(list[bytes], await self.context.scripts.run(call))
            expired += [ExpiredJob(text(job_id) or "", route, priority) for job_id in ids]
        return expired

    @translate_errors
    async def reclaim(
        self, *, consumer: str, min_idle_ms: int, count: int = 20
    ) -> list[tuple[TakenJob, int]]:
        """Take over running entries whose consumer went silent (XAUTOCLAIM), with how often
        each job was."""
        running = self.context.keys.running
        reply: list[Any] = await self.context.redis.xautoclaim(
            running, GROUP, consumer, min_idle_ms, "0-0", count=count
        )
        return [await self._reclaimed(entry_from_raw(entry_id, raw)) for entry_id, raw in reply[1]]

    async def _reclaimed(self, entry: StreamEntry) -> tuple[TakenJob, int]:
        record = self.context.keys.job(entry.job_id)
        redis = self.context.redis
        reclaims = await redis.hincrby(record, "reclaims", 1)
        meta = await redis.hmget(record, ["gpu", "deliveries", "attempts", "created_ms",
                                          "created_at", "priority", "route"])  # fmt: skip
        gpu, deliveries, attempts, created_in_ms, created_in_s, priority, route = (
            text(value) or "" for value in cast(list[Any], meta)
        )
        job = TakenJob(entry, self.context.keys.running, priority_of(priority), route,
                       gpu, int(deliveries or 0), int(attempts or 0),
                       created_s(created_in_ms, created_in_s))  # fmt: skip
        return job, int(reclaims)

    @translate_errors
    async def reconcile_counts(self) -> int:
        """Set the depth counters to what the streams hold; how many streams were off."""
        keys = self.context.keys
        candidates = self.gpu_streams(self.context.routes)
        streams = [(stream, Counter.of(priority, route)) for stream, priority, route in candidates]
        call = scripts.reconcile(counts=keys.counts, streams=streams)
        return int(await self.context.scripts.run(call))

    @translate_errors
    async def wake_one(self) -> None:
        """Wake one idle consumer (of any replica): there is more to start now."""
        async with self.context.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self.context.keys.wake, 1)
            pipe.ltrim(self.context.keys.wake, -64, -1)
            await pipe.execute()

    @translate_errors
    async def wait_for_work(self, *, timeout_s: float) -> bool:
        """Block until a job may be ready (True) or `timeout_s` passes (False)."""
        timeout = min(timeout_s, self.context.max_block_ms / 1000)
        return await self.context.redis.blpop([self.context.keys.wake], timeout=timeout) is not None

    @translate_errors
    async def running_on(self, gpus: list[str], *, now: float) -> dict[str, list[float | None]]:
        """Per GPU, its live slot reservations across every replica, each with the predicted
        end (epoch seconds) of the job holding it; None when it has none."""
        now_ms = int(now * 1000)
        keys = self.context.keys
        async with self.context.redis.pipeline(transaction=False) as pipe:
            for gpu in gpus:
                pipe.zrangebyscore(keys.slots(gpu), now_ms, "+inf")
                pipe.hgetall(keys.ends(gpu))
            replies = await pipe.execute()
        running: dict[str, list[float | None]] = {}
        for index, gpu in enumerate(gpus):
            holders = cast(list[bytes], replies[2 * index])
            ends = cast(dict[bytes, bytes], replies[2 * index + 1])
            running[gpu] = [int(ends[holder]) / 1000 if holder in ends else None
                            for holder in holders]  # fmt: skip
        return running

    async def slots_in_use(self, gpus: list[str], *, now: float) -> dict[str, int]:
        """Live slot reservations per GPU, across every replica."""
        now_ms = int(now * 1000)
        async with self.context.redis.pipeline(transaction=False) as pipe:
            for gpu in gpus:
                pipe.zcount(self.context.keys.slots(gpu), now_ms, "+inf")
            counts = await pipe.execute()
        return {gpu: int(count) for gpu, count in zip(gpus, counts, strict=True)}


def _rank(entry: WaitingEntry, *, now: float, lease: Lease) -> int:
    """A stream's class rank (0 = high); a job waiting `aging_ms` ranks as high, batch never."""
    rank = DISPATCH_ORDER.index(entry.priority)
    aged = (now - entry.enqueued_at) * 1000 >= lease.aging_ms
    return 0 if aged and entry.priority is not Priority.BATCH else rank


def _due(keys: Keys, job_id: str, priority: Priority, route: str) -> DueJob:
    return DueJob(job_id, keys.job(job_id), keys.events(job_id), keys.stream(priority, route),
                  Counter.of(priority, route))  # fmt: skip
