"""The main app in-process: OpenAI endpoints, engine endpoints, capacity and the latency model."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from smartqueue.config import Engine
from smartqueue_sim.latency import time_to_first_token_s, token_interval_s
from tests.sim.conftest import AppSim

CHAT = {"model": "sim-model", "messages": [{"role": "user", "content": "hello"}]}
WAIT_S = 5.0


def _events(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.split("\n\n") if line]


async def _wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - the state is plain counters, no event exists
            await asyncio.sleep(0.002)


async def test_chat_completion_answers_in_openai_shape_with_usage(llamacpp_sim: AppSim) -> None:
    response = await llamacpp_sim.main.post("/v1/chat/completions", json={**CHAT, "max_tokens": 4})
    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4
    assert len(body["choices"][0]["message"]["content"].split()) == 4


async def test_chat_stream_sends_role_tokens_finish_usage_and_done(llamacpp_sim: AppSim) -> None:
    payload = {**CHAT, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}
    response = await llamacpp_sim.main.post("/v1/chat/completions", json=payload)
    events = _events(response.text)
    chunks = [json.loads(event) for event in events[:-1]]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks[1:-1]] == [None] * 3 + ["length"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


async def test_text_completion_stream_without_usage_option_has_no_usage(
    llamacpp_sim: AppSim,
) -> None:
    payload = {"model": "m", "prompt": "once upon", "max_tokens": 2, "stream": True}
    response = await llamacpp_sim.main.post("/v1/completions", json=payload)
    chunks = [json.loads(event) for event in _events(response.text)[:-1]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks).count(" ") == 1


async def test_same_seed_and_prompt_give_the_same_answer(
    make_app_sim: Callable[..., AppSim],
) -> None:
    answers = []
    for seed in (7, 7, 8):
        sim = make_app_sim(seed=seed)
        response = await sim.main.post("/v1/chat/completions", json={**CHAT, "max_tokens": 12})
        answers.append(response.json()["choices"][0]["message"]["content"])
    assert answers[0] == answers[1] != answers[2]


async def test_invalid_body_gets_a_400_in_openai_error_shape(llamacpp_sim: AppSim) -> None:
    bad_json = await llamacpp_sim.main.post("/v1/chat/completions", content=b"{nope")
    no_messages = await llamacpp_sim.main.post("/v1/chat/completions", json={"model": "m"})
    assert bad_json.status_code == no_messages.status_code == 400
    assert no_messages.json()["error"]["param"] == "messages"
    assert set(bad_json.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("engine", "status"), [(Engine.VLLM, 404), (Engine.OLLAMA, 404), (Engine.LLAMACPP, 200)]
)
async def test_unknown_model_is_rejected_by_vllm_and_ollama_but_not_llamacpp(
    make_app_sim: Callable[..., AppSim], engine: Engine, status: int
) -> None:
    sim = make_app_sim(engine=engine, model="served")
    response = await sim.main.post("/v1/chat/completions", json={**CHAT, "model": "other"})
    assert response.status_code == status


async def test_models_lists_the_served_model(make_app_sim: Callable[..., AppSim]) -> None:
    sim = make_app_sim(model="qwen-test")
    response = await sim.main.get("/v1/models")
    assert [entry["id"] for entry in response.json()["data"]] == ["qwen-test"]


async def test_health_is_503_while_loading_then_200(make_app_sim: Callable[..., AppSim]) -> None:
    sim = make_app_sim(loading_delay_s=300.0, speed=10.0)  # 30 s of sim time
    loading = await sim.main.get("/health")
    refused = await sim.main.post("/v1/chat/completions", json=CHAT)
    sim.clock.advance(31.0)
    ready = await sim.main.get("/health")
    assert (loading.status_code, refused.status_code, ready.status_code) == (503, 503, 200)
    assert loading.json()["error"]["message"] == "Loading model"


async def test_vllm_models_answer_while_health_says_loading(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(engine=Engine.VLLM, loading_delay_s=300.0)
    health = await sim.main.get("/health")
    models = await sim.main.get("/v1/models")
    assert (health.status_code, models.status_code) == (503, 200)  # as vLLM does


@pytest.mark.parametrize(
    ("engine", "present", "absent"),
    [
        (Engine.LLAMACPP, ["/slots", "/metrics"], ["/api/ps"]),
        (Engine.VLLM, ["/metrics"], ["/slots", "/api/ps"]),
        (Engine.OLLAMA, ["/api/ps", "/api/tags", "/api/version"], ["/slots", "/metrics"]),
        (Engine.OPENAI, [], ["/slots", "/metrics", "/api/ps"]),
    ],
)
async def test_engine_endpoints_exist_only_on_their_engine(
    make_app_sim: Callable[..., AppSim], engine: Engine, present: list[str], absent: list[str]
) -> None:
    sim = make_app_sim(engine=engine)
    for path in present:
        assert (await sim.main.get(path)).status_code == 200, path
    for path in absent:
        response = await sim.main.get(path)
        assert response.status_code == 404, path
        assert "error" in response.json()


async def _flood(sim: AppSim, count: int, *, max_tokens: int) -> list[httpx.Response]:
    payload = {**CHAT, "max_tokens": max_tokens}
    return await asyncio.gather(
        *(sim.main.post("/v1/chat/completions", json=payload) for _ in range(count))
    )


async def _metric(sim: AppSim, name: str) -> float:
    text = (await sim.main.get("/metrics")).text
    line = next(line for line in text.splitlines() if line.startswith(name))
    return float(line.split()[-1])


async def test_requests_past_the_slots_wait_deferred_and_never_run_over_slots(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(engine=Engine.LLAMACPP, slots=2, speed=20.0)
    flood = asyncio.create_task(_flood(sim, 6, max_tokens=10))
    await _wait_for(lambda: sim.sim.counters.in_flight == 6)
    deferred = await _metric(sim, "llamacpp:requests_deferred")
    processing = await _metric(sim, "llamacpp:requests_processing")
    slots: list[dict[str, Any]] = (await sim.main.get("/slots")).json()
    full = await sim.main.get("/slots", params={"fail_on_no_slot": "1"})
    responses = await flood
    stats = (await sim.sidecar.get("/sim/stats")).json()
    assert (processing, deferred) == (2, 4)
    assert all(slot["is_processing"] for slot in slots)
    assert full.status_code == 503
    assert all(response.status_code == 200 for response in responses)
    assert (stats["max_processing"], stats["max_in_flight"], stats["completed_total"]) == (2, 6, 6)
    assert (await sim.main.get("/slots", params={"fail_on_no_slot": "1"})).status_code == 200


async def test_vllm_metrics_report_running_waiting_and_kv_usage_under_load(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(engine=Engine.VLLM, slots=1, speed=20.0)
    flood = asyncio.create_task(_flood(sim, 3, max_tokens=10))
    await _wait_for(lambda: sim.sim.counters.in_flight == 3)
    running = await _metric(sim, "vllm:num_requests_running")
    waiting = await _metric(sim, "vllm:num_requests_waiting")
    kv_usage = await _metric(sim, "vllm:kv_cache_usage_perc")
    await flood
    assert (running, waiting) == (1, 2)
    assert 0 < kv_usage < 1
    assert await _metric(sim, "vllm:kv_cache_usage_perc") == 0


async def test_ollama_ps_lists_the_loaded_model_with_vram(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(engine=Engine.OLLAMA, model="gemma-test", loading_delay_s=100.0)
    while_loading = (await sim.main.get("/api/ps")).json()
    sim.clock.advance(2.0)
    loaded = (await sim.main.get("/api/ps")).json()
    assert while_loading == {"models": []}
    assert loaded["models"][0]["name"] == "gemma-test"
    assert loaded["models"][0]["size_vram"] > 0


async def test_generation_takes_ttft_plus_token_time_divided_by_speed(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(speed=20.0, slots=1)
    profile = sim.sim.settings.profile
    prompt_tokens = await sim.main.post("/v1/chat/completions", json={**CHAT, "max_tokens": 1})
    used = prompt_tokens.json()["usage"]["prompt_tokens"]
    expected_s = time_to_first_token_s(
        profile, prompt_tokens=used, busy_slots=1, speed=20.0
    ) + 19 * token_interval_s(profile, busy_slots=1, speed=20.0)
    started = time.monotonic()
    await sim.main.post("/v1/chat/completions", json={**CHAT, "max_tokens": 20})
    elapsed_s = time.monotonic() - started
    assert expected_s <= elapsed_s < expected_s + 0.5


async def test_job_id_header_counts_requests_per_job(llamacpp_sim: AppSim) -> None:
    for headers in ({"X-Smartqueue-Job-Id": "j1"}, {"X-Request-Id": "j2"}, {"X-Request-Id": "j1"}):
        await llamacpp_sim.main.post(
            "/v1/chat/completions", json={**CHAT, "max_tokens": 1}, headers=headers
        )
    await llamacpp_sim.main.post("/v1/chat/completions", json={**CHAT, "max_tokens": 1})
    stats = (await llamacpp_sim.sidecar.get("/sim/stats")).json()
    assert stats["requests_by_job"] == {"j1": 2, "j2": 1}
    assert (stats["requests_total"], stats["requests_without_job"]) == (4, 1)
