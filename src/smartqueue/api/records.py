"""A stored job as the API shows it: the GPU's answer parsed, a streamed one assembled."""

from __future__ import annotations

import json
from typing import Any

from smartqueue.models import JobRecord
from smartqueue.openai_format import assemble_completion
from smartqueue.queue import StoredJob, StoredResult


def parse_result(result: StoredResult | None) -> Any:
    """JSON as JSON, an SSE transcript as the one completion it streamed, else text."""
    if result is None:
        return None
    if result.content_type.startswith("text/event-stream"):
        return assemble_completion(result.body) or result.body.decode(errors="replace")
    if "json" in result.content_type:
        try:
            return json.loads(result.body)
        except ValueError:
            pass
    return result.body.decode(errors="replace")


def job_record(job: StoredJob, *, position: int | None = None) -> JobRecord:
    """The `GET /status/{job_id}` view of a stored job."""
    return JobRecord(
        job_id=job.job_id,
        status=job.status,
        route=job.route,
        priority=job.priority,
        attempts=job.attempts,
        gpu=job.gpu,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        position=position,
        result_status=job.result.status if job.result else None,
        result=parse_result(job.result),
        reason=job.reason,
        error=job.error,
        retry_of=job.retry_of,
        retried_as=job.retried_as,
    )
