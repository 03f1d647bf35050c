"""Decoding what Redis holds into the queue's values (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from smartqueue.breaker import Breaker, BreakerState
from smartqueue.models import ConsumerInfo, DlqEntry, ErrorInfo, JobStatus, Priority
from smartqueue.owners import ANONYMOUS
from smartqueue.queue import DEFAULT_PATH, StoredJob, StoredResult, StreamEntry

RawEntries = list[tuple[bytes, dict[bytes, bytes]]]


def text(value: bytes | str | None) -> str | None:
    """A reply value as text."""
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def decode_fields(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    """A hash or entry as text, without its payload."""
    return {
        key.decode(): value.decode(errors="replace")
        for key, value in raw.items()
        if key != b"payload"
    }


def optional_float(value: str | None) -> float | None:
    """A stored number, or None when absent."""
    return float(value) if value else None


def stored_owner(owner: str) -> str:
    """A record's owner as stored: '' (the field left out) for the anonymous owner, the most
    common one, so a queued job's record stays small."""
    return "" if owner == ANONYMOUS else owner


def stored_priority(priority: Priority) -> str:
    """A record's priority as stored: '' (the field left out) for the default, normal."""
    return "" if priority is Priority.NORMAL else priority.value


def priority_of(stored: str | None) -> Priority:
    """A record's (or DLQ entry's) priority from its stored field: absent means normal."""
    return Priority(stored or Priority.NORMAL)


def created_ms(created_at: float) -> int:
    """A creation time as stored (`created_ms`): whole milliseconds, which Redis keeps as an
    integer, smaller than the 14-character seconds it replaces."""
    return round(created_at * 1000)


def created_s(created_ms: str | bytes | None, created_at: str | bytes | None) -> float:
    """A record's creation time in seconds: `created_ms`, or `created_at` (seconds) in records
    written before it."""
    if created_ms:
        return int(created_ms) / 1000
    return float(created_at or 0)


def entry_from_raw(entry_id: bytes, raw: Mapping[bytes, bytes]) -> StreamEntry:
    """A stream entry from Redis' reply."""
    fields = decode_fields(raw)
    return StreamEntry(
        entry_id=entry_id.decode(),
        job_id=fields.get("job_id", ""),
        payload=raw.get(b"payload", b""),
        headers=json.loads(fields.get("headers") or "{}"),  # absent: the defaults (stored_headers)
        fields=fields,
        path=fields.get("path", DEFAULT_PATH),
    )


def pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A flat field/value list (as Lua returns it) as a mapping."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def stored_job(job_id: str, raw: Mapping[bytes, bytes]) -> StoredJob:
    """A job's stored hash as a StoredJob."""
    fields = decode_fields({k: v for k, v in raw.items() if k != b"result"})
    error = fields.get("error")
    return StoredJob(
        job_id=job_id,
        status=JobStatus(fields["status"]),
        route=fields["route"],
        priority=priority_of(fields.get("priority")),
        attempts=int(fields.get("attempts", "0")),
        created_at=created_s(fields.get("created_ms"), fields.get("created_at")),
        gpu=fields.get("gpu") or None,
        started_at=optional_float(fields.get("started_at")),
        completed_at=optional_float(fields.get("completed_at")),
        result=stored_result(fields, raw.get(b"result")),
        reason=fields.get("reason") or None,
        error=ErrorInfo.model_validate_json(error) if error else None,
        retry_of=fields.get("retry_of") or None,
        retried_as=fields.get("retried_as") or None,
        entry=fields.get("entry") or None,
        seq=int(fields["seq"]) if fields.get("seq") else None,
        owner=fields.get("owner") or ANONYMOUS,
    )


def stored_result(fields: Mapping[str, str], body: bytes | None) -> StoredResult | None:
    """The GPU's stored answer, when there is one."""
    status = fields.get("result_status")
    if not status or body is None:
        return None
    content_type = fields.get("result_content_type") or "application/json"
    return StoredResult(int(status), content_type, body)


def breaker_from_hash(raw: Mapping[bytes, bytes]) -> tuple[Breaker, str]:
    """A breaker and the version it was read at."""
    fields = decode_fields(raw)
    breaker = Breaker(
        state=BreakerState(fields.get("state", BreakerState.CLOSED.value)),
        failures=int(fields.get("failures", "0")),
        opened_at=optional_float(fields.get("opened_at")),
        probe_deadline=optional_float(fields.get("probe_deadline")),
        reason=fields.get("reason"),
    )
    return breaker, fields.get("version", "0")


def dlq_entry(entry: StreamEntry) -> DlqEntry:
    """A DLQ stream entry as the API lists it."""
    error = entry.fields.get("error")
    return DlqEntry(
        id=entry.entry_id,
        job_id=entry.job_id,
        route=entry.fields.get("route", ""),
        priority=priority_of(entry.fields.get("priority")),
        reason=entry.fields.get("reason", ""),
        attempts=int(entry.fields.get("attempts", "0")),
        last_error=ErrorInfo.model_validate_json(error) if error else None,
        dead_at=float(entry.fields.get("dead_at", "0")),
    )


def consumer_info(consumer_id: str, raw: Mapping[bytes, bytes]) -> ConsumerInfo:
    """A consumer's registry entry."""
    fields = decode_fields(raw)
    return ConsumerInfo(
        id=consumer_id,
        replica=fields.get("replica", ""),
        state=fields.get("state", "unknown"),
        current_job=fields.get("current_job") or None,
        last_heartbeat=float(fields.get("last_heartbeat", "0")),
        jobs_done=int(fields.get("jobs_done", "0")),
    )
