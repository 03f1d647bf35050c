"""The simulated GPU's main app: OpenAI endpoints, /health, engine endpoints, fault answers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from smartqueue_sim.auth import RequireApiKey
from smartqueue_sim.completions import (
    SSE_DONE,
    CompletionKind,
    CompletionShape,
    InvalidRequestError,
    parse_completion_request,
    sse_event,
)
from smartqueue_sim.engine_routes import engine_router
from smartqueue_sim.faults import FaultMode
from smartqueue_sim.gpu import GenerationPlan, SimGpu
from smartqueue_sim.responses import (
    SSE_MEDIA_TYPE,
    TruncatedResponse,
    client_closed_response,
    drip_response,
    error_response,
    run_unless_disconnected,
    sse_response,
    wait_for_disconnect,
)

JOB_ID_HEADERS = ("x-smartqueue-job-id", "x-request-id")
GARBAGE_JSON = b'{"id": "sim-garbage", "choices": [{"message": <html>upstream error</html>'


@dataclass(frozen=True, slots=True)
class Exchange:
    """One inference request in flight: the sim, the HTTP request and the planned output."""

    sim: SimGpu
    request: Request
    plan: GenerationPlan
    shape: CompletionShape


Answer = Callable[[Exchange], Awaitable[Response]]


def job_id_of(request: Request) -> str | None:
    """The job id smartqueue sends (`X-Smartqueue-Job-Id`, else `X-Request-Id`)."""
    for header in JOB_ID_HEADERS:
        value = request.headers.get(header)
        if value:
            return value
    return None


def build_engine_app(sim: SimGpu) -> FastAPI:
    """The app on the sim's main port (every path behind the API key, when there is one)."""
    app = FastAPI(title=f"smartqueue sim {sim.settings.name} ({sim.settings.engine})")
    app.include_router(openai_router(sim))
    app.include_router(engine_router(sim))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    if sim.settings.api_key is not None:
        app.add_middleware(RequireApiKey, api_key=sim.settings.api_key.get_secret_value())
    return app


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    return error_response(error.status_code, str(error.detail), error_type="invalid_request_error")


def openai_router(sim: SimGpu) -> APIRouter:
    """POST /v1/chat/completions and /v1/completions, GET /v1/models and /health."""
    router = APIRouter()

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await answer_completion(sim, request, CompletionKind.CHAT)

    @router.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await answer_completion(sim, request, CompletionKind.TEXT)

    @router.get("/v1/models")
    async def models() -> JSONResponse:
        entry = {"id": sim.settings.model, "object": "model", "owned_by": sim.settings.engine}
        return JSONResponse({"object": "list", "data": [{**entry, "created": 0}]})

    @router.get("/health")
    async def health() -> Response:
        if sim.is_loading():
            return error_response(503, "Loading model", error_type="unavailable_error")
        return JSONResponse({"status": "ok"})

    return router


async def answer_completion(sim: SimGpu, request: Request, kind: CompletionKind) -> Response:
    """Count the request, validate it, then answer normally or with the active fault."""
    sim.counters.record_arrival(job_id_of(request))
    try:
        parsed = parse_completion_request(kind, json.loads(await request.body() or b"null"))
    except json.JSONDecodeError:
        return error_response(
            400, "request body is not valid JSON", error_type="invalid_request_error"
        )
    except InvalidRequestError as error:
        return error_response(
            400, str(error), error_type="invalid_request_error", param=error.param
        )
    if sim.is_loading():
        return error_response(503, "Loading model", error_type="unavailable_error")
    if not sim.serves_model(parsed.model):
        message = f"The model `{parsed.model}` does not exist."
        return error_response(404, message, error_type="NotFoundError", param="model")
    shape = CompletionShape(parsed, sim.completion_id(kind), int(time.time()), sim.settings.model)
    exchange = Exchange(sim=sim, request=request, plan=sim.plan(parsed), shape=shape)
    return await FAULT_ANSWERS[sim.draw_fault()](exchange)


async def answer_normally(exchange: Exchange) -> Response:
    """Generate with the latency model: streamed as SSE or as one JSON body."""
    if exchange.plan.request.stream:
        return await _answer_streamed(exchange, truncated=False)
    return await _answer_whole(exchange, truncated=False)


async def _answer_whole(exchange: Exchange, *, truncated: bool) -> Response:
    tokens = await run_unless_disconnected(exchange.request, _collect(exchange))
    if tokens is None:
        return client_closed_response()
    body = exchange.shape.body(tokens, exchange.plan.finish)
    if truncated:
        return TruncatedResponse(json.dumps(body).encode(), media_type="application/json")
    return JSONResponse(body)


async def _collect(exchange: Exchange) -> list[str]:
    async with aclosing(exchange.sim.generate(exchange.plan)) as tokens:
        return [token async for token in tokens]


