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
from dataclasses import dataclass

import anyio
from fastapi import Request
from fastapi.responses import Response

from smartqueue.api.errors import error_response
from smartqueue.errors import WaitTimedOut
from smartqueue.models import JobStatus
from smartqueue.queue import StoredJob
from smartqueue.sse import encode_event, encode_raw_event
from smartqueue.store import Store
from smartqueue.watch import JobWatch

MAX_RETRY_AFTER_S = 60  # newer OpenAI SDKs don't retry on longer ones
RECHECK_S = 0.5  # how often a held request looks for its client having gone
REREAD_S = 5.0  # how often it re-reads its job without a notification (one may be lost)

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
    store: Store, watch: JobWatch, job_id: str, *, timeout_s: float, request: Request
) -> StoredJob | None:
    """The job's record once it ended; None when `timeout_s` passed first.

    A client that disconnects meanwhile cancels its job (it never runs, or its GPU call is
    aborted).
    """
    deadline = time.monotonic() + timeout_s
    with watch.watching(job_id) as ended:
        while True:
            record = await store.jobs.get(job_id)
            if record is None or record.status.is_terminal:
                return record
            reread_at = time.monotonic() + REREAD_S
            ended.clear()
            while not ended.is_set() and time.monotonic() < min(reread_at, deadline):
                if await request.is_disconnected():
                    await store.jobs.cancel(job_id, now=time.time())
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), timeout=RECHECK_S)
            if not ended.is_set() and time.monotonic() >= deadline:
                return None


def answer_from_job(record: StoredJob) -> Response:
    """The GPU's own answer for an ended job, or an error in the one shape."""
    headers = {"X-Smartqueue-Job-Id": record.job_id}
    if (stored := record.result) is not None:
        return Response(stored.body, status_code=stored.status, media_type=stored.content_type,
                        headers=headers)  # fmt: skip
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


async def first_event(
    store: Store, job_id: str, *, timeout_s: float, request: Request
) -> tuple[str, dict[bytes, bytes]] | None:
    """The job's first chunk or terminal status, waiting up to `timeout_s` (None: timed out)."""
    deadline = time.monotonic() + timeout_s
    after = "0-0"
    while (remaining := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            await store.jobs.cancel(job_id, now=time.time())
            return None
        block_ms = int(min(remaining, RECHECK_S) * 1000) + 1
        for event_id, fields in await store.events.read(job_id, after=after, block_ms=block_ms):
            after = event_id
            if fields.get(b"type") == b"chunk" or _ended(fields):
                return event_id, fields
    return None


def _ended(fields: dict[bytes, bytes]) -> bool:
    return fields.get(b"status", b"").decode() in {s.value for s in JobStatus if s.is_terminal}


async def relay_chunks(
    store: Store, job_id: str, *, first: tuple[str, dict[bytes, bytes]]
) -> AsyncIterator[bytes]:
    """The GPU's SSE events as they arrive, ending with its `[DONE]` or an error event.

    If the client goes away mid-stream, the job is cancelled (its GPU call is aborted).
    """
    finished = False
    try:
        event_id, fields = first
        while True:
            if fields.get(b"type") == b"chunk":
                yield encode_raw_event(fields.get(b"data", b""))
            elif fields.get(b"status") is not None:
                status = fields[b"status"].decode()
                if status == JobStatus.COMPLETED.value:
                    finished = True
                    return
                if status in (JobStatus.RETRYING.value, JobStatus.DEAD.value,
                              JobStatus.CANCELLED.value):  # fmt: skip
                    yield error_event(f"the GPU stream failed ({status})", code=status)
                    return
            event_id, fields = await _next_event(store, job_id, after=event_id)
    finally:
        if not finished:  # the client went away (or the stream failed): stop the job
            with anyio.CancelScope(shield=True):
                await store.jobs.cancel(job_id, now=time.time())


async def _next_event(store: Store, job_id: str, *, after: str) -> tuple[str, dict[bytes, bytes]]:
    while True:
        events = await store.events.read(job_id, after=after, block_ms=1000, count=1)
        if events:
            return events[0]
