"""The `openai` SDK against an in-process sim: the bodies it parses and the errors it raises.

No process and no port: the SDK's httpx client goes to the sim's engine app through
`httpx.ASGITransport`. What needs real sockets (refused connects, dropped connections, bytes
arriving over time, disconnects) stays in test_sim_process.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.support.sim import SimApps, build_sim_apps

GPU_URL = "http://sim-gpu"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say something about queues."}
]


@dataclass
class ClientOnSim:
    """The SDK on an in-process sim, and the sim's control API."""

    sdk: openai.AsyncOpenAI
    control: httpx.AsyncClient
    apps: SimApps

    async def set_faults(self, mode: str, **params: Any) -> None:
        """Switch the sim's fault through its control API."""
        response = await self.control.post("/sim/faults", json={"mode": mode, **params})
        response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        """The sim's request counters."""
        stats: dict[str, Any] = (await self.control.get("/sim/stats")).json()
        return stats


@pytest.fixture
async def gpu() -> AsyncIterator[ClientOnSim]:
    """A llama.cpp sim (2 slots, 100x speed) with the SDK pointed at it, without retries."""
    apps = build_sim_apps(engine="llamacpp", model="sim-model", slots=2, speed=100.0, seed=3)
    http = apps.engine_client(GPU_URL)
    # openai ships its own fork of httpx; the ASGI-backed client is compatible at runtime.
    sdk = openai.AsyncOpenAI(
        base_url=f"{GPU_URL}/v1", api_key="sim", max_retries=0,
        http_client=http,  # type: ignore[arg-type]
    )  # fmt: skip
    async with http, sdk, apps.sidecar_client() as control:
        yield ClientOnSim(sdk=sdk, control=control, apps=apps)


async def test_openai_chat_non_streamed_returns_content_and_usage(gpu: ClientOnSim) -> None:
    answer = await gpu.sdk.chat.completions.create(
        model="sim-model", messages=MESSAGES, max_tokens=6
    )
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 6


async def test_openai_chat_streamed_matches_the_non_streamed_text(gpu: ClientOnSim) -> None:
    whole = await gpu.sdk.chat.completions.create(
        model="sim-model", messages=MESSAGES, max_tokens=9
    )
    stream = await gpu.sdk.chat.completions.create(
        model="sim-model",
        messages=MESSAGES,
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9


async def test_openai_chat_stream_yields_one_chunk_per_token(gpu: ClientOnSim) -> None:
    stream = await gpu.sdk.chat.completions.create(
        model="sim-model", messages=MESSAGES, max_tokens=4, stream=True
    )
    texts = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert len([text for text in texts if text]) == 4


async def test_openai_completions_streamed_and_not_agree(gpu: ClientOnSim) -> None:
    prompt = "Once upon a time"
    whole = await gpu.sdk.completions.create(model="sim-model", prompt=prompt, max_tokens=5)
    stream = await gpu.sdk.completions.create(
        model="sim-model", prompt=prompt, max_tokens=5, stream=True
    )
    text = "".join([chunk.choices[0].text async for chunk in stream])
    assert whole.choices[0].text == text
    assert len(text.split()) == 5


async def test_openai_models_lists_the_served_model(gpu: ClientOnSim) -> None:
    assert [model.id async for model in gpu.sdk.models.list()] == ["sim-model"]


async def test_fault_error_raises_internal_server_error(gpu: ClientOnSim) -> None:
    await gpu.set_faults("error")
    with pytest.raises(openai.InternalServerError) as caught:
        await gpu.sdk.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert (await gpu.stats())["faults_injected_total"] == 1


async def test_fault_rate_limit_raises_rate_limit_error_with_retry_after(
    gpu: ClientOnSim,
) -> None:
    await gpu.set_faults("rate_limit", retry_after_s=3)
    with pytest.raises(openai.RateLimitError) as caught:
        await gpu.sdk.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "3"


async def test_fault_unavailable_answers_503_with_retry_after(gpu: ClientOnSim) -> None:
    await gpu.set_faults("unavailable", retry_after_s=2)
    with pytest.raises(openai.InternalServerError) as caught:
        await gpu.sdk.chat.completions.create(model="sim-model", messages=MESSAGES)
    response = caught.value.response
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["type"] == "unavailable_error"


async def test_fault_invalid_json_breaks_the_client_parser(gpu: ClientOnSim) -> None:
    await gpu.set_faults("invalid_json")
    with pytest.raises(ValueError, match="Expecting value"):
        await gpu.sdk.chat.completions.create(model="sim-model", messages=MESSAGES)


async def test_fault_invalid_json_in_a_stream_breaks_the_client_parser(gpu: ClientOnSim) -> None:
    await gpu.set_faults("invalid_json")
    stream = await gpu.sdk.chat.completions.create(
        model="sim-model", messages=MESSAGES, stream=True
    )
    with pytest.raises(ValueError, match="Expecting value"):
        _ = [chunk async for chunk in stream]


async def test_fault_slow_start_delays_the_answer(gpu: ClientOnSim) -> None:
    started = time.monotonic()
    await gpu.sdk.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=1)
    normal_s = time.monotonic() - started
    await gpu.set_faults("slow_start", slow_start_s=40.0)  # 0.4 s at 100x
    started = time.monotonic()
    await gpu.sdk.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=1)
    slow_s = time.monotonic() - started
    assert normal_s < 0.2
    assert slow_s >= 0.4
