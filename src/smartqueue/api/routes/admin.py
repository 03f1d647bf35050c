"""The dead-letter queue: list it (anyone), retry or discard entries (admin only)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from smartqueue.api.deps import AdminDep, StoreDep
from smartqueue.errors import NotFound
from smartqueue.models import DlqList, DlqRetryResponse, ErrorBody, JobStatus, new_job_id

router = APIRouter(tags=["dead letters"])

ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong admin token"},
    403: {"model": ErrorBody, "description": "No admin token configured"},
    404: {"model": ErrorBody, "description": "No such entry (or already handled)"},
}


@router.get("/dlq", response_model=DlqList, summary="Dead-letter queue")
async def list_dead_letters(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(description="Entry id to continue after")] = None,
) -> DlqList:
    """Dead jobs, oldest first, with reason, attempts and last error."""
    entries = await store.dlq.entries(limit=limit, after=after)
    return DlqList(total=await store.dlq.length(), entries=entries)


@router.post(
    "/dlq/{entry_id}/retry",
    response_model=DlqRetryResponse,
    status_code=202,
    dependencies=[AdminDep],
    responses=ADMIN_ERRORS,
    summary="Re-run a dead job",
)
async def retry_dead_letter(entry_id: str, store: StoreDep, response: Response) -> DlqRetryResponse:
    """Queue the dead job again as a new job, exactly once even if called twice at once."""
    new_id = new_job_id()
    old_id = await store.dlq.retry(entry_id, new_job_id=new_id, now=time.time())
    if old_id is None:
        raise NotFound(f"no dead-letter entry {entry_id!r} (or it was already retried)")
    response.headers["Location"] = f"/status/{new_id}"
    return DlqRetryResponse(job_id=new_id, retry_of=old_id, status=JobStatus.QUEUED)


@router.delete(
    "/dlq/{entry_id}",
    status_code=204,
    dependencies=[AdminDep],
    responses=ADMIN_ERRORS,
    summary="Discard a dead job",
)
async def discard_dead_letter(entry_id: str, store: StoreDep) -> Response:
    """Remove the entry from the dead-letter queue."""
    if not await store.dlq.discard(entry_id):
        raise NotFound(f"no dead-letter entry {entry_id!r}")
    return Response(status_code=204)
