"""The OpenAI Batch API: a file of requests run on the capacity interactive traffic leaves free.

A batch is checked line by line when it is created (a bad line: the batch is `failed` with
`errors` naming the lines); its requests are then fed to the queue a few at a time by the
maintenance task (batch_runner.py) and it ends with its output and error files. A batch belongs
to its owner (another owner gets 404).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from smartqueue.api.deps import BlobsDep, FleetDep, OwnerDep, SettingsDep, StoreDep
from smartqueue.api.routes.files import owned_file, page
from smartqueue.api.submission import resolve_route
from smartqueue.batches import (
    BATCH_ENDPOINTS,
    COMPLETION_WINDOW,
    COMPLETION_WINDOW_S,
    ENDED,
    BatchStatus,
    Checking,
    Stop,
    StoredBatch,
    Validation,
    validate_input,
)
from smartqueue.errors import BadRequest, Conflict, NotFound
from smartqueue.models import ErrorBody
from smartqueue.store import Store

# Every 4xx these routes answer, in the one error shape (tests/fuzz holds the schema to it).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "Unknown endpoint or completion window, or a file of another purpose",
    },
    404: {"model": ErrorBody, "description": "No such batch or input file (or another owner's)"},
    409: {"model": ErrorBody, "description": "The batch already ended"},
    422: {"model": ErrorBody, "description": "A body or parameter that does not validate"},
}
router = APIRouter(tags=["batches"], responses=ERRORS)


class BatchCreate(BaseModel):
    """The body of `POST /v1/batches` (OpenAI's)."""

    model_config = ConfigDict(extra="ignore")

    input_file_id: str
    endpoint: str = Field(description="/v1/chat/completions or /v1/completions")
    completion_window: str = Field(description="24h, the only window")
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


async def owned_batch(store: Store, batch_id: str, owner: str) -> StoredBatch:
    """The caller's batch, or 404 (another owner's batch is not found either)."""
    found = await store.batches.get(batch_id)
    if found is None or found.owner != owner:
        raise NotFound(f"no batch {batch_id!r}", param="batch_id")
    return found


def _check_body(body: BatchCreate) -> None:
    if body.endpoint not in BATCH_ENDPOINTS:
        raise BadRequest(f"endpoint must be one of: {', '.join(BATCH_ENDPOINTS)}",
                         code="invalid_value", param="endpoint")  # fmt: skip
    if body.completion_window != COMPLETION_WINDOW:
        raise BadRequest(f"completion_window must be {COMPLETION_WINDOW}", code="invalid_value",
                         param="completion_window")  # fmt: skip


def new_batch(
    body: BatchCreate, validation: Validation, *, owner: str, route: str | None, now: int
) -> StoredBatch:
    """A batch as created: in progress, or failed with the bad lines named."""
    failed = bool(validation.errors)
    status = BatchStatus.FAILED if failed else BatchStatus.IN_PROGRESS
    return StoredBatch(
        id=f"batch_{secrets.token_urlsafe(18)}", owner=owner, status=status,
        endpoint=body.endpoint, input_file_id=body.input_file_id, created_at=now,
        expires_at=now + COMPLETION_WINDOW_S, total=0 if failed else validation.total,
        route=route or "", metadata=body.metadata,
        errors=[error.as_json() for error in validation.errors] or None,
        times={"failed_at" if failed else "in_progress_at": now},
    )  # fmt: skip


@router.post("/v1/batches", summary="Create a batch")
async def create_batch(
    body: BatchCreate, store: StoreDep, blobs: BlobsDep, fleet: FleetDep, settings: SettingsDep,
    owner: OwnerDep,
    x_syslog_model: Annotated[str | None, Header(description="the route of every request")] = None,
) -> dict[str, Any]:  # fmt: skip
    """Check the input file line by line and start the batch (or answer it `failed`)."""
    _check_body(body)
    route = resolve_route(fleet, x_syslog_model) if x_syslog_model else None
    source = await owned_file(store, body.input_file_id, owner)
    if source.purpose != "batch":
        raise BadRequest(f"file {source.id!r} was not uploaded with purpose batch",
                         code="invalid_value", param="input_file_id")  # fmt: skip
    data = await asyncio.to_thread(blobs.read, source.id)
    checking = Checking(fleet, body.endpoint, route)
    validation = await asyncio.to_thread(validate_input, data, checking,
                                         max_requests=settings.batch_max_requests)  # fmt: skip
    now = time.time()
    batch = new_batch(body, validation, owner=owner, route=route, now=int(now))
    await store.batches.add(batch, now=now)
    return batch.as_openai()


@router.get("/v1/batches/{batch_id}", summary="A batch")
async def get_batch(batch_id: str, store: StoreDep, owner: OwnerDep) -> dict[str, Any]:
    """The batch object, with its live request counts."""
    return (await owned_batch(store, batch_id, owner)).as_openai()


@router.get("/v1/batches", summary="List batches")
async def list_batches(
    store: StoreDep,
    owner: OwnerDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The caller's batches, newest first (`after`: the last id of the previous page)."""
    ids = await store.batches.ids(owner)
    if after in ids:
        ids = ids[ids.index(after) + 1 :]
    data = []
    for batch_id in ids[: limit + 1]:
        found = await store.batches.get(batch_id)
        if found is not None:
            data.append(found.as_openai())
    return page(data, limit)


@router.post("/v1/batches/{batch_id}/cancel", summary="Cancel a batch")
async def cancel_batch(batch_id: str, store: StoreDep, owner: OwnerDep) -> dict[str, Any]:
    """Stop feeding; running requests finish, then the batch ends `cancelled` with their lines."""
    batch = await owned_batch(store, batch_id, owner)
    if batch.status in ENDED and batch.status is not BatchStatus.CANCELLED:
        raise Conflict(f"batch {batch_id!r} already ended {batch.status.value}")
    await store.batches.stop(batch_id, Stop.CANCELLED, now=time.time())
    return (await owned_batch(store, batch_id, owner)).as_openai()
