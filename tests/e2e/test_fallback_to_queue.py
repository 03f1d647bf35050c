"""All GPUs down: nginx hands the request to smartqueue, which answers once a GPU is back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from smartqueue.store.keys import Keys
from tests.e2e.conftest import Deploy
from tests.e2e.deployment import Deployment, GpuSpec

pytestmark = pytest.mark.slow

DOWN = GpuSpec(engine="vllm", fault="refuse")
ROUTES = {"default": ["a", "b"], "heavy": ["b", "a"]}


def prompt(text: str = "hello") -> list[ChatCompletionMessageParam]:
    """A one-message chat."""
    return [{"role": "user", "content": text}]


async def bring_back(deployment: Deployment, gpu: str) -> None:
    """Once a job waits in smartqueue, let `gpu` accept connections again."""
    await deployment.wait_queued()
    await asyncio.to_thread(deployment.sims[gpu].set_faults, "none")


def gpu_calls_by_job(deployment: Deployment) -> dict[str, int]:
    """GPU calls per smartqueue job id, summed over every sim."""
    calls: dict[str, int] = {}
    for sim in deployment.sims.values():
        for job_id, count in sim.stats()["requests_by_job"].items():
            calls[job_id] = calls.get(job_id, 0) + count
    return calls


async def test_all_gpus_down_openai_client_gets_chat_completion_once_a_gpu_is_back(
    deploy: Deploy,
) -> None:
    deployment = await deploy({"a": DOWN, "b": DOWN}, ROUTES)
    # heavy prefers b; a, its fallback, is the GPU that comes back.
    async with deployment.openai(route="heavy") as client:
        request = client.chat.completions.with_raw_response.create(
            model="whatever-the-client-says", messages=prompt(), max_tokens=8
        )
        answer, _ = await asyncio.gather(request, bring_back(deployment, "a"))
    completion = answer.parse()

    assert answer.status_code == 200
    assert answer.headers["X-Routed-To"].startswith("queue ")
    assert completion.object == "chat.completion"
    assert completion.model == "model-a"  # smartqueue set the model the GPU serves
    assert completion.choices[0].message.content
    job_id = answer.headers["X-Smartqueue-Job-Id"]
    assert gpu_calls_by_job(deployment) == {job_id: 1}
    assert (await deployment.service_json(f"/status/{job_id}"))["status"] == "completed"


async def test_all_gpus_down_streamed_completion_arrives_once_a_gpu_is_back(
    deploy: Deploy,
) -> None:
    deployment = await deploy({"a": DOWN, "b": DOWN}, ROUTES)

    async def read_stream() -> list[ChatCompletionChunk]:
        async with deployment.openai(route="default") as client:
            stream = await client.chat.completions.create(
                model="anything", messages=prompt(), max_tokens=16, stream=True
            )
            return [chunk async for chunk in stream]

    chunks, _ = await asyncio.gather(read_stream(), bring_back(deployment, "b"))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    assert len(chunks) > 1
    assert text.strip()
    assert {chunk.model for chunk in chunks} == {"model-b"}
    assert list(gpu_calls_by_job(deployment).values()) == [1]


async def redis_values(client: aioredis.Redis, prefix: str) -> list[bytes]:
    """Every key name and value under `prefix`, read according to its type."""
    values: list[bytes] = []
    async for key in client.scan_iter(match=f"{Keys(prefix).tag}:*"):
        values += [key, await read_any(client, key)]
    return values


async def read_any(client: aioredis.Redis, key: bytes) -> bytes:
    """A key's whole content as text, whatever its type."""
    kind = await client.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    readers: dict[str, Any] = {
        "string": lambda: client.get(key),
        "hash": lambda: client.hgetall(key),
        "list": lambda: client.lrange(key, 0, -1),
        "set": lambda: client.smembers(key),
        "zset": lambda: client.zrange(key, 0, -1),
        "stream": lambda: client.xrange(key),
    }
    return str(await readers[kind]()).encode()


def contains(values: list[bytes], needle: str) -> bool:
    """Whether `needle` occurs in any of `values`."""
    return any(needle.encode() in value for value in values)


async def test_fallback_client_credential_makes_the_owner_and_is_never_stored(
    deploy: Deploy, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    canary, marker = f"canary-{uuid.uuid4().hex}", f"marker-{uuid.uuid4().hex}"
    deployment = await deploy({"a": DOWN}, {"default": ["a"]})

    async def scan_then_bring_back() -> list[bytes]:
        await deployment.wait_queued()
        values = await redis_values(redis_client, key_prefix)
        await asyncio.to_thread(deployment.sims["a"].set_faults, "none")
        return values

    async with deployment.openai(route="default", api_key=canary) as client:
        request = client.chat.completions.with_raw_response.create(
            model="m", messages=prompt(marker), max_tokens=4, extra_headers={"Cookie": canary}
        )
        answer, while_queued = await asyncio.gather(request, scan_then_bring_back())
    after = await redis_values(redis_client, key_prefix)
    log = deployment.service.log_file.read_text(encoding="utf-8")

    job_id = answer.headers["X-Smartqueue-Job-Id"]
    service = deployment.service.url
    as_owner = await deployment.http.get(f"{service}/status/{job_id}",
                                         headers={"Authorization": f"Bearer {canary}"})  # fmt: skip
    as_other = await deployment.http.get(f"{service}/status/{job_id}")

    assert answer.status_code == 200
    assert (as_owner.status_code, as_other.status_code) == (200, 404)
    assert contains(while_queued, marker), "the scan should see the queued request's body"
    assert not contains(while_queued + after, canary)
    assert answer.headers["X-Smartqueue-Job-Id"] in log
    assert canary not in log
    assert answer.headers["X-Routed-To"].startswith("queue ")
