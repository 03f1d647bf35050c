"""Batches: records, feeding their requests into the queue, and ending them with their files.

A batch's requests become ordinary jobs of priority `batch` (a request's end keeps its line
with the batch in the same step: finish.lua, dead_letter.lua); this part moves the batch
itself: fed in steps that move its cursor atomically, stopped, finalized, ended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

from smartqueue.batches import TIMESTAMP_FIELDS, BatchStatus, Stop, StoredBatch, StoredFile
from smartqueue.models import Priority
from smartqueue.store import scripts
from smartqueue.store.codec import created_ms, decode_fields, stored_owner, text
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.files import file_fields
from smartqueue.store.keys import Counter
from smartqueue.store.scripts import Arg, FedRequest, FileRecord


def batch_fields(batch: StoredBatch) -> dict[str, Arg]:
    """A new batch's record."""
    fields: dict[str, Arg] = {
        "id": batch.id, "owner": batch.owner, "status": batch.status.value,
        "endpoint": batch.endpoint, "input_file_id": batch.input_file_id,
        "created_at": batch.created_at, "expires_at": batch.expires_at, "total": batch.total,
        "completed": batch.completed, "failed": batch.failed, "fed": 0, "next_line": 0,
        "next_offset": 0, "stop": batch.stop.value, "route": batch.route,
        "metadata": json.dumps(batch.metadata), "errors": json.dumps(batch.errors),
    }  # fmt: skip
    fields |= {name: value for name, value in (batch.times or {}).items()}
    return fields


def stored_batch(raw: Mapping[bytes, bytes]) -> StoredBatch:
    """A batch's stored hash as a StoredBatch."""
    f = decode_fields(raw)
    return StoredBatch(
        id=f["id"], owner=f["owner"], status=BatchStatus(f["status"]), endpoint=f["endpoint"],
        input_file_id=f["input_file_id"], created_at=int(f["created_at"]),
        expires_at=int(f["expires_at"]), total=int(f.get("total", 0)),
        completed=int(f.get("completed", 0)), failed=int(f.get("failed", 0)),
        fed=int(f.get("fed", 0)), next_offset=int(f.get("next_offset", 0)),
        stop=Stop(f.get("stop", "")), route=f.get("route", ""),
        metadata=json.loads(f.get("metadata") or "null"),
        errors=json.loads(f.get("errors") or "null"),
        output_file_id=f.get("output_file_id", ""), error_file_id=f.get("error_file_id", ""),
        times={name: int(float(f[name])) for name in TIMESTAMP_FIELDS if f.get(name)},
    )  # fmt: skip


