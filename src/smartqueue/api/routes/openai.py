"""The OpenAI-compatible front door Nginx falls back to: enqueue, hold, answer as the GPU did."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from smartqueue.api.deps import CallerDep, ServicesDep
from smartqueue.api.holding import (
    answer_from_job,
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
    settings = services.settings
    job = await build_job(request, services.fleet, limit_bytes=settings.max_body_bytes,
                          openai_path=path, caller=caller,
                          header_limits=HeaderLimits.from_settings(settings))  # fmt: skip
    accepted = await services.admissions.admit(job)
    preference = parse_prefer(request.headers.get("prefer"))
    location = {"Location": f"/status/{accepted.job_id}"}
    if preference.respond_async:
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202, headers=location)
    timeout_s = preference.wait_s if preference.wait_s is not None else settings.hold_s
    try:
        return await _held_answer(services, request, accepted.job_id, job.payload, timeout_s)
    except StoreUnavailable:  # the job lives on in Redis: say where, never a bare 503
        raise OutcomeUnknown(
            f"the job store went away while job {accepted.job_id} was held; it lives on: "
            f"poll /status/{accepted.job_id}", job_id=accepted.job_id,
        ) from None  # fmt: skip


async def _held_answer(
    services: Services, request: Request, job_id: str, payload: bytes, timeout_s: float
) -> Response:
    if wants_stream(payload):
        return await _stream(services.store, request, job_id, timeout_s=timeout_s)
    record = await wait_for_end(services.store, services.watch, job_id,
                                timeout_s=timeout_s, request=request)  # fmt: skip
    if record is None:
        raise timed_out(job_id, timeout_s)
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
