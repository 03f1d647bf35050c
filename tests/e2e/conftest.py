"""Fixtures of the end-to-end tests: real nginx, real sims, a real `smartqueue serve`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.e2e.deployment import SIM_SPEED, Deployment, GpuSpec, fast_settings, fleet_of
from tests.nginx.nginx_process import running_nginx
from tests.support.binaries import require_binary
from tests.support.redis_server import RedisServer
from tests.support.service import running_service
from tests.support.sim import SimHandle, running_sim

T = TypeVar("T")
Deploy = Callable[..., Awaitable[Deployment]]


@pytest.fixture
def nginx_binary() -> str:
    """Path of nginx; a missing binary fails under CI=true and skips elsewhere."""
    return require_binary("nginx")


async def _enter(stack: AsyncExitStack, context: AbstractContextManager[T]) -> T:
    """Enter a blocking context manager in a thread (so several start at once)."""
    value = await asyncio.to_thread(context.__enter__)
    stack.push(context.__exit__)
    return value


async def _start_sims(stack: AsyncExitStack, specs: dict[str, GpuSpec]) -> dict[str, SimHandle]:
    contexts = {
        name: running_sim(engine=spec.engine, model=f"model-{name}", slots=spec.slots,
                          speed=SIM_SPEED, fault=spec.fault)
        for name, spec in specs.items()
    }  # fmt: skip
    handles = await asyncio.gather(*(_enter(stack, context) for context in contexts.values()))
    return dict(zip(contexts, handles, strict=True))


@pytest.fixture
async def deploy(
    nginx_binary: str, redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> AsyncIterator[Deploy]:
    """Start a deployment: deploy({"a": GpuSpec()}, {"default": ["a"]}, **nginx_options)."""
    async with AsyncExitStack() as stack:

        async def start(
            gpus: dict[str, GpuSpec], routes: dict[str, list[str]], **nginx_options: Any
        ) -> Deployment:
            sims = await _start_sims(stack, gpus)
            fleet = fleet_of(sims, gpus, routes)
            settings = fast_settings(redis_url=redis_server.url, key_prefix=key_prefix)
            service = await _enter(
                stack, running_service(settings, fleet, workdir=tmp_path / "service")
            )
            (tmp_path / "nginx").mkdir()
            nginx_url = await stack.enter_async_context(
                running_nginx(nginx_binary, tmp_path / "nginx", fleet, queue_url=service.url,
                              **nginx_options)
            )  # fmt: skip
            http = await stack.enter_async_context(httpx.AsyncClient(trust_env=False, timeout=10))
            return Deployment(nginx_url, service, sims, fleet, http)

        yield start
