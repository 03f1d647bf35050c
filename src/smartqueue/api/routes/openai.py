"""The OpenAI-compatible front door Nginx falls back to: enqueue, hold, answer as the GPU did."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from smartqueue.api.deps import ServicesDep
from smartqueue.api.holding import (
    answer_from_job,
    first_event,
    parse_prefer,
    relay_chunks,
    timed_out,
    wait_for_end,
)
from smartqueue.api.services import Services
from smartqueue.api.submission import build_job
from smartqueue.models import ErrorBody
from smartqueue.openai_format import wants_stream
from smartqueue.store import Store

router = APIRouter(tags=["openai"])

OPENAI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OpenAI request; `model` is replaced by the chosen GPU's model.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted (only with `Prefer: respond-async`)"},
    503: {"model": ErrorBody, "description": "Queue full, or the hold ran out (Retry-After)"},
}
PreferHeader = Annotated[
    str | None, Header(description="`respond-async` for a 202, `wait=N` to bound the hold")
]


async def hold(services: Services, request: Request, *, path: str) -> Response:
    """Enqueue the request, hold the connection until its job ends, answer as the GPU did."""
    settings = services.settings
    job = await build_job(request, services.fleet, limit_bytes=settings.max_body_bytes,
                          openai_path=path)  # fmt: skip
    accepted = await services.admissions.admit(job)
    preference = parse_prefer(request.headers.get("prefer"))
    location = {"Location": f"/status/{accepted.job_id}"}
    if preference.respond_async:
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202, headers=location)
    timeout_s = preference.wait_s if preference.wait_s is not None else settings.hold_s
    if wants_stream(job.payload):
        return await _stream(services.store, request, accepted.job_id, timeout_s=timeout_s)
    record = await wait_for_end(services.store, services.watch, accepted.job_id,
                                timeout_s=timeout_s, request=request)  # fmt: skip
    if record is None:
        raise timed_out(accepted.job_id, timeout_s)
    return answer_from_job(record)


async def _stream(store: Store, request: Request, job_id: str, *, timeout_s: float) -> Response:
    first = await first_event(store, job_id, timeout_s=timeout_s, request=request)
    if first is None:
        raise timed_out(job_id, timeout_s)
    if first[1].get(b"type") != b"chunk":  # the job ended before streaming anything
        record = await store.jobs.get(job_id)
        assert record is not None
        return answer_from_job(record)
    headers = {"X-Smartqueue-Job-Id": job_id, "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}  # fmt: skip
    chunks = relay_chunks(store, job_id, first=first)
    return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)


@router.post(
    "/v1/chat/completions", openapi_extra=OPENAI_BODY, responses=OPENAI_ERRORS,
    summary="Chat completion through the queue",
)  # fmt: skip
async def chat_completions(
    request: Request, services: ServicesDep, prefer: PreferHeader = None
) -> Response:
    """Queue the request and answer exactly as the GPU did (`stream: true` as SSE)."""
    return await hold(services, request, path="/v1/chat/completions")


@router.post(
    "/v1/completions", openapi_extra=OPENAI_BODY, responses=OPENAI_ERRORS,
    summary="Text completion through the queue",
)  # fmt: skip
async def completions(
    request: Request, services: ServicesDep, prefer: PreferHeader = None
) -> Response:
    """Queue the request and answer exactly as the GPU did (`stream: true` as SSE)."""
    return await hold(services, request, path="/v1/completions")


@router.get("/v1/models", summary="Models the fleet serves")
async def models(services: ServicesDep) -> dict[str, Any]:
    """Every GPU's served model and every route name, in the OpenAI list shape."""
    created = services.fleet.modified_at or 0  # when the fleet last changed
    served = [{"id": gpu.model, "object": "model", "created": created, "owned_by": gpu.name}
              for gpu in services.fleet.gpus]  # fmt: skip
    routes = [{"id": route, "object": "model", "created": created, "owned_by": "smartqueue"}
              for route in services.fleet.route_names]  # fmt: skip
    return {"object": "list", "data": served + routes}