async def _answer_streamed(exchange: Exchange, *, truncated: bool) -> Response:
    # Headers go out with the first token, as llama.cpp does: a deferred request gets nothing.
    tokens = exchange.sim.generate(exchange.plan)
    first = await run_unless_disconnected(exchange.request, anext(tokens))
    if first is None:
        await tokens.aclose()
        return client_closed_response()
    keep = len(exchange.plan.tokens) // 2 if truncated else None
    return sse_response(_sse_body(exchange, first, tokens, keep=keep), truncated=truncated)


async def _sse_body(
    exchange: Exchange, first: str, rest: AsyncGenerator[str, None], *, keep: int | None
) -> AsyncIterator[bytes]:
    shape, plan = exchange.shape, exchange.plan
    async with aclosing(rest):
        if plan.request.kind is CompletionKind.CHAT:
            yield sse_event(shape.role_chunk())
        yield sse_event(shape.chunk(first))
        sent = 1
        async for token in rest:
            if keep is not None and sent >= keep:
                return
            yield sse_event(shape.chunk(token))
            sent += 1
    yield sse_event(shape.chunk("", plan.finish))
    if plan.request.include_usage:
        yield sse_event(shape.usage_chunk(len(plan.tokens)))
    yield SSE_DONE


def instant_body(exchange: Exchange) -> tuple[bytes, str]:
    """The complete answer without waiting (for faults that only mangle its delivery)."""
    shape, plan = exchange.shape, exchange.plan
    if not plan.request.stream:
        return json.dumps(shape.body(plan.tokens, plan.finish)).encode(), "application/json"
    events = [sse_event(shape.role_chunk())] if plan.request.kind is CompletionKind.CHAT else []
    events += [sse_event(shape.chunk(token)) for token in plan.tokens]
    events.append(sse_event(shape.chunk("", plan.finish)))
    return b"".join(events) + SSE_DONE, SSE_MEDIA_TYPE


async def answer_error(exchange: Exchange) -> Response:
    """`error`: 500 with an OpenAI error body."""
    return error_response(500, "simulated internal server error", error_type="server_error")


async def answer_rate_limited(exchange: Exchange) -> Response:
    """`rate_limit`: 429 with Retry-After."""
    retry_after_s = exchange.sim.faults.retry_after_s
    message = "simulated rate limit: too many requests"
    return error_response(429, message, error_type="rate_limit_error", retry_after_s=retry_after_s)


async def answer_unavailable(exchange: Exchange) -> Response:
    """`unavailable`: 503 with Retry-After."""
    retry_after_s = exchange.sim.faults.retry_after_s
    message = "simulated overload: service unavailable"
    return error_response(503, message, error_type="unavailable_error", retry_after_s=retry_after_s)


async def answer_never(exchange: Exchange) -> Response:
    """`hang`: keep the connection open without answering until the client leaves."""
    await wait_for_disconnect(exchange.request)
    return client_closed_response()


async def answer_drip(exchange: Exchange) -> Response:
    """`drip`: headers, then the answer one byte every drip interval."""
    body, media_type = instant_body(exchange)
    interval_s = exchange.sim.faults.drip_interval_s / exchange.sim.settings.speed
    return drip_response(body, media_type=media_type, interval_s=interval_s)


async def answer_garbage(exchange: Exchange) -> Response:
    """`invalid_json`: 200 whose body (or stream event) is not JSON."""
    if exchange.plan.request.stream:
        body = b"data: " + GARBAGE_JSON + b"\n\n" + SSE_DONE
        return Response(body, media_type=SSE_MEDIA_TYPE)
    return Response(GARBAGE_JSON, media_type="application/json")


async def answer_cut_short(exchange: Exchange) -> Response:
    """`close_mid_stream`: generate, then drop the connection halfway through the body."""
    if exchange.plan.request.stream:
        return await _answer_streamed(exchange, truncated=True)
    return await _answer_whole(exchange, truncated=True)


async def answer_slowly(exchange: Exchange) -> Response:
    """`slow_start`: wait the slow-start delay before doing anything, then answer normally."""
    delay_s = exchange.sim.faults.slow_start_s / exchange.sim.settings.speed
    if await run_unless_disconnected(exchange.request, _slept(delay_s)) is None:
        return client_closed_response()
    return await answer_normally(exchange)


async def _slept(delay_s: float) -> bool:
    await asyncio.sleep(delay_s)
    return True


FAULT_ANSWERS: dict[FaultMode, Answer] = {
    FaultMode.NONE: answer_normally,
    FaultMode.REFUSE: answer_normally,  # refused connections never reach the app
    FaultMode.ERROR: answer_error,
    FaultMode.RATE_LIMIT: answer_rate_limited,
    FaultMode.UNAVAILABLE: answer_unavailable,
    FaultMode.HANG: answer_never,
    FaultMode.DRIP: answer_drip,
    FaultMode.INVALID_JSON: answer_garbage,
    FaultMode.CLOSE_MID_STREAM: answer_cut_short,
    FaultMode.SLOW_START: answer_slowly,
}
