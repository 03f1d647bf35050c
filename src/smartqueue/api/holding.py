"""Holding an OpenAI client's connection while its job waits and runs, then answering as the GPU.

An OpenAI SDK reads any 2xx as success, so a held request never answers 202: it answers the
GPU's own status and body, or a 503 with Retry-After and the job id when the hold runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from fastapi import Request
from fastapi.responses import Response

from smartqueue.api.errors import error_response
from smartqueue.errors import StoreUnavailable, WaitTimedOut
from smartqueue.models import JobStatus
from smartqueue.queue import StoredJob, StoredResult
from smartqueue.sse import encode_event, encode_raw_event
from smartqueue.store import Store
from smartqueue.watch import LocalHold

Event = tuple[str, dict[bytes, bytes]]  # event id, fields

MAX_RETRY_AFTER_S = 60  # newer OpenAI SDKs don't retry on longer ones
RECHECK_S = 0.5  # how often a held request looks for its client having gone
REREAD_S = 5.0  # how often it re-reads its job without a notification (one may be lost)
STREAM_BLOCK_MS = 1000  # a held stream's Redis read blocks this long at most

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Preference:
    """What the client asked for with RFC 7240 `Prefer`."""

    respond_async: bool = False
    wait_s: float | None = None


def parse_prefer(header: str | None) -> Preference:
    """`respond-async` and `wait=N` from a Prefer header (unknown preferences are ignored)."""
    if not header:
        return Preference()
    wait = _WAIT.search(header)
    tokens = {token.strip().lower() for token in re.split(r"[,;]", header)}
    return Preference("respond-async" in tokens, float(wait.group(1)) if wait else None)


def timed_out(job_id: str, waited_s: float) -> WaitTimedOut:
    """The answer when a hold runs out: the job goes on, the client may poll it."""
    return WaitTimedOut(
        f"job {job_id} is still waiting for a GPU after {waited_s:g} s; "
        f"poll /status/{job_id} or retry later",
        retry_after_s=min(MAX_RETRY_AFTER_S, max(1, int(waited_s))),
        job_id=job_id,
    )


async def wait_for_end(
    store: Store, hold: LocalHold, *, timeout_s: float, request: Request, fresh: bool
) -> StoredJob | StoredResult | None:
    """The answer a consumer of this replica handed over, else the job's record once it ended;
    None when `timeout_s` passed first.

    A `fresh` job (enqueued after its hold opened) is known to be queued: no first read. A
    client that disconnects meanwhile cancels its job (it never runs, or its GPU call is
    aborted).
    """
    deadline = time.monotonic() + timeout_s
    reread = not fresh
    while True:
        hold.woken.clear()  # before the read: a wake-up during it is kept
        if hold.answer is not None:
            return hold.answer
        if reread:
            record = await store.jobs.get(hold.job_id)
            if record is None or record.status.is_terminal:
                return record
        reread = True
        until = min(time.monotonic() + REREAD_S, deadline)
        if not await _woken(store, hold, until=until, request=request):
            return None
        if not hold.woken.is_set() and time.monotonic() >= deadline:
            return None


async def _woken(store: Store, hold: LocalHold, *, until: float, request: Request) -> bool:
    """Wait for the hold to be woken or `until`; False (the job cancelled) if the client left."""
    while not hold.woken.is_set() and time.monotonic() < until:
        if await request.is_disconnected():
            await store.jobs.cancel(hold.job_id, now=time.time())
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                hold.woken.wait(), timeout=min(RECHECK_S, until - time.monotonic())
            )
    return True


def answer_from_result(job_id: str, stored: StoredResult) -> Response:
    """The GPU's answer exactly as it was stored."""
    return Response(stored.body, status_code=stored.status, media_type=stored.content_type,
                    headers={"X-Smartqueue-Job-Id": job_id})  # fmt: skip


def answer_from_job(record: StoredJob) -> Response:
    """The GPU's own answer for an ended job, or an error in the one shape."""
    headers = {"X-Smartqueue-Job-Id": record.job_id}
    if (stored := record.result) is not None:
        return answer_from_result(record.job_id, stored)
    if record.status is JobStatus.CANCELLED:
        message = f"job {record.job_id} was cancelled"
        return error_response(409, message, error_type="conflict_error", code="cancelled",
                              headers=headers)  # fmt: skip
    message = record.error.message if record.error else "the job failed"
    return error_response(
        502, f"job {record.job_id} failed ({record.reason}): {message}",
        error_type="upstream_error", code=record.reason or "failed", headers=headers,
    )  # fmt: skip


def error_event(message: str, code: str) -> bytes:
    """An SSE event an OpenAI SDK raises as APIError (it ends the stream: no `[DONE]`)."""
    body = {"error": {"message": message, "type": "upstream_error", "code": code}}
    return encode_event(json.dumps(body).encode())


