"""Submitting jobs and reading their status."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from smartqueue.api.deps import AdmissionsDep, CallerDep, SettingsDep, StoreDep, caller_of
from smartqueue.api.events import job_event_stream
from smartqueue.api.plain_route import PlainRoute, header_parameter
from smartqueue.api.records import job_record
from smartqueue.api.services import Services
from smartqueue.api.submission import HeaderLimits, build_job
from smartqueue.errors import BadRequest, Conflict, NotFound
from smartqueue.logs import traced
from smartqueue.models import EnqueueResponse, ErrorBody, JobRecord, JobStatus
from smartqueue.owners import Caller
from smartqueue.queue import StoredJob
from smartqueue.store import Store

router = APIRouter(tags=["jobs"])
log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")

ANY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The job: any non-empty body, normally an OpenAI chat-completions "
        "request. A JSON content type needs one JSON object; other types are queued as sent.",
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "model": "any",
                    "messages": [{"role": "user", "content": "Say hello"}],
                    "max_tokens": 32,
                },
            },
            "text/plain": {"schema": {"type": "string", "minLength": 1}},
        },
    }
}

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Invalid JSON (or JSON nested too deep), a JSON body that is not an object, "
        "a kept header that is not printable ASCII",
        413: "Body over the size limit",
        422: "Unknown route or priority, empty body, bad Idempotency-Key, or "
        "`idempotency_key_reused` (the key was used for another body or route)",
        431: "A kept header, or all of them, over the header limits",
        503: "Queue full, store unavailable, or `outcome_unknown` (Location names the job "
        "it would be: retry with the same Idempotency-Key) — see Retry-After",
    }.items()
}
NOT_YOURS = "Unknown or expired job, or another owner's"


ENQUEUE_HEADERS = [
    header_parameter("x-syslog-model", "Route (default: default)"),
    header_parameter("x-syslog-priority", "high, normal (default) or low"),
    header_parameter("idempotency-key", "Same key, same job (kept 24 h)"),
]


async def enqueue(request: Request) -> Response:
    """Queue a job for the best GPU of its route; 202 with where to follow it."""
    services: Services = request.app.state.services
    settings = services.settings
    job = await build_job(request, services.fleet, limit_bytes=settings.max_body_bytes,
                          caller=caller_of(services, request),
                          header_limits=HeaderLimits.from_settings(settings))  # fmt: skip
    accepted = await services.admissions.admit(job)
    return Response(accepted.model_dump_json(), status_code=202, media_type="application/json",
                    headers={"Location": f"/status/{accepted.job_id}"})  # fmt: skip


# The hottest route: a PlainRoute (no dependency solving, no response validation per request),
# documented as FastAPI would document the headers it reads.
router.add_api_route(
    "/enqueue", enqueue, methods=["POST"], status_code=202, response_model=EnqueueResponse,
    responses=ERRORS, openapi_extra={**ANY_BODY, "parameters": ENQUEUE_HEADERS},
    summary="Submit a job", route_class_override=PlainRoute,
)  # fmt: skip


@router.get(
    "/status/{job_id}",
    response_model=JobRecord,
    responses={404: {"model": ErrorBody, "description": NOT_YOURS}},
    summary="A job's status and result",
)
async def job_status(
    job_id: str, store: StoreDep, admissions: AdmissionsDep, caller: CallerDep
) -> JobRecord:
    """The job record: status, timestamps, position and ETA while queued, result or error.

    Only for the job's owner (the caller's credential) or an admin; others get 404.
    """
    stored = await _existing(store, job_id, caller)
    record = job_record(stored, position=await store.jobs.position(stored))
    if record.position is not None and (rate := await admissions.drain_rate()):
        record.eta_s = round((record.position + 1) / rate, 1)
    return record


async def _existing(store: Store, job_id: str, caller: Caller) -> StoredJob:
    record = await store.jobs.get(job_id) if JOB_ID.match(job_id) else None
    if record is None or not caller.may_see(record.owner):  # another's job looks unknown
        raise NotFound(f"no job {job_id!r} (unknown, or expired 24 h after it ended)")
    return record


@router.post(
    "/status/{job_id}/cancel",
    response_model=JobRecord,
    responses={404: {"model": ErrorBody, "description": NOT_YOURS},
               409: {"model": ErrorBody, "description": "Ended"}},
    summary="Cancel a job",
)  # fmt: skip
async def cancel_job(
    job_id: str, store: StoreDep, request: Request, caller: CallerDep
) -> JobRecord:
    """A queued job never runs; a running job's GPU call is aborted. Cancelling again is fine.

    Only for the job's owner or an admin; others get 404.
    """
    before = await _existing(store, job_id, caller)
    await store.jobs.cancel(job_id, now=time.time())
    record = await _existing(store, job_id, caller)
    if record.status is not JobStatus.CANCELLED:
        raise Conflict(f"job {job_id} already ended ({record.status.value}); nothing to cancel")
    if before.status is not JobStatus.CANCELLED:
        fields = {"job_id": job_id, "route": record.route, "priority": record.priority.value,
                  "gpu": record.gpu, "was": before.status.value}  # fmt: skip
        log.info("cancelled", extra=traced(fields, request.headers))
    return job_record(record)


@router.get(
    "/status/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
               400: {"model": ErrorBody, "description": "Bad Last-Event-ID"},
               404: {"model": ErrorBody, "description": NOT_YOURS}},
    summary="A job's events (SSE)",
)  # fmt: skip
async def job_events(
    job_id: str, request: Request, store: StoreDep, settings: SettingsDep, caller: CallerDep
) -> StreamingResponse:
    """Lifecycle events and streamed completion chunks as server-sent events.

    Resumable: send the last `id:` received as `Last-Event-ID` to continue after it. Only for
    the job's owner or an admin; others get 404.
    """
    record = await _existing(store, job_id, caller)
    after = request.headers.get("last-event-id")
    if after is not None and not EVENT_ID.match(after):
        raise BadRequest(f"Last-Event-ID {after!r} is not an event id of this stream",
                         param="Last-Event-ID")  # fmt: skip
    events = job_event_stream(store, record, after=after, limit_s=settings.hold_s)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
