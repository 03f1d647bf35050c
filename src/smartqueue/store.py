"""The job store: the only module that talks to Redis.

Data model (key names in keys.py):
- one stream per (priority, route) holds jobs waiting for dispatch; each entry carries the job
  id, the request body and the allow-listed headers. One consumer group reads them all.
- one small hash per job is its record (status, route, priority, attempts, timestamps, result);
  queued and running records never expire, terminal ones expire on their own after a TTL.
- the dead-letter queue is a stream of its own; moving a job there is one XADD.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from smartqueue import lua
from smartqueue.breaker import Breaker, BreakerState
from smartqueue.config import Settings
from smartqueue.errors import Conflict, StoreUnavailable
from smartqueue.keys import GROUP, Keys
from smartqueue.models import (
    PRIORITY_ORDER,
    ConsumerInfo,
    DlqEntry,
    ErrorInfo,
    JobRecord,
    JobStatus,
    Priority,
    sources_of,
)
from smartqueue.openai_format import assemble_completion

P = ParamSpec("P")
T = TypeVar("T")

RawEntries = list[tuple[bytes, dict[bytes, bytes]]]
Arg = str | bytes | int | float  # one Lua script argument

DEFAULT_PATH = "/v1/chat/completions"

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _translate_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn Redis connection trouble into StoreUnavailable (503 + Retry-After)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            result = await method(*args, **kwargs)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"the job store (Redis) is unavailable: {error}") from error
        _raise_lost_cancel()
        return result

    return wrapper


def _raise_lost_cancel() -> None:
    """Deliver a cancel that redis-py swallowed.

    redis-py writes through `asyncio.wait_for`, which on Python 3.11 returns the result instead
    of raising when the task is cancelled just as the write completes; the task would run on
    (a claim keeper renewing forever, a deadline that never fires).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True)
class NewJob:
    """A submission about to be stored."""

    job_id: str
    route: str
    priority: Priority
    payload: bytes
    headers: dict[str, str]
    created_at: float
    idempotency_digest: str | None = None
    path: str = DEFAULT_PATH


@dataclass(frozen=True)
class Admission:
    """Outcome of an enqueue: accepted (maybe as a duplicate) or refused at `depth`."""

    accepted: bool
    depth: int  # jobs waiting when the submission arrived
    job_id: str | None = None
    duplicate: bool = False
    position: int | None = None

    @property
    def queue_depth(self) -> int:
        """Jobs waiting once this submission is in."""
        return self.depth + 1 if self.accepted and not self.duplicate else self.depth


