"""The OpenAI-compatible front door Nginx falls back to: enqueue, hold, answer as the GPU did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from smartqueue.api.deps import CallerDep, ServicesDep
from smartqueue.api.holding import (
    LOCAL,
    RedisFeed,
    answer_from_job,
    answer_from_result,
    first_event,
    parse_prefer,
    relay_chunks,
    timed_out,
    wait_for_end,
)
from smartqueue.api.services import Services
from smartqueue.api.submission import HeaderLimits, build_job
from smartqueue.errors import OutcomeUnknown, StoreUnavailable
from smartqueue.models import EnqueueResponse, ErrorBody
from smartqueue.openai_format import wants_stream
from smartqueue.owners import Caller
from smartqueue.queue import StoredResult
from smartqueue.watch import JobWatch, LocalHold

router = APIRouter(tags=["openai"])
READER_GRACE_S = 0.2  # how long a finished stream lets its Redis reader end on its own

OPENAI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OpenAI request; `model` is replaced by the chosen GPU's model.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The GPU's own answer (JSON, or SSE with `stream: true`)",
          "content": {"application/json": {"schema": {"type": "object"}},
                      "text/event-stream": {"schema": {"type": "string"}}}},
    202: {"model": EnqueueResponse, "description": "Accepted (only with `Prefer: respond-async`)"},
    400: {"model": ErrorBody, "description": "Not a JSON object, invalid or too deep JSON, or a "
          "kept header that is not printable ASCII"},
    409: {"model": ErrorBody, "description": "The job was cancelled"},
    413: {"model": ErrorBody, "description": "Body over the size limit"},
    422: {"model": ErrorBody, "description": "Unknown route or priority, empty body, or "
          "`idempotency_key_reused`"},
    431: {"model": ErrorBody, "description": "A kept header, or all of them, over the limits"},
    502: {"model": ErrorBody, "description": "The job failed (dead) without a GPU answer"},
    503: {"model": ErrorBody, "description": "Queue full, the hold ran out, or "
          "`outcome_unknown` (Location names the job) — see Retry-After"},
}  # fmt: skip
PreferHeader = Annotated[
    str | None, Header(description="`respond-async` for a 202, `wait=N` to bound the hold")
]


async def hold(services: Services, request: Request, caller: Caller, *, path: str) -> Response:
    """Enqueue the request, hold the connection until its job ends, answer as the GPU did."""
    settings, watch = services.settings, services.watch
    job = await build_job(request, services.fleet, limit_bytes=settings.max_body_bytes,
                          openai_path=path, caller=caller,
                          header_limits=HeaderLimits.from_settings(settings))  # fmt: skip
    held = watch.hold(job.job_id)  # before the job exists: a local consumer always finds it
    try:
        accepted = await services.admissions.admit(job)
        preference = parse_prefer(request.headers.get("prefer"))
        if preference.respond_async:
            location = {"Location": f"/status/{accepted.job_id}"}
            return JSONResponse(accepted.model_dump(mode="json"), status_code=202,
                                headers=location)  # fmt: skip
        fresh = accepted.job_id == job.job_id
        if not fresh:  # a duplicate: hold the first job instead
            watch.release(held)
            held = watch.hold(accepted.job_id)
        timeout_s = preference.wait_s if preference.wait_s is not None else settings.hold_s
        response = await _held_answer(services, request, held, job.payload, timeout_s, fresh)
    except StoreUnavailable:  # the job lives on in Redis: say where, never a bare 503
        watch.release(held)
        raise OutcomeUnknown(
            f"the job store went away while job {held.job_id} was held; it lives on: "
            f"poll /status/{held.job_id}", job_id=held.job_id,
        ) from None  # fmt: skip
    except BaseException:
        watch.release(held)
        raise
    if not isinstance(response, StreamingResponse):  # a stream releases it when it ends
        watch.release(held)
    return response


async def _held_answer(
    services: Services, request: Request, held: LocalHold, payload: bytes, timeout_s: float,
    fresh: bool,
) -> Response:  # fmt: skip
    if wants_stream(payload):
        return await _stream(services, request, held, timeout_s=timeout_s)
    ended = await wait_for_end(services.store, held, timeout_s=timeout_s, request=request,
                               fresh=fresh)  # fmt: skip
    if ended is None:
        raise timed_out(held.job_id, timeout_s)
    if isinstance(ended, StoredResult):
        return answer_from_result(held.job_id, ended)
    return answer_from_job(ended)


async def _stream(
    services: Services, request: Request, held: LocalHold, *, timeout_s: float
) -> Response:
    feed = RedisFeed(services.store, held)
    reader = asyncio.create_task(feed.run())
    try:
        first = await first_event(feed, timeout_s=timeout_s, request=request)
        if first is None:
            raise timed_out(held.job_id, timeout_s)
        if first != LOCAL and feed.events[first][1].get(b"type") != b"chunk":
            record = await services.store.jobs.get(held.job_id)  # ended before streaming
            assert record is not None
            return answer_from_job(record)
        if first == LOCAL and not held.chunks:  # completed here without streaming anything
            assert held.answer is not None
            return answer_from_result(held.job_id, held.answer)
    except BaseException:
        await _stop_reader(feed, reader)
        raise
    headers = {"X-Smartqueue-Job-Id": held.job_id, "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}  # fmt: skip
    chunks = _relayed(services.watch, feed, reader, first)
    return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)


async def _relayed(
    watch: JobWatch, feed: RedisFeed, reader: asyncio.Task[None], first: int
) -> AsyncIterator[bytes]:
    """The relayed stream; then the Redis reader is stopped and the hold released."""
    try:
        async for event in relay_chunks(feed, first=first):
            yield event
    finally:
        await _stop_reader(feed, reader)
        watch.release(feed.hold)


async def _stop_reader(feed: RedisFeed, reader: asyncio.Task[None]) -> None:
    """Let the reader end at its next event (soon: the job's end reaches Redis too) or stop it."""
    feed.stop = True
    with anyio.CancelScope(shield=True):
        done, _ = await asyncio.wait({reader}, timeout=READER_GRACE_S)
        if not done:
            reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


@router.post(
    "/v1/chat/completions", openapi_extra=OPENAI_BODY, responses=OPENAI_ERRORS,
    summary="Chat completion through the queue",
)  # fmt: skip
async def chat_completions(
    request: Request, services: ServicesDep, caller: CallerDep, prefer: PreferHeader = None
) -> Response:
    """Queue the request and answer exactly as the GPU did (`stream: true` as SSE)."""
    return await hold(services, request, caller, path="/v1/chat/completions")


@router.post(
    "/v1/completions", openapi_extra=OPENAI_BODY, responses=OPENAI_ERRORS,
    summary="Text completion through the queue",
)  # fmt: skip
async def completions(
    request: Request, services: ServicesDep, caller: CallerDep, prefer: PreferHeader = None
) -> Response:
    """Queue the request and answer exactly as the GPU did (`stream: true` as SSE)."""
    return await hold(services, request, caller, path="/v1/completions")


@router.get("/v1/models", summary="Models the fleet serves")
async def models(services: ServicesDep) -> dict[str, Any]:
    """Every GPU's served model and every route name, in the OpenAI list shape."""
    created = services.fleet.modified_at or 0  # when the fleet last changed
    served = [{"id": gpu.model, "object": "model", "created": created, "owned_by": gpu.name}
              for gpu in services.fleet.gpus]  # fmt: skip
    routes = [{"id": route, "object": "model", "created": created, "owned_by": "smartqueue"}
              for route in services.fleet.route_names]  # fmt: skip
    return {"object": "list", "data": served + routes}
