"""The job store: the only module that talks to Redis.

Data model (key names in keys.py):
- one stream per (priority, route) holds jobs waiting for dispatch; each entry carries the job
  id, the request body and the allow-listed headers. One consumer group reads them all.
- one small hash per job is its record (status, route, priority, attempts, timestamps, result);
  queued and running records never expire, terminal ones expire on their own after a TTL.
- the dead-letter queue is a stream of its own; moving a job there is one XADD.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from smartqueue import lua
from smartqueue.config import Settings
from smartqueue.errors import StoreUnavailable
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

P = ParamSpec("P")
T = TypeVar("T")

RawEntries = list[tuple[bytes, dict[bytes, bytes]]]

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _translate_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn Redis connection trouble into StoreUnavailable (503 + Retry-After)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"the job store (Redis) is unavailable: {error}") from error

    return wrapper


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


def _entry_from_raw(entry_id: bytes, raw: Mapping[bytes, bytes]) -> StreamEntry:
    fields = _decode_fields(raw)
    return StreamEntry(
        entry_id=entry_id.decode(),
        job_id=fields.get("job_id", ""),
        payload=raw.get(b"payload", b""),
        headers=json.loads(fields.get("headers", "{}")),
        fields=fields,
    )


def _parse_result(raw: bytes | None, content_type: str | None) -> Any:
    if raw is None:
        return None
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


def transition_args(
    target: JobStatus, *, ttl_s: int, updates: Mapping[str, str | int | float]
) -> list[str | int | float]:
    """ARGV for the lifecycle-guarded status change in lua.py."""
    allowed = sorted(status.value for status in sources_of(target))
    ttl = ttl_s if target.is_terminal else 0
    args: list[str | int | float] = [target.value, ttl, len(allowed), *allowed]
    for name, value in updates.items():
        args += [name, value]
    return args


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
    ):
        self.redis = client
        self.keys = keys
        self.routes = routes
        self.terminal_ttl_s = ttl_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self._depths = client.register_script(lua.DEPTHS)
        self._enqueue = client.register_script(lua.ENQUEUE)
        self._ahead = client.register_script(lua.AHEAD_IN_STREAM)
        self._transition = client.register_script(lua.TRANSITION)
        self._cancel_queued = client.register_script(lua.CANCEL_QUEUED)
        self._dead_letter = client.register_script(lua.DEAD_LETTER)
        self._dlq_retry = client.register_script(lua.DLQ_RETRY)

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
        keys = [*streams, self.keys.job(job.job_id)]
        if job.idempotency_digest:
            keys.append(self.keys.idempotency(job.idempotency_digest))
        args = [GROUP, len(streams), target, ceiling, job.job_id, job.payload,
                json.dumps(job.headers), job.route, job.priority.value, job.created_at,
                self.idempotency_ttl_s, *ahead]  # fmt: skip
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
    async def cancel_queued(self, job_id: str, *, now: float) -> bool:
        """Cancel a job that is still queued; its entry leaves the stream at the same time."""
        fields = ["priority", "route", "entry"]
        raw = cast(list[bytes | None], await self.redis.hmget(self.keys.job(job_id), fields))
        if None in raw:
            return False
        priority, route, entry = (_text(value) or "" for value in raw)
        stream = self.keys.stream(Priority(priority), route)
        updates: dict[str, str | int | float] = {"completed_at": now, "reason": "cancelled"}
        transition = transition_args(
            JobStatus.CANCELLED, ttl_s=self.terminal_ttl_s, updates=updates
        )
        args = [entry, *transition]
        previous = await self._cancel_queued(keys=[self.keys.job(job_id), stream], args=args)
        return bool(previous)

    # --- dead letters ------------------------------------------------------------------------

    @_translate_errors
    async def dead_letter(
        self,
        entry: StreamEntry,
        *,
        priority: Priority,
        route: str,
        reason: str,
        error: ErrorInfo | None,
        attempts: int,
        now: float,
    ) -> str | None:
        """Move a job to the DLQ (O(1)); its stream entry is handled. The DLQ entry id."""
        error_json = error.model_dump_json() if error else ""
        dlq_fields: dict[str, str | bytes] = {
            "job_id": entry.job_id, "route": route, "priority": priority.value, "reason": reason,
            "attempts": str(attempts), "error": error_json, "dead_at": repr(now),
            "payload": entry.payload, "headers": json.dumps(entry.headers),
        }  # fmt: skip
        updates: dict[str, str | int | float] = {
            "reason": reason, "error": error_json, "completed_at": now, "attempts": attempts
        }  # fmt: skip
        flat = [item for pair in dlq_fields.items() for item in pair]
        transition = transition_args(JobStatus.DEAD, ttl_s=self.terminal_ttl_s, updates=updates)
        args: list[Any] = [GROUP, entry.entry_id, len(flat), *flat, *transition]
        keys = [self.keys.job(entry.job_id), self.keys.dlq, self.keys.stream(priority, route)]
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
        return [_dlq_entry(_entry_from_raw(entry_id, fields)) for entry_id, fields in raw]

    @_translate_errors
    async def dlq_retry(self, entry_id: str, *, new_job_id: str, now: float) -> str | None:
        """Re-run a dead job as `new_job_id`, exactly once; the old job id, else None."""
        entry = await self._dlq_entry(entry_id)
        if entry is None:
            return None
        route, priority = entry.fields["route"], Priority(entry.fields["priority"])
        keys = [self.keys.dlq, self.keys.stream(priority, route),
                self.keys.job(new_job_id), self.keys.job(entry.job_id)]  # fmt: skip
        args: list[Any] = [entry_id, new_job_id, entry.payload, json.dumps(entry.headers), route,
                priority.value, now, entry.job_id]  # fmt: skip
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
        return _entry_from_raw(*raw[0]) if raw else None

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