@dataclass
class RedisFeed:
    """A held stream's events as Redis has them, read beside the local hold.

    They are the stream when the job runs on another replica, and the first signal of an end
    that no local consumer reports (cancelled, expired). The reader stops at the end of the
    stream, or after its current read once `stop` is set.
    """

    store: Store
    hold: LocalHold
    events: list[Event] = field(default_factory=list)
    error: StoreUnavailable | None = None
    stop: bool = False

    async def run(self) -> None:
        """Read until the stream's end (or `stop`), waking the hold on each batch."""
        after, chunked = "0-0", False
        try:
            while not self.stop:
                batch = await self.store.events.read(self.hold.job_id, after=after,
                                                     block_ms=STREAM_BLOCK_MS)  # fmt: skip
                if not batch:
                    continue
                after = batch[-1][0]
                self.events += batch
                self.hold.woken.set()
                chunked = chunked or any(f.get(b"type") == b"chunk" for _, f in batch)
                if any(_stream_ends(fields, chunked=chunked) for _, fields in batch):
                    return
        except StoreUnavailable as error:
            self.error = error
            self.hold.woken.set()

    def started(self) -> int | None:
        """Where the stream starts: the first chunk or end; None while there is neither."""
        for index, (_, fields) in enumerate(self.events):
            if fields.get(b"type") == b"chunk" or _ended(fields):
                return index
        return None


def _stream_ends(fields: dict[bytes, bytes], *, chunked: bool) -> bool:
    status = fields.get(b"status", b"").decode()
    return _ended(fields) or (chunked and status == JobStatus.RETRYING.value)


LOCAL = -1  # first_event: the stream comes from a consumer of this replica


async def first_event(feed: RedisFeed, *, timeout_s: float, request: Request) -> int | None:
    """LOCAL, or the index of the first chunk or end in `feed.events`; None when timed out.

    The local hold is chosen when a consumer of this replica runs the job and has something
    (a chunk, its answer): it sets `running` before calling the GPU, so before any chunk of
    its run can reach Redis.
    """
    hold, deadline = feed.hold, time.monotonic() + timeout_s
    while True:
        hold.woken.clear()
        if hold.running and (hold.chunks or hold.answer is not None):
            return LOCAL
        if feed.error is not None:
            raise feed.error
        if (index := feed.started()) is not None:
            return index
        if not await _woken(feed.store, hold, until=deadline, request=request):
            return None
        if not hold.woken.is_set():
            return None


def _ended(fields: dict[bytes, bytes]) -> bool:
    return fields.get(b"status", b"").decode() in {s.value for s in JobStatus if s.is_terminal}


async def relay_chunks(feed: RedisFeed, *, first: int) -> AsyncIterator[bytes]:
    """The GPU's SSE events as they arrive, ending with its `[DONE]` or an error event.

    From the local hold when `first` is LOCAL, else from the Redis feed at `first`. If the
    client goes away mid-stream, the job is cancelled (its GPU call is aborted).
    """
    finished = False
    try:
        if first == LOCAL:
            feed.stop = True  # the local hold has it all; Redis keeps a copy for the others
            source = _local_events(feed)
        else:
            source = _feed_events(feed, first)
        async for event in source:
            if event is None:
                finished = True
                return
            yield event
    finally:
        if not finished:  # the client went away (or the stream failed): stop the job
            with anyio.CancelScope(shield=True):
                await feed.store.jobs.cancel(feed.hold.job_id, now=time.time())


async def _local_events(feed: RedisFeed) -> AsyncIterator[bytes | None]:
    """Chunks as the local consumer hands them over; None once its commit succeeded."""
    hold, sent = feed.hold, 0
    while True:
        hold.woken.clear()
        while sent < len(hold.chunks):
            yield encode_raw_event(hold.chunks[sent])
            sent += 1
        if hold.answer is not None:
            yield None
            return
        if hold.ended:  # the run ended without completing: the record says how
            record = await feed.store.jobs.get(hold.job_id)
            status = record.status.value if record else "failed"
            yield error_event(f"the GPU stream failed ({status})", code=status)
            return
        await hold.woken.wait()


async def _feed_events(feed: RedisFeed, index: int) -> AsyncIterator[bytes | None]:
    """The Redis feed's chunks from `index`; None at completion."""
    while True:
        feed.hold.woken.clear()
        for _, fields in feed.events[index:]:
            index += 1
            if fields.get(b"type") == b"chunk":
                yield encode_raw_event(fields.get(b"data", b""))
            elif (status := fields.get(b"status", b"").decode()) == JobStatus.COMPLETED.value:
                yield None
                return
            elif status in (JobStatus.RETRYING.value, JobStatus.DEAD.value,
                            JobStatus.CANCELLED.value):  # fmt: skip
                yield error_event(f"the GPU stream failed ({status})", code=status)
                return
        if feed.error is not None:
            raise feed.error
        await feed.hold.woken.wait()
