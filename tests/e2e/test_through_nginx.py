"""Requests through the real nginx to sim GPUs, with the real smartqueue behind it."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import Deploy
from tests.e2e.deployment import GpuSpec

pytestmark = pytest.mark.slow

TWO_GPUS = {"a": GpuSpec(), "b": GpuSpec()}
ROUTES = {"default": ["a", "b"], "heavy": ["b", "a"]}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


async def test_route_header_picks_the_routes_gpu_and_x_routed_to_names_it(deploy: Deploy) -> None:
    deployment = await deploy(TWO_GPUS, ROUTES)
    answers = {}
    for route in ("heavy", "default", "no-such-route"):
        async with deployment.openai(route=route) as client:
            answers[route] = await client.chat.completions.with_raw_response.create(
                model="any", messages=HELLO, max_tokens=4
            )

    assert answers["heavy"].parse().model == "model-b"
    assert answers["heavy"].headers["X-Routed-To"] == f"route-heavy {deployment.address('b')}"
    assert answers["default"].parse().model == "model-a"
    assert answers["default"].headers["X-Routed-To"] == f"route-default {deployment.address('a')}"
    assert answers["no-such-route"].parse().model == "model-a"
    assert (deployment.calls("a"), deployment.calls("b")) == (2, 1)
    assert await deployment.submissions() == 0


async def test_preferred_gpu_down_backup_gpu_answers_without_the_queue(deploy: Deploy) -> None:
    deployment = await deploy({"a": GpuSpec(fault="refuse"), "b": GpuSpec()}, ROUTES)
    async with deployment.openai(route="default") as client:
        answer = await client.chat.completions.with_raw_response.create(
            model="any", messages=HELLO, max_tokens=4
        )

    assert answer.parse().model == "model-b"
    tried = f"{deployment.address('a')}, {deployment.address('b')}"
    assert answer.headers["X-Routed-To"] == f"route-default {tried}"
    assert (deployment.calls("a"), deployment.calls("b")) == (0, 1)
    assert await deployment.submissions() == 0


async def test_gpu_that_accepted_then_stalls_is_504_without_fallback_or_second_call(
    deploy: Deploy,
) -> None:
    deployment = await deploy({"a": GpuSpec(fault="hang"), "b": GpuSpec()}, ROUTES,
                              read_timeout_s=1)  # fmt: skip
    # The SDK retries a 504 twice by default; nginx's `x-should-retry: false` stops it.
    async with deployment.openai(route="default", max_retries=2) as client:
        with pytest.raises(openai.InternalServerError) as raised:
            await client.chat.completions.create(model="any", messages=HELLO, max_tokens=4)

    assert raised.value.status_code == 504
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert (deployment.calls("a"), deployment.calls("b")) == (1, 0)
    assert await deployment.submissions() == 0


async def test_requests_past_the_rate_limit_get_429_and_reach_no_gpu(deploy: Deploy) -> None:
    deployment = await deploy({"a": GpuSpec(slots=4)}, {"default": ["a"]}, rate_per_s=1, burst=1)
    async with deployment.openai(route="default") as client:
        calls = [client.chat.completions.with_raw_response.create(
            model="any", messages=HELLO, max_tokens=4) for _ in range(6)]  # fmt: skip
        results = await asyncio.gather(*calls, return_exceptions=True)

    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    served = [r for r in results if not isinstance(r, BaseException)]
    assert limited, results
    assert len(limited) + len(served) == len(results), results
    assert {r.status_code for r in limited} == {429}
    assert deployment.calls("a") == len(served)
    assert await deployment.submissions() == 0


async def test_body_over_the_limit_gets_413_and_reaches_neither_gpu_nor_queue(
    deploy: Deploy,
) -> None:
    # The GPU refuses connections: a body that got past nginx would land in the queue.
    deployment = await deploy({"a": GpuSpec(fault="refuse")}, {"default": ["a"]},
                              max_body_size="4k")  # fmt: skip
    big: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x" * 8192}]
    async with deployment.openai(route="default") as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(model="any", messages=big, max_tokens=4)

    assert raised.value.status_code == 413
    assert deployment.calls("a") == 0
    assert await deployment.submissions() == 0


ADMIN_PATHS = [
    ("GET", "/status"),
    ("GET", "/status/some-job"),
    ("POST", "/status/some-job/cancel"),
    ("GET", "/dlq"),
    ("POST", "/dlq/1-0/retry"),
    ("DELETE", "/dlq/1-0"),
    ("GET", "/consumers"),
    ("GET", "/gpus"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("POST", "/enqueue"),
    ("GET", "/v1/%2e%2e/status"),
]


async def test_admin_paths_are_404_through_nginx_though_smartqueue_serves_them(
    deploy: Deploy,
) -> None:
    deployment = await deploy({"a": GpuSpec(fault="refuse")}, {"default": ["a"]})
    async with httpx.AsyncClient(base_url=deployment.nginx_url, trust_env=False) as client:
        answers = [await client.request(method, path, json={}) for method, path in ADMIN_PATHS]
    direct = await deployment.http.get(f"{deployment.service.url}/status")

    assert [a.status_code for a in answers] == [404] * len(ADMIN_PATHS), [
        (path, a.status_code) for (_, path), a in zip(ADMIN_PATHS, answers, strict=True)
    ]
    assert {a.json()["error"]["code"] for a in answers} == {"not_found"}
    assert direct.status_code == 200
    assert await deployment.submissions() == 0
