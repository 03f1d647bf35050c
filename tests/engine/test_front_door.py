"""The OpenAI front door: held requests answered as the GPU did, for the real openai client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import openai
import pytest
import redis.asyncio as aioredis

from smartqueue.config import FleetConfig, Settings
from tests.engine.conftest import CHAT, fleet_for, service
from tests.support.redis_dump import every_stored_byte
from tests.support.sim import InProcessSim


def one_gpu(
    sims: Callable[..., dict[str, InProcessSim]], **spec: object
) -> tuple[dict[str, InProcessSim], FleetConfig]:
    """One sim GPU `a` serving the `default` route."""
    gpus = sims(a=spec)
    return gpus, fleet_for(gpus, {"default": ["a"]}, {"a": int(str(spec["slots"]))})


def openai_client(http: httpx.AsyncClient, *, max_retries: int = 2) -> openai.AsyncOpenAI:
    """The real openai client, talking to the app in-process through `http`."""
    # openai ships its own fork of httpx; the ASGI-backed client is compatible at runtime.
    return openai.AsyncOpenAI(
        api_key="unused", base_url="http://sq/v1", http_client=http,  # type: ignore[arg-type]
        max_retries=max_retries,
    )  # fmt: skip


async def test_front_door_openai_client_gets_a_normal_chat_completion(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus, fleet = one_gpu(sims, slots=2)

    async with service(engine_settings(), fleet) as http:
        client = openai_client(http)
        completion = await client.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "hello"}], max_tokens=8
        )

    assert completion.model == "model-a"
    assert completion.choices[0].message.content
    assert sum(gpus["a"].stats()["requests_by_job"].values()) == 1


async def test_front_door_streamed_completion_arrives_as_chunks_ending_in_done(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    _, fleet = one_gpu(sims, slots=2)

    async with service(engine_settings(), fleet) as http:
        client = openai_client(http)
        stream = await client.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "hello"}], max_tokens=8,
            stream=True,
        )  # fmt: skip
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream
                        if chunk.choices])  # fmt: skip

    assert text.strip()


async def test_front_door_prefer_respond_async_answers_202_with_location(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    _, fleet = one_gpu(sims, slots=1)

    async with service(engine_settings(), fleet) as http:
        response = await http.post("/v1/chat/completions", json=CHAT,
                                   headers={"Prefer": "respond-async"})  # fmt: skip

    assert response.status_code == 202
    assert response.headers["Location"] == f"/status/{response.json()['job_id']}"


async def test_front_door_hold_that_times_out_is_503_with_retry_after_and_job_id(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus, fleet = one_gpu(sims, slots=1)
    gpus["a"].set_faults("refuse")

    async with service(engine_settings(), fleet) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers={"Prefer": "wait=1"})

    assert response.status_code == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["Location"].startswith("/status/")
    assert "/status/" in response.json()["error"]["message"]


async def test_front_door_gpu_4xx_is_answered_with_the_gpus_status_and_body(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    _, fleet = one_gpu(sims, slots=1)

    async with service(engine_settings(), fleet) as http:
        client = openai_client(http, max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="m", messages=[], max_tokens=8)

    assert "messages" in str(caught.value)


async def test_events_stream_lifecycle_and_resume_after_last_event_id(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    _, fleet = one_gpu(sims, slots=1)

    async with service(engine_settings(), fleet) as http:
        body = {**CHAT, "stream": True}
        job_id = (await http.post("/enqueue", json=body)).json()["job_id"]
        first = (await http.get(f"/status/{job_id}/events")).text
        ids = [line[4:] for line in first.splitlines() if line.startswith("id: ")]
        resumed = (await http.get(f"/status/{job_id}/events",
                                  headers={"Last-Event-ID": ids[1]})).text  # fmt: skip

    statuses = [json.loads(line[6:])["status"] for line in first.splitlines()
                if line.startswith("data: ") and '"status"' in line]  # fmt: skip
    assert statuses[-1] == "completed"
    assert "processing" in statuses
    assert "event: chunk" in first
    assert ids[1] not in resumed
    assert ids[2] in resumed


async def test_cancel_queued_job_never_runs_and_is_idempotent(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus, fleet = one_gpu(sims, slots=1)
    gpus["a"].set_faults("refuse")

    async with service(engine_settings(), fleet) as http:
        job_id = (await http.post("/enqueue", json=CHAT)).json()["job_id"]
        first = await http.post(f"/status/{job_id}/cancel")
        again = await http.post(f"/status/{job_id}/cancel")
        gpus["a"].set_faults("none")
        await asyncio.sleep(1.0)
        record = (await http.get(f"/status/{job_id}")).json()

    assert (first.status_code, again.status_code) == (200, 200)
    assert record["status"] == "cancelled"
    assert job_id not in gpus["a"].stats()["requests_by_job"]


async def test_cancel_running_job_aborts_the_gpu_call(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus, fleet = one_gpu(sims, slots=1, speed=1.0)

    async with service(engine_settings(), fleet) as http:
        job_id = (await http.post("/enqueue", json={**CHAT, "max_tokens": 500})).json()["job_id"]
        for _ in range(100):
            if (await http.get(f"/status/{job_id}")).json()["status"] == "processing":
                break
            await asyncio.sleep(0.05)
        cancelled = await http.post(f"/status/{job_id}/cancel")
        for _ in range(100):
            if gpus["a"].stats()["in_flight"] == 0:
                break
            await asyncio.sleep(0.05)
        overview = (await http.get("/status")).json()

    assert cancelled.json()["status"] == "cancelled"
    assert gpus["a"].stats()["in_flight"] == 0
    assert overview["in_flight"] == 0


async def test_v1_models_lists_served_models_and_routes(
    engine_settings: Callable[..., Settings], local_fleet: FleetConfig
) -> None:
    async with service(engine_settings(consumers=0), local_fleet) as http:
        listing = (await http.get("/v1/models")).json()

    ids = {model["id"] for model in listing["data"]}
    assert {"qwen3.6-35B-A3B", "gemma-4-E4B", "default", "heavy"} <= ids


async def test_front_door_secret_headers_never_reach_redis_after_processing(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    _, fleet = one_gpu(sims, slots=1)
    canary = "canary-4d1e-secret"
    headers = {"Authorization": f"Bearer {canary}", "Cookie": f"s={canary}",
               "X-Api-Key": canary, "Proxy-Authorization": canary}  # fmt: skip

    async with service(engine_settings(), fleet) as http:
        answer = await http.post("/v1/chat/completions", json=CHAT, headers=headers)
        stored = await every_stored_byte(redis_client, key_prefix)

    assert answer.status_code == 200
    assert b"completed" in stored  # the job ran and its record is there...
    assert canary.encode() not in stored  # ...without any secret header
