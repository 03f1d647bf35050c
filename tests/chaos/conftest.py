"""Replicas as real processes (`smartqueue serve`), sims as processes, a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from smartqueue.config import FleetConfig, Settings
from tests.engine.conftest import engine_settings
from tests.support.service import ServiceHandle, running_service
from tests.support.sim import SimHandle, running_sims

__all__ = ["chaos_settings", "client_of", "engine_settings", "replicas"]


@pytest.fixture
def sims() -> Iterator[Callable[..., dict[str, SimHandle]]]:
    """Sims as processes (their ports are what the replica processes reach), started at once:
    sims(a={"slots": 2}, b={...}) -> handles by name."""
    with ExitStack() as stack:

        def start(**specs: dict[str, Any]) -> dict[str, SimHandle]:
            defaults = {"speed": 50.0, "engine": "vllm"}
            full = {name: {**defaults, "model": f"model-{name}", **spec}
                    for name, spec in specs.items()}  # fmt: skip
            return stack.enter_context(running_sims(**full))  # type: ignore[arg-type]

        yield start


StartReplicas = Callable[[Settings, FleetConfig, int], list[ServiceHandle]]


@pytest.fixture
def chaos_settings(engine_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Engine test settings plus quick heartbeats, leases and reclaims (a crash heals fast)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "heartbeat_interval_s": 0.2, "consumer_ttl_s": 1.5, "lease_s": 2.0,
            "claim_idle_s": 2.0,
        }  # fmt: skip
        return engine_settings(**{**values, **overrides})

    return make


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[StartReplicas]:
    """Start `count` replicas of one configuration at once; each stops when the test ends."""
    with ExitStack() as stack:
        started = 0

        def start(settings: Settings, fleet: FleetConfig, count: int) -> list[ServiceHandle]:
            nonlocal started
            contexts = [
                running_service(settings, fleet, workdir=tmp_path / f"replica{started + i}")
                for i in range(count)
            ]
            started += count
            with ThreadPoolExecutor(max_workers=count) as pool:
                futures = [pool.submit(context.__enter__) for context in contexts]
            for context in contexts:
                stack.push(context.__exit__)
            return [future.result() for future in futures]

        yield start


@asynccontextmanager
async def client_of(
    replica: ServiceHandle, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a replica (loopback only, no proxies from the environment)."""
    async with httpx.AsyncClient(base_url=replica.url, trust_env=False, timeout=10,
                                 headers=headers) as client:  # fmt: skip
        yield client
