"""Admin operations: the dead-letter queue (list for anyone; retry, discard — one entry or a
filtered batch — for admins) and draining this replica."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from smartqueue.api.deps import AdminDep, CallerDep, ServicesDep, StoreDep
from smartqueue.api.services import Services
from smartqueue.dispatcher import Dispatcher
from smartqueue.errors import Conflict, InvalidInput, NotFound
from smartqueue.models import (
    DlqBulkDiscard,
    DlqBulkRetry,
    DlqList,
    DlqRetryResponse,
    DrainStatus,
    ErrorBody,
    JobStatus,
    new_job_id,
)

router = APIRouter(tags=["dead letters"])
drain_router = APIRouter(tags=["admin"], dependencies=[AdminDep])

ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong admin token"},
    403: {"model": ErrorBody, "description": "No admin token configured"},
    404: {"model": ErrorBody, "description": "No such entry (or already handled)"},
}


@router.get(
    "/dlq", response_model=DlqList, responses={422: {"model": ErrorBody}},
    summary="Dead-letter queue",
)  # fmt: skip
async def list_dead_letters(
    store: StoreDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(description="Entry id to continue after")] = None,
) -> DlqList:
    """Dead jobs, oldest first, with reason, attempts and last error (job ids: admins only)."""
    entries = await store.dlq.entries(limit=limit, after=after)
    if not caller.admin:
        entries = [entry.model_copy(update={"job_id": None}) for entry in entries]
    return DlqList(total=await store.dlq.length(), entries=entries)


ReasonQuery = Annotated[str | None, Query(description="Only entries dead for this reason")]
RouteQuery = Annotated[str | None, Query(description="Only entries of this route")]


def _require_filter(reason: str | None, route: str | None) -> None:
    if reason is None and route is None:
        raise InvalidInput("name the entries: give reason=, route= or both", param="reason")


@router.post(
    "/dlq/retry",
    response_model=DlqBulkRetry,
    dependencies=[AdminDep],
    responses=ADMIN_ERRORS,
    summary="Re-run dead jobs by reason and/or route",
)
async def retry_dead_letters(
    store: StoreDep, reason: ReasonQuery = None, route: RouteQuery = None
) -> DlqBulkRetry:
    """Queue every matching dead job again, each exactly once even if called twice at once."""
    _require_filter(reason, route)
    retried, skipped = [], 0
    for entry in await store.dlq.matching(reason=reason, route=route):
        new_id = new_job_id()
        try:
            old_id = await store.dlq.retry(entry.id, new_job_id=new_id, now=time.time())
        except Conflict:  # its route left the fleet: it stays in the DLQ
            old_id = None
        if old_id is None:
            skipped += 1
        else:
            retried.append(DlqRetryResponse(job_id=new_id, retry_of=old_id,
                                            status=JobStatus.QUEUED))  # fmt: skip
    return DlqBulkRetry(retried=retried, skipped=skipped)


@router.delete(
    "/dlq",
    response_model=DlqBulkDiscard,
    dependencies=[AdminDep],
    responses=ADMIN_ERRORS,
    summary="Discard dead jobs by reason and/or route",
)
async def discard_dead_letters(
    store: StoreDep, reason: ReasonQuery = None, route: RouteQuery = None
) -> DlqBulkDiscard:
    """Remove every matching entry from the dead-letter queue."""
    _require_filter(reason, route)
    entries = await store.dlq.matching(reason=reason, route=route)
    return DlqBulkDiscard(discarded=sum([await store.dlq.discard(e.id) for e in entries]))


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


def local_dispatcher(services: Services) -> Dispatcher:
    """This replica's engine (409 when it runs no consumers)."""
    if services.dispatcher is None:
        raise Conflict("this replica runs no consumers: there is nothing to drain")
    return services.dispatcher


def drain_status(dispatcher: Dispatcher) -> DrainStatus:
    """The drain as this replica's dispatcher reports it."""
    running = dispatcher.running()
    return DrainStatus(replica=dispatcher.replica, draining=dispatcher.draining, running=running,
                       empty=dispatcher.draining and running == 0)  # fmt: skip


@drain_router.get("/admin/drain", response_model=DrainStatus, responses=ADMIN_ERRORS,
                  summary="This replica's drain")  # fmt: skip
async def get_drain(services: ServicesDep) -> DrainStatus:
    """Whether this replica takes new jobs, and how many of its jobs still run."""
    return drain_status(local_dispatcher(services))


@drain_router.post("/admin/drain", response_model=DrainStatus, responses=ADMIN_ERRORS,
                   summary="Drain this replica")  # fmt: skip
async def drain(services: ServicesDep) -> DrainStatus:
    """Stop taking new jobs; running ones finish. Poll GET /admin/drain until `empty`."""
    dispatcher = local_dispatcher(services)
    dispatcher.drain()
    return drain_status(dispatcher)


@drain_router.post("/admin/undrain", response_model=DrainStatus, responses=ADMIN_ERRORS,
                   summary="Resume taking jobs")  # fmt: skip
async def undrain(services: ServicesDep) -> DrainStatus:
    """Take jobs again."""
    dispatcher = local_dispatcher(services)
    dispatcher.undrain()
    return drain_status(dispatcher)
