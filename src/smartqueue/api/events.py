"""A job's events as server-sent events: lifecycle changes and streamed completion chunks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from smartqueue.models import JobStatus
from smartqueue.queue import StoredJob
from smartqueue.sse import encode_event, event_data
from smartqueue.store import Store

TERMINAL = frozenset(status.value for status in JobStatus if status.is_terminal)


def _status_data(record: StoredJob, status: str) -> bytes:
    return json.dumps({"job_id": record.job_id, "status": status}).encode()


def _render(record: StoredJob, event_id: str, fields: dict[bytes, bytes]) -> tuple[bytes, bool]:
    """The SSE bytes of a stored event, and whether it is the job's last."""
    if fields.get(b"type") == b"chunk":
        data = event_data(fields.get(b"data", b""))
        return encode_event(data, event_id=event_id, event="chunk"), False
    status = fields.get(b"status", b"").decode()
    encoded = encode_event(_status_data(record, status), event_id=event_id, event="status")
    return encoded, status in TERMINAL


async def job_event_stream(
    store: Store, record: StoredJob, *, after: str | None, limit_s: float
) -> AsyncIterator[bytes]:
    """Events after `after` (from the start, with the current status first, when None)."""
    if after is None:
        yield encode_event(_status_data(record, record.status.value), event="status")
    cursor = after or "0-0"
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        events = await store.events.read(record.job_id, after=cursor, block_ms=1000)
        if not events and await _has_ended(store, record.job_id):
            # Its last event was written with its last status: one more read gets it (if new).
            events = await store.events.read(record.job_id, after=cursor, block_ms=None)
            for event_id, fields in events:
                yield _render(record, event_id, fields)[0]
            return
        for event_id, fields in events:
            cursor = event_id
            data, last = _render(record, event_id, fields)
            yield data
            if last:
                return


async def _has_ended(store: Store, job_id: str) -> bool:
    record = await store.jobs.get(job_id)
    return record is None or record.status.is_terminal