@dataclass(frozen=True)
class StreamEntry:
    """A job as read from a stream (or the DLQ): what is needed to run it again."""

    entry_id: str
    job_id: str
    payload: bytes
    headers: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)
    path: str = DEFAULT_PATH

    def job_fields(self, job_id: str | None = None) -> list[str | bytes]:
        """The fields of a stream entry that runs this job (as `job_id` when given)."""
        fields: list[str | bytes] = ["job_id", job_id or self.job_id, "payload", self.payload,
                                     "headers", json.dumps(self.headers)]  # fmt: skip
        if self.path != DEFAULT_PATH:
            fields += ["path", self.path]
        return fields


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _decode_fields(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {
        key.decode(): value.decode(errors="replace")
        for key, value in raw.items()
        if key != b"payload"
    }


def entry_from_raw(entry_id: bytes, raw: Mapping[bytes, bytes]) -> StreamEntry:
    """A stream entry from Redis' reply."""
    fields = _decode_fields(raw)
    return StreamEntry(
        entry_id=entry_id.decode(),
        job_id=fields.get("job_id", ""),
        payload=raw.get(b"payload", b""),
        headers=json.loads(fields.get("headers", "{}")),
        fields=fields,
        path=fields.get("path", DEFAULT_PATH),
    )


def _parse_result(raw: bytes | None, content_type: str | None) -> Any:
    if raw is None:
        return None
    if content_type and content_type.startswith("text/event-stream"):
        return assemble_completion(raw) or raw.decode(errors="replace")
    if content_type and "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode(errors="replace")


def _optional_float(value: str | None) -> float | None:
    return float(value) if value else None


def record_from_hash(job_id: str, raw: Mapping[bytes, bytes]) -> JobRecord:
    """Build the API view of a job from its stored hash."""
    fields = _decode_fields({k: v for k, v in raw.items() if k != b"result"})
    error = fields.get("error")
    return JobRecord(
        job_id=job_id,
        status=JobStatus(fields["status"]),
        route=fields["route"],
        priority=Priority(fields["priority"]),
        attempts=int(fields.get("attempts", "0")),
        gpu=fields.get("gpu") or None,
        created_at=float(fields["created_at"]),
        started_at=_optional_float(fields.get("started_at")),
        completed_at=_optional_float(fields.get("completed_at")),
        result_status=int(fields["result_status"]) if fields.get("result_status") else None,
        result=_parse_result(raw.get(b"result"), fields.get("result_content_type")),
        reason=fields.get("reason") or None,
        error=ErrorInfo.model_validate_json(error) if error else None,
        retry_of=fields.get("retry_of") or None,
        retried_as=fields.get("retried_as") or None,
    )


def transition_args(target: JobStatus, *, ttl_s: int, updates: Mapping[str, Arg]) -> list[Arg]:
    """ARGV for the lifecycle-guarded status change in lua.py."""
    allowed = sorted(status.value for status in sources_of(target))
    ttl = ttl_s if target.is_terminal else 0
    args: list[Arg] = [target.value, ttl, len(allowed), *allowed]
    for name, value in updates.items():
        args += [name, value]
    return args


@dataclass(frozen=True)
class TakenJob:
    """A job a consumer took from a stream, with a slot on `gpu`."""

    entry: StreamEntry
    stream: str
    priority: Priority
    route: str
    gpu: str
    deliveries: int
    attempts: int
    created_at: float

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.entry.job_id


@dataclass(frozen=True)
class Lease:
    """How long a consumer's hold on a job and its slot lasts without renewal."""

    lease_ms: int
    aging_ms: int


class Store:
    """Jobs, streams, dead letters and consumers in Redis, behind typed methods."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keys: Keys,
        routes: list[str],
        ttl_s: int = 86_400,
        idempotency_ttl_s: int = 86_400,
        socket_timeout_s: float = 1.0,
    ):
        self.redis = client
        self.keys = keys
        self.routes = routes
        self.terminal_ttl_s = ttl_s
        self.idempotency_ttl_s = idempotency_ttl_s
        # Blocking reads stay well within the client's socket timeout.
        self.max_block_ms = max(1, int(socket_timeout_s * 500))
        self._depths = client.register_script(lua.DEPTHS)
        self._enqueue = client.register_script(lua.ENQUEUE)
        self._ahead = client.register_script(lua.AHEAD_IN_STREAM)
        self._transition = client.register_script(lua.TRANSITION)
        self._cancel = client.register_script(lua.CANCEL)
        self._dead_letter = client.register_script(lua.DEAD_LETTER)
        self._dlq_retry = client.register_script(lua.DLQ_RETRY)
        self._take = client.register_script(lua.TAKE)
        self._renew = client.register_script(lua.RENEW)
        self._finish = client.register_script(lua.FINISH)
        self._retry_later = client.register_script(lua.RETRY_LATER)
        self._move_due = client.register_script(lua.MOVE_DUE)
        self._expire_waiting = client.register_script(lua.EXPIRE_WAITING)
        self._breaker_cas = client.register_script(lua.BREAKER_CAS)

    @classmethod
    def connect(cls, settings: Settings, *, routes: list[str]) -> Store:
        """A store on `settings.redis_url` that fails fast (no retries) when Redis is down."""
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        keys = Keys(settings.key_prefix)
        return cls(
            client,
            keys=keys,
            routes=routes,
            ttl_s=settings.terminal_ttl_s,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            socket_timeout_s=settings.redis_timeout_s,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()

    @_translate_errors
    async def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers."""
        await self.redis.ping()

    @_translate_errors
    async def ensure_groups(self) -> None:
        """Create the consumer group on every job stream, at id 0 so no earlier job is missed."""
        for stream in self.keys.streams(self.routes):
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    # --- submissions -------------------------------------------------------------------------

    @_translate_errors
    async def enqueue(self, job: NewJob, *, ceiling: int) -> Admission:
        """Admit and store a job in one atomic step; refused when depth >= `ceiling`."""
        streams = self.keys.streams(self.routes)
        target = streams.index(self.keys.stream(job.priority, job.route)) + 1
        before = PRIORITY_ORDER[: PRIORITY_ORDER.index(job.priority) + 1]
        ahead = [streams.index(self.keys.stream(p, job.route)) + 1 for p in before]
        keys = [*streams, self.keys.job(job.job_id), self.keys.wake]
        if job.idempotency_digest:
            keys.append(self.keys.idempotency(job.idempotency_digest))
        path = "" if job.path == DEFAULT_PATH else job.path
        args = [GROUP, len(streams), target, ceiling, job.job_id, job.payload,
                json.dumps(job.headers), job.route, job.priority.value, job.created_at,
                self.idempotency_ttl_s, path, *ahead]  # fmt: skip
        code, job_id, depth, position = await self._enqueue(keys=keys, args=args)
        return Admission(
            accepted=code != 0,
            depth=int(depth),
            job_id=_text(job_id) or None,
            duplicate=code == 2,
            position=int(position) if int(position) >= 0 else None,
        )

    @_translate_errors
    async def depths(self) -> dict[Priority, int]:
        """Jobs waiting for dispatch, per priority."""
        streams = self.keys.streams(self.routes)
        per_stream = await self._depths(keys=streams, args=[GROUP])
        totals = dict.fromkeys(PRIORITY_ORDER, 0)
        per_priority = len(self.routes)
        for index, depth in enumerate(per_stream):
            totals[PRIORITY_ORDER[index // per_priority]] += int(depth)
        return totals

    # --- job records -------------------------------------------------------------------------

    @_translate_errors
    async def get_job(self, job_id: str) -> JobRecord | None:
        """A job's record with its position while queued; None when unknown or expired."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.job(job_id)))
        if not raw or b"status" not in raw:
            return None
        record = record_from_hash(job_id, raw)
        if record.status is JobStatus.QUEUED and raw.get(b"entry"):
            record.position = await self._position(record, raw[b"entry"].decode())
        return record

    @_translate_errors
    async def get_result(self, job_id: str) -> tuple[int, str, bytes] | None:
        """The GPU's answer exactly as stored: (status, content type, body); None if none."""
        fields = ["result_status", "result_content_type", "result"]
        raw = cast(list[bytes | None], await self.redis.hmget(self.keys.job(job_id), fields))
        status, content_type, body = raw
        if status is None or body is None:
            return None
        return int(status), _text(content_type) or "application/json", body

    async def _position(self, record: JobRecord, entry_id: str) -> int:
        own = self.keys.stream(record.priority, record.route)
        ahead = int(await self._ahead(keys=[own], args=[GROUP, entry_id]))
        higher = PRIORITY_ORDER[: PRIORITY_ORDER.index(record.priority)]
        if higher:
            streams = [self.keys.stream(priority, record.route) for priority in higher]
            ahead += sum(int(depth) for depth in await self._depths(keys=streams, args=[GROUP]))
        return ahead

    @_translate_errors
    async def transition(
        self, job_id: str, target: JobStatus, **updates: str | int | float
    ) -> JobStatus | None:
        """Move a job to `target` if the lifecycle allows; the previous status, else None."""
        args = transition_args(target, ttl_s=self.terminal_ttl_s, updates=updates)
        previous = await self._transition(keys=[self.keys.job(job_id)], args=args)
        return JobStatus(_text(previous) or "") if previous else None

    @_translate_errors
    async def cancel(self, job_id: str, *, now: float) -> JobStatus | None:
        """Cancel a job that has not ended; its status before, or None if it had ended."""
        fields = ["priority", "route"]
        raw = cast(list[bytes | None], await self.redis.hmget(self.keys.job(job_id), fields))
        if raw[0] is None or raw[1] is None:
            return None
        priority, route = (_text(value) or "" for value in raw)
        keys = [self.keys.job(job_id), self.keys.stream(Priority(priority), route),
                self.keys.delayed]  # fmt: skip
        updates: dict[str, Arg] = {"completed_at": now, "reason": "cancelled"}
        transition = transition_args(
            JobStatus.CANCELLED, ttl_s=self.terminal_ttl_s, updates=updates
        )
        previous = await self._cancel(keys=keys, args=[job_id, *transition])
        return JobStatus(_text(previous) or "") if previous else None

    # --- dead letters ------------------------------------------------------------------------

    @_translate_errors
    async def dead_letter(
        self,
        job: TakenJob,
        *,
        consumer: str,
        reason: str,
        error: ErrorInfo | None,
        now: float,
        answer: tuple[int, bytes] | None = None,
    ) -> str | None:
        """Move a taken job to the DLQ (O(1)) and free its slot; None when the claim was lost.

        `answer` is the GPU's own error (status, body), kept as the job's result.
        """
        error_json = error.model_dump_json() if error else ""
        dlq_fields: list[str | bytes] = [
            "route", job.route, "priority", job.priority.value, "reason", reason,
            "attempts", str(job.attempts), "error", error_json, "dead_at", repr(now),
            *job.entry.job_fields(),
        ]  # fmt: skip
        updates: dict[str, Arg] = {
            "reason": reason, "error": error_json, "completed_at": now, "attempts": job.attempts
        }  # fmt: skip
        if answer is not None:
            updates |= {"result_status": answer[0], "result": answer[1],
                        "result_content_type": "application/json"}  # fmt: skip
        transition = transition_args(JobStatus.DEAD, ttl_s=self.terminal_ttl_s, updates=updates)
        args: list[Arg] = [GROUP, consumer, job.entry.entry_id, job.job_id, len(dlq_fields),
                           *dlq_fields, *transition]  # fmt: skip
        keys = [self.keys.job(job.job_id), self.keys.dlq, job.stream, self.keys.slots(job.gpu)]
        dlq_id = await self._dead_letter(keys=keys, args=args)
        return _text(dlq_id) if dlq_id else None

    @_translate_errors
    async def dlq_length(self) -> int:
        """Entries in the dead-letter queue."""
        return int(await self.redis.xlen(self.keys.dlq))

    @_translate_errors
    async def dlq_entries(self, *, limit: int, after: str | None = None) -> list[DlqEntry]:
        """DLQ entries, oldest first, after entry id `after` when given."""
        start = f"({after}" if after and _STREAM_ID.match(after) else "-"
        raw = cast(
            RawEntries, await self.redis.xrange(self.keys.dlq, min=start, max="+", count=limit)
        )
        return [_dlq_entry(entry_from_raw(entry_id, fields)) for entry_id, fields in raw]

    @_translate_errors
    async def dlq_retry(self, entry_id: str, *, new_job_id: str, now: float) -> str | None:
        """Re-run a dead job as `new_job_id`, exactly once; the old job id, else None."""
        entry = await self._dlq_entry(entry_id)
        if entry is None:
            return None
        route, priority = entry.fields["route"], Priority(entry.fields["priority"])
        if route not in self.routes:
            raise Conflict(f"route {route!r} of this dead job is no longer in the fleet")
        keys = [self.keys.dlq, self.keys.stream(priority, route),
                self.keys.job(new_job_id), self.keys.job(entry.job_id)]  # fmt: skip
        args: list[Arg] = [entry_id, route, priority.value, now, entry.job_id, new_job_id,
                           *entry.job_fields(new_job_id)]  # fmt: skip
        done = await self._dlq_retry(keys=keys, args=args)
        return entry.job_id if done else None

    @_translate_errors
    async def dlq_discard(self, entry_id: str) -> bool:
        """Delete a DLQ entry; False when there was none."""
        if not _STREAM_ID.match(entry_id):
            return False
        return bool(await self.redis.xdel(self.keys.dlq, entry_id))

    async def _dlq_entry(self, entry_id: str) -> StreamEntry | None:
        if not _STREAM_ID.match(entry_id):
            return None
        raw = cast(RawEntries, await self.redis.xrange(self.keys.dlq, min=entry_id, max=entry_id))
        return entry_from_raw(*raw[0]) if raw else None

    # --- overview ----------------------------------------------------------------------------

    @_translate_errors
    async def in_flight(self) -> int:
        """Entries delivered to a consumer and not yet handled, across all job streams."""
        total = 0
        for stream in self.keys.streams(self.routes):
            try:
                summary = await self.redis.xpending(stream, GROUP)
            except ResponseError:
                continue
            total += int(summary["pending"])
        return total

    @_translate_errors
    async def dispatched_total(self) -> int:
        """Entries ever delivered to consumers, across all job streams (the groups' counters)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.keys.streams(self.routes):
                pipe.xinfo_groups(stream)
            replies = await pipe.execute(raise_on_error=False)
        return sum(
            int(group.get("entries-read") or 0)
            for reply in replies
            if isinstance(reply, list)
            for group in reply
        )

    @_translate_errors
    async def delayed_count(self) -> int:
        """Jobs waiting out a retry backoff."""
        return int(await self.redis.zcard(self.keys.delayed))

    @_translate_errors
    async def consumers(self, *, now: float, ttl_s: float) -> list[ConsumerInfo]:
        """Consumers that sent a heartbeat within `ttl_s`; older ones are forgotten."""
        await self.redis.zremrangebyscore(self.keys.consumers, "-inf", now - ttl_s)
        members = cast(list[bytes], await self.redis.zrange(self.keys.consumers, 0, -1))
        ids = [member.decode() for member in members]
        async with self.redis.pipeline(transaction=False) as pipe:
            for consumer_id in ids:
                pipe.hgetall(self.keys.consumer(consumer_id))
            described = await pipe.execute()
        return [_consumer(cid, raw) for cid, raw in zip(ids, described, strict=True) if raw]

    # --- the consumer engine -----------------------------------------------------------------

    def gpu_streams(self, routes: list[str]) -> list[tuple[str, Priority, str]]:
        """(stream, priority, route) for every priority of `routes`, high first."""
        return [
            (self.keys.stream(priority, route), priority, route)
            for priority in PRIORITY_ORDER
            for route in routes
        ]

    @_translate_errors
    async def take(
        self,
        gpu: str,
        *,
        slots: int,
        routes: list[str],
        consumer: str,
        lease: Lease,
        probe: bool = False,
    ) -> TakenJob | None:
        """The next job `gpu` should run among `routes`, with a slot on it; None if none.

        Nothing is taken while the GPU's breaker is open, or half-open unless `probe` (the
        caller holds the half-open claim).
        """
        candidates = self.gpu_streams(routes)
        keys = [self.keys.slots(gpu), self.keys.breaker(gpu),
                *(stream for stream, _, _ in candidates)]  # fmt: skip
        ranks = [PRIORITY_ORDER.index(priority) for _, priority, _ in candidates]
        prefix = self.keys.job_prefix()
        args: list[Arg] = [GROUP, consumer, slots, lease.lease_ms, lease.aging_ms, prefix, gpu,
                           "1" if probe else "0", *ranks]  # fmt: skip
        while True:
            try:
                reply = await self._take(keys=keys, args=args)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                await self.ensure_groups()  # Redis lost its groups (flushed, or restored)
                continue
            if not reply:
                return None
            if int(reply[0]) > 0:
                return _taken(reply, candidates, gpu)

    @_translate_errors
    async def renew(self, job: TakenJob, *, consumer: str, lease: Lease) -> bool:
        """Refresh the claim on a running job and its slot; False once the claim was lost."""
        keys = [job.stream, self.keys.slots(job.gpu)]
        args: list[Arg] = [GROUP, consumer, job.entry.entry_id, job.job_id, lease.lease_ms]
        return bool(await self._renew(keys=keys, args=args))

    @_translate_errors
    async def finish(
        self,
        job: TakenJob,
        target: JobStatus,
        *,
        consumer: str,
        updates: Mapping[str, Arg],
    ) -> bool:
        """Commit a terminal outcome while still holding the job; False when refused."""
        keys = [self.keys.job(job.job_id), job.stream, self.keys.slots(job.gpu)]
        transition = transition_args(target, ttl_s=self.terminal_ttl_s, updates=updates)
        args: list[Arg] = [GROUP, consumer, job.entry.entry_id, job.job_id, *transition]
        return bool(await self._finish(keys=keys, args=args))

    @_translate_errors
    async def retry_later(
        self,
        job: TakenJob,
        *,
        consumer: str,
        due_ms: int,
        updates: Mapping[str, Arg],
    ) -> bool:
        """Put the job aside until `due_ms` (processing -> retrying); False when refused."""
        keys = [self.keys.job(job.job_id), job.stream, self.keys.slots(job.gpu),
                self.keys.delayed]  # fmt: skip
        transition = transition_args(JobStatus.RETRYING, ttl_s=0, updates=updates)
        args: list[Arg] = [GROUP, consumer, job.entry.entry_id, job.job_id, due_ms, *transition]
        return bool(await self._retry_later(keys=keys, args=args))

    @_translate_errors
    async def move_due_retries(self, *, now_ms: int, limit: int = 100) -> int:
        """Send jobs whose backoff is over back to their stream; how many moved."""
        keys = [self.keys.delayed, self.keys.wake]
        args: list[Arg] = [self.keys.job_prefix(), self.keys.stream_prefix(), now_ms, limit]
        return int(await self._move_due(keys=keys, args=args))

    @_translate_errors
    async def expire_waiting(self, *, now: float, max_wait_s: float, limit: int = 100) -> int:
        """Dead-letter (reason `expired`) jobs that waited for dispatch past `max_wait_s`."""
        cutoff_ms = int((now - max_wait_s) * 1000)
        error = ErrorInfo(
            message=f"no GPU could take the job within {max_wait_s:g} s", type="expired"
        ).model_dump_json()
        expired = 0
        for stream, priority, route in self.gpu_streams(self.routes):
            args: list[Arg] = [GROUP, cutoff_ms, limit, self.keys.job_prefix(), priority.value,
                               route, self.terminal_ttl_s, repr(now), error]  # fmt: skip
            expired += int(await self._expire_waiting(keys=[stream, self.keys.dlq], args=args))
        return expired

    @_translate_errors
    async def reclaim_stale(
        self, *, consumer: str, min_idle_ms: int, count: int = 20
    ) -> list[tuple[TakenJob, int]]:
        """Take over entries whose consumer went silent (XAUTOCLAIM), with how often each was."""
        reclaimed: list[tuple[TakenJob, int]] = []
        for stream, priority, route in self.gpu_streams(self.routes):
            reply: list[Any] = await self.redis.xautoclaim(
                stream, GROUP, consumer, min_idle_ms, "0-0", count=count
            )
            for entry_id, raw in reply[1]:
                entry = entry_from_raw(entry_id, raw)
                job, reclaims = await self._reclaimed(entry, stream, priority, route)
                reclaimed.append((job, reclaims))
        return reclaimed

    async def _reclaimed(
        self, entry: StreamEntry, stream: str, priority: Priority, route: str
    ) -> tuple[TakenJob, int]:
        record = self.keys.job(entry.job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(record, "reclaims", 1)
            pipe.hmget(record, ["gpu", "deliveries", "attempts", "created_at"])
            reclaims, meta = await pipe.execute()
        gpu, deliveries, attempts, created = (_text(v) or "0" for v in meta)
        job = TakenJob(entry, stream, priority, route, gpu, int(deliveries), int(attempts),
                       float(created))  # fmt: skip
        return job, int(reclaims)

    @_translate_errors
    async def wait_for_work(self, *, timeout_s: float) -> None:
        """Block until a job may be ready (or `timeout_s` passes)."""
        await self.redis.blpop([self.keys.wake], timeout=min(timeout_s, self.max_block_ms / 1000))

    @_translate_errors
    async def slots_in_use(self, gpus: list[str], *, now: float) -> dict[str, int]:
        """Live slot reservations per GPU, across every replica."""
        now_ms = int(now * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for gpu in gpus:
                pipe.zcount(self.keys.slots(gpu), now_ms, "+inf")
            counts = await pipe.execute()
        return {gpu: int(count) for gpu, count in zip(gpus, counts, strict=True)}

    @_translate_errors
    async def breakers(self, gpus: list[str]) -> dict[str, tuple[Breaker, str]]:
        """Every GPU's breaker with its version (for compare-and-set)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for gpu in gpus:
                pipe.hgetall(self.keys.breaker(gpu))
            raw = await pipe.execute()
        return {gpu: _breaker(fields) for gpu, fields in zip(gpus, raw, strict=True)}

    @_translate_errors
    async def set_breaker(self, gpu: str, breaker: Breaker, *, version: str) -> bool:
        """Write `breaker` if nobody changed it since `version` was read."""
        fields: list[str | float | int] = ["state", breaker.state.value, "failures",
                                           breaker.failures]  # fmt: skip
        for name in ("opened_at", "probe_deadline", "reason"):
            value = getattr(breaker, name)
            if value is not None:
                fields += [name, value]
        done = await self._breaker_cas(keys=[self.keys.breaker(gpu)], args=[version, *fields])
        return bool(done)

    @_translate_errors
    async def heartbeat(self, info: ConsumerInfo, *, ttl_s: float) -> None:
        """Record that a consumer is alive, and what it is doing."""
        key = self.keys.consumer(info.id)
        fields = info.model_dump(exclude={"id"}, exclude_none=True)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={name: str(value) for name, value in fields.items()})
            pipe.pexpire(key, max(1, round(ttl_s * 1000)))  # 1.5 s stays 1.5 s
            pipe.zadd(self.keys.consumers, {info.id: info.last_heartbeat})
            await pipe.execute()

    @_translate_errors
    async def forget_consumer(self, consumer_id: str) -> None:
        """Remove a consumer that stopped cleanly."""
        await self.redis.delete(self.keys.consumer(consumer_id))
        await self.redis.zrem(self.keys.consumers, consumer_id)

    @_translate_errors
    async def append_chunk(self, job_id: str, chunk: bytes) -> None:
        """Append one streamed completion chunk (an SSE event) to the job's event stream."""
        await self.redis.xadd(self.keys.events(job_id), {"type": "chunk", "data": chunk})

    @_translate_errors
    async def read_events(
        self, job_id: str, *, after: str, block_ms: int | None, count: int = 100
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """Events of a job after stream id `after`, waiting up to `block_ms` (None: no wait)."""
        block = None if block_ms is None else min(block_ms, self.max_block_ms)
        reply = cast(list[Any], await self.redis.xread(
            {self.keys.events(job_id): after}, count=count, block=block
        ))  # fmt: skip
        if not reply:
            return []
        return [(entry_id.decode(), fields) for entry_id, fields in reply[0][1]]

    async def done_notifications(self) -> AsyncIterator[str]:
        """Ids of jobs as they end, from every replica (pub/sub; may miss some while down)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.keys.done_channel)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    yield _text(message["data"]) or ""
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"job notifications lost: {error}") from error
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


def _taken(reply: list[Any], candidates: list[tuple[str, Priority, str]], gpu: str) -> TakenJob:
    index, entry_id, raw_fields, deliveries, attempts, created_at = reply
    stream, priority, route = candidates[int(index) - 1]
    pairs = dict(zip(raw_fields[::2], raw_fields[1::2], strict=True))
    entry = entry_from_raw(entry_id, pairs)
    return TakenJob(entry, stream, priority, route, gpu, int(deliveries), int(attempts),
                    float(created_at))  # fmt: skip


def _breaker(raw: Mapping[bytes, bytes]) -> tuple[Breaker, str]:
    fields = _decode_fields(raw)
    breaker = Breaker(
        state=BreakerState(fields.get("state", BreakerState.CLOSED.value)),
        failures=int(fields.get("failures", "0")),
        opened_at=_optional_float(fields.get("opened_at")),
        probe_deadline=_optional_float(fields.get("probe_deadline")),
        reason=fields.get("reason"),
    )
    return breaker, fields.get("version", "0")


def _dlq_entry(entry: StreamEntry) -> DlqEntry:
    error = entry.fields.get("error")
    return DlqEntry(
        id=entry.entry_id,
        job_id=entry.job_id,
        route=entry.fields.get("route", ""),
        priority=Priority(entry.fields.get("priority") or Priority.NORMAL),
        reason=entry.fields.get("reason", ""),
        attempts=int(entry.fields.get("attempts", "0")),
        last_error=ErrorInfo.model_validate_json(error) if error else None,
        dead_at=float(entry.fields.get("dead_at", "0")),
    )


def _consumer(consumer_id: str, raw: Mapping[bytes, bytes]) -> ConsumerInfo:
    fields = _decode_fields(raw)
    return ConsumerInfo(
        id=consumer_id,
        replica=fields.get("replica", ""),
        state=fields.get("state", "unknown"),
        current_job=fields.get("current_job") or None,
        last_heartbeat=float(fields.get("last_heartbeat", "0")),
        jobs_done=int(fields.get("jobs_done", "0")),
    )
