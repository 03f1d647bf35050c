"""Submitting jobs and reading their status."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from smartqueue.api.deps import ServicesDep, StoreDep
from smartqueue.api.submission import build_job
from smartqueue.errors import NotFound, QueueFull
from smartqueue.models import EnqueueResponse, ErrorBody, JobRecord, JobStatus

router = APIRouter(tags=["jobs"])

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

ANY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The job: any body, normally an OpenAI chat-completions request.",
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "model": "any",
                    "messages": [{"role": "user", "content": "Say hello"}],
                    "max_tokens": 32,
                },
            }
        },
    }
}

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        413: "Body over the size limit",
        422: "Unknown route or priority, empty or invalid body",
        503: "Queue full or store unavailable (see Retry-After)",
    }.items()
}


@router.post(
    "/enqueue",
    status_code=202,
    response_model=EnqueueResponse,
    responses=ERRORS,
    openapi_extra=ANY_BODY,
    summary="Submit a job",
)
async def enqueue(
    request: Request,
    response: Response,
    services: ServicesDep,
    x_syslog_model: Annotated[str | None, Header(description="Route (default: default)")] = None,
    x_syslog_priority: Annotated[
        str | None, Header(description="high, normal (default) or low")
    ] = None,
    idempotency_key: Annotated[
        str | None, Header(description="Same key, same job (kept 24 h)")
    ] = None,
) -> EnqueueResponse:
    """Queue a job for the best GPU of its route; 202 with where to follow it."""
    job = await build_job(request, services.fleet, limit_bytes=services.settings.max_body_bytes)
    ceiling = services.backpressure.ceiling(job.priority)
    admission = await services.store.enqueue(job, ceiling=ceiling)
    outcome = "duplicate" if admission.duplicate else "accepted"
    services.metrics.submissions.labels(job.priority.value, outcome if admission.accepted
                                        else "refused").inc()  # fmt: skip
    if not admission.accepted or admission.job_id is None:
        retry_after = services.backpressure.retry_after_s(admission.depth)
        raise QueueFull(
            f"queue depth {admission.depth} is at the {job.priority.value}-priority ceiling "
            f"{ceiling}; retry later",
            retry_after_s=retry_after,
        )
    warning = services.backpressure.warning(admission.depth)
    if warning and not admission.duplicate:
        services.metrics.backpressure_warnings.inc()
    response.headers["Location"] = f"/status/{admission.job_id}"
    return EnqueueResponse(
        job_id=admission.job_id,
        status=JobStatus.QUEUED,
        queue_depth=admission.queue_depth,
        position=admission.position,
        warning=warning,
        duplicate=admission.duplicate,
    )


@router.get(
    "/status/{job_id}",
    response_model=JobRecord,
    responses={404: {"model": ErrorBody, "description": "Unknown or expired job"}},
    summary="A job's status and result",
)
async def job_status(job_id: str, store: StoreDep) -> JobRecord:
    """The job record: status, timestamps, position while queued, result or error."""
    record = await store.get_job(job_id) if JOB_ID.match(job_id) else None
    if record is None:
        raise NotFound(f"no job {job_id!r} (unknown, or expired 24 h after it ended)")
    return record