class Batches:
    """Batch records and their progress."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def add(self, batch: StoredBatch, *, now: float) -> None:
        """Record a new batch, list it for its owner and, while it runs, hold its input file
        and put it among the batches maintenance feeds (one transaction); `now` orders the
        lists finer than `created_at`'s whole seconds."""
        keys = self.context.keys
        async with self.context.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.batch(batch.id), items=[i for p in batch_fields(batch).items() for i in p]
            )
            pipe.zadd(keys.batches(batch.owner), {batch.id: now})
            if batch.status is BatchStatus.IN_PROGRESS:
                pipe.zadd(keys.open_batches, {batch.id: now})
                pipe.hset(keys.file(batch.input_file_id), "batch", batch.id)
            await pipe.execute()

    @translate_errors
    async def get(self, batch_id: str) -> StoredBatch | None:
        """A batch's record; None when unknown."""
        raw = await self.context.redis.hgetall(self.context.keys.batch(batch_id))
        found = cast(dict[bytes, bytes], raw)
        return stored_batch(found) if b"id" in found else None

    @translate_errors
    async def ids(self, owner: str) -> list[str]:
        """An owner's batch ids, newest first."""
        raw = await self.context.redis.zrevrange(self.context.keys.batches(owner), 0, -1)
        return [member.decode() for member in cast(list[bytes], raw)]

    @translate_errors
    async def open_ids(self) -> list[str]:
        """Batches not yet ended, oldest first (fed in that order)."""
        raw = await self.context.redis.zrange(self.context.keys.open_batches, 0, -1)
        return [member.decode() for member in cast(list[bytes], raw)]

    @translate_errors
    async def waiting(self, routes: list[str]) -> dict[str, int]:
        """Batch requests waiting for dispatch per route (from the depth counters)."""
        counters = [Counter.of(Priority.BATCH, route) for route in routes]
        fields = [name for counter in counters for name in (counter.entered, counter.left)]
        raw = await self.context.redis.hmget(self.context.keys.counts, fields)
        values = [int(value or 0) for value in cast(list[bytes | None], raw)]
        return {route: max(0, values[2 * i] - values[2 * i + 1]) for i, route in enumerate(routes)}

    def fed_request(
        self, *, job_id: str, route: str, custom_id: str, path: str, payload: bytes
    ) -> FedRequest:
        """A request about to be fed, with its keys."""
        keys = self.context.keys
        return FedRequest(job_id, payload, json.dumps({"content-type": "application/json"}),
                          path, route, custom_id, keys.stream(Priority.BATCH, route),
                          keys.job(job_id), Counter.of(Priority.BATCH, route))  # fmt: skip

    @translate_errors
    async def feed(
        self, batch: StoredBatch, requests: list[FedRequest], *, next_offset: int, now: float
    ) -> int:
        """Put `requests` (the batch's next ones) in line and move its cursor; how many went
        (0 when another replica fed them first, or the batch stopped)."""
        keys = self.context.keys
        call = scripts.batch_feed(
            batch=keys.batch(batch.id), counts=keys.counts, wake=keys.wake, batch_id=batch.id,
            cursor=batch.fed, next_line=batch.fed + len(requests), next_offset=next_offset,
            created_ms=created_ms(now), owner=stored_owner(batch.owner), requests=requests,
        )  # fmt: skip
        return int(await self.context.scripts.run(call))

    @translate_errors
    async def stop(self, batch_id: str, why: Stop, *, now: float) -> BatchStatus | None:
        """Stop feeding a running batch (cancel: -> cancelling); the status before, or None."""
        cancel = why is Stop.CANCELLED
        call = scripts.batch_stop(
            batch=self.context.keys.batch(batch_id), why=why.value,
            status=BatchStatus.CANCELLING.value if cancel else "",
            at_field="cancelling_at" if cancel else "expiring_at", now=now,
        )  # fmt: skip
        previous = await self.context.scripts.run(call)
        return BatchStatus(text(previous) or "") if previous else None

    @translate_errors
    async def to_finalizing(self, batch_id: str, *, now: float) -> bool:
        """-> finalizing once nothing more is fed and every fed request ended."""
        call = scripts.batch_finalizing(batch=self.context.keys.batch(batch_id), now=now)
        return bool(await self.context.scripts.run(call))

    @translate_errors
    async def claim_finalizer(self, batch_id: str, *, holder: str, ttl_s: int) -> bool:
        """Become the one writing a batch's files for `ttl_s` (another replica takes over after)."""
        key = self.context.keys.batch_finalizer(batch_id)
        return bool(await self.context.redis.set(key, holder, nx=True, ex=ttl_s))

    @translate_errors
    async def release_finalizer(self, batch_id: str, *, holder: str) -> None:
        """Give up writing a batch's files (only when `holder` still is the one writing)."""
        key = self.context.keys.batch_finalizer(batch_id)
        if await self.context.redis.get(key) == holder.encode():
            await self.context.redis.delete(key)

    @translate_errors
    async def lines(self, batch_id: str, custom_ids: list[str]) -> list[bytes | None]:
        """The kept `outcome:line` of each request (None for one never run)."""
        raw = await self.context.redis.hmget(self.context.keys.batch_lines(batch_id), custom_ids)
        return cast(list[bytes | None], raw)

    @translate_errors
    async def finish(
        self, batch: StoredBatch, status: BatchStatus, *, now: float, counts: tuple[int, int],
        files: list[tuple[str, StoredFile]],
    ) -> bool:  # fmt: skip
        """End a finalizing batch with its counts and files (`files`: (role, file) with role
        `output` or `error`); False when another replica ended it first."""
        keys = self.context.keys
        by_role = {role: file.id for role, file in files}
        call = scripts.batch_finish(
            batch=keys.batch(batch.id), lines=keys.batch_lines(batch.id),
            open_batches=keys.open_batches, owner_files=keys.files(batch.owner),
            input_file=keys.file(batch.input_file_id), status=status.value,
            at_field=f"{status.value}_at", now=now, completed=counts[0], failed=counts[1],
            output_id=by_role.get("output", ""), error_id=by_role.get("error", ""),
            files=[FileRecord(keys.file(f.id), f.id, now, file_fields(f))
                   for _, f in files],
        )  # fmt: skip
        return bool(await self.context.scripts.run(call))

    def line_key(self, batch_id: str) -> tuple[str, str]:
        """The lines hash and record of a batch (a request's end writes to both)."""
        return self.context.keys.batch_lines(batch_id), self.context.keys.batch(batch_id)


def parse_kept(value: bytes) -> tuple[str, bytes]:
    """A kept `outcome:line` value as (outcome, line)."""
    outcome, _, line = value.partition(b":")
    return outcome.decode(), line
