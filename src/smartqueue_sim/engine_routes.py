"""Engine-specific endpoints under their real names: llama.cpp, vLLM and Ollama."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from smartqueue.config import Engine
from smartqueue_sim.gpu import SimGpu
from smartqueue_sim.metrics import llamacpp_metrics, render_metrics, vllm_metrics
from smartqueue_sim.responses import error_response

PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OLLAMA_KEEP_ALIVE = timedelta(minutes=5)
MB = 1024 * 1024


def engine_router(sim: SimGpu) -> APIRouter:
    """The endpoints the configured engine has (none for a plain OpenAI server)."""
    router = APIRouter()
    add_routes = ENGINE_ROUTES.get(sim.settings.engine)
    if add_routes is not None:
        add_routes(router, sim)
    return router


def _is_set(value: str | None) -> bool:
    return value is not None and value.lower() not in ("0", "false", "no")


def slot_list(sim: SimGpu) -> list[dict[str, Any]]:
    """llama.cpp's `/slots` body: one entry per slot with `is_processing`."""
    busy = sim.pool.busy
    n_ctx = sim.settings.profile.context_tokens
    return [
        {"id": slot_id, "id_task": -1, "n_ctx": n_ctx, "is_processing": slot_id in busy}
        for slot_id in range(sim.settings.slots)
    ]


def add_llamacpp_routes(router: APIRouter, sim: SimGpu) -> None:
    """`/slots` (with `?fail_on_no_slot=1`) and `/metrics` as `llama-server --metrics` has them."""

    @router.get("/slots")
    async def slots(request: Request) -> Response:
        body = slot_list(sim)
        no_free_slot = all(slot["is_processing"] for slot in body)
        if _is_set(request.query_params.get("fail_on_no_slot")) and no_free_slot:
            return error_response(503, "no slot available", error_type="unavailable_error")
        return JSONResponse(body)

    @router.get("/metrics")
    async def metrics() -> PlainTextResponse:
        speed = sim.settings.profile.tokens_per_s * sim.settings.speed
        text = render_metrics(llamacpp_metrics(sim.load(), tokens_per_s=speed))
        return PlainTextResponse(text, media_type=PROMETHEUS_MEDIA_TYPE)


def add_vllm_routes(router: APIRouter, sim: SimGpu) -> None:
    """vLLM's `/metrics` (running, waiting, KV-cache usage)."""

    @router.get("/metrics")
    async def metrics() -> PlainTextResponse:
        context_tokens = sim.settings.profile.context_tokens
        families = vllm_metrics(sim.load(), model=sim.settings.model, context_tokens=context_tokens)
        return PlainTextResponse(render_metrics(families), media_type=PROMETHEUS_MEDIA_TYPE)


def _ollama_model(sim: SimGpu) -> dict[str, Any]:
    digest = hashlib.sha256(sim.settings.model.encode()).hexdigest()
    details = {"format": "gguf", "family": "sim", "parameter_size": "", "quantization_level": ""}
    return {
        "name": sim.settings.model,
        "model": sim.settings.model,
        "digest": digest,
        "details": details,
    }


def add_ollama_routes(router: APIRouter, sim: SimGpu) -> None:
    """Ollama's `/api/ps` (loaded models with `size_vram`), `/api/tags` and `/api/version`."""

    @router.get("/api/ps")
    async def running_models() -> JSONResponse:
        if sim.is_loading():
            return JSONResponse({"models": []})
        size = sim.reading().vram_used_mb * MB
        expires_at = (datetime.now(UTC) + OLLAMA_KEEP_ALIVE).isoformat()
        entry = {**_ollama_model(sim), "size": size, "size_vram": size, "expires_at": expires_at}
        return JSONResponse({"models": [entry]})

    @router.get("/api/tags")
    async def local_models() -> JSONResponse:
        size = sim.settings.profile.model_vram_mb * MB
        entry = {**_ollama_model(sim), "size": size, "modified_at": "2025-01-01T00:00:00Z"}
        return JSONResponse({"models": [entry]})

    @router.get("/api/version")
    async def version() -> JSONResponse:
        return JSONResponse({"version": "0.0.0-smartqueue-sim"})


ENGINE_ROUTES: dict[Engine, Callable[[APIRouter, SimGpu], None]] = {
    Engine.LLAMACPP: add_llamacpp_routes,
    Engine.VLLM: add_vllm_routes,
    Engine.OLLAMA: add_ollama_routes,
}
